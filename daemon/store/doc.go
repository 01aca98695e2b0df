// Package store keeps underlayd's state: networks, endpoints, address
// leases and the links underlayd created. It is the only package that opens
// the databases.
//
// Two bbolt files. underlay.db is fsynced on every commit and outlives
// reboots (schema version 2):
//
//	meta/
//	  version              -> "2"
//	networks/
//	  <network name>       -> JSON api.Network
//	links/
//	  <ifname>             -> JSON OwnedLink      (parents underlayd created)
//
// endpoints-<boot id>.db belongs to one boot and is not fsynced (see
// ephemeral.go for why that is safe); a file of an earlier boot is removed:
//
//	endpoints/
//	  <endpoint key>       -> JSON api.Endpoint   (key: namespace/container/network)
//	leases/
//	  <network name>/      bucket, one per network with leases
//	    <16-byte address>  -> endpoint key        (IPv4 as IPv4-mapped IPv6)
//
// Version 1 kept endpoints and leases in underlay.db; the migration to 2
// moves them. An endpoint and its leases are always written in one
// transaction, so the store never holds a lease without an endpoint or the
// reverse.
//
// Beside them, intents-<boot id>/<temporary ifname> holds one JSON
// api.Endpoint per attach or detach in flight (see intents.go); on restart
// the daemon finishes or undoes what they describe. Older versions
// recorded the intent as an endpoint in state "attaching"; those are
// undone too.
package store
