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
// store never holds a lease without an endpoint or the reverse. An endpoint
// in state "attaching" records intent before any kernel work: on restart the
// daemon finishes or undoes it.
package store
