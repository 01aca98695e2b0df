// Package store keeps underlayd's state in one bbolt file: networks,
// endpoints, address leases and the links underlayd created. It is the only
// package that opens the database.
//
// Schema (version 1):
//
//	meta/
//	  version              -> "1"
//	networks/
//	  <network name>       -> JSON api.Network
//	endpoints/
//	  <endpoint key>       -> JSON api.Endpoint   (key: namespace/container/network)
//	leases/
//	  <network name>/      bucket, one per network
//	    <16-byte address>  -> endpoint key        (IPv4 as IPv4-mapped IPv6)
//	links/
//	  <ifname>             -> JSON OwnedLink      (parents underlayd created)
//
// An endpoint and its leases are always written in one transaction, so the
// store never holds a lease without an endpoint or the reverse.
//
// Beside the database, intents/<temporary ifname> holds one JSON
// api.Endpoint per attach in flight: written (without fsync) before any
// kernel work, removed once the endpoint is committed; on restart the
// daemon undoes those whose endpoint never came. Older versions recorded
// the intent as an endpoint in state "attaching"; those are undone too.
package store
