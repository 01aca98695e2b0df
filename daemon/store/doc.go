// Package store keeps underlayd's state: networks, endpoints, address
// leases and the links underlayd created. It is the only package that opens
// the databases.
//
// Two bbolt files. underlay.db is fsynced on every commit and outlives
// reboots:
//
//	meta/
//	  version              -> "3"                 (schema version, decimal)
//	  etcd-cluster         -> hex cluster id      (the etcd cluster joined, if any)
//	networks/
//	  <network name>       -> JSON api.Network    (a global one: this host's copy of etcd's)
//	links/
//	  <ifname>             -> JSON OwnedLink      (parents underlayd created)
//	releases/
//	  <etcd owner key>     -> JSON release        (of a global address, until etcd takes it)
//
// endpoints-<boot id>.db belongs to one boot and is not fsynced (see
// ephemeral.go for why that is safe); a file of an earlier boot is removed:
//
//	endpoints/
//	  <endpoint key>       -> endpoint record     (key: namespace/container/network)
//	leases/
//	  <network name>/      bucket, one per network an endpoint was put on
//	    <16-byte address>  -> endpoint key        (IPv4 as IPv4-mapped IPv6)
//
// An endpoint record is binary, not JSON (see record.go): the version byte
// 0x01; network, namespace, container id, ifname, MAC, temporary name,
// parent and state as uvarint-length strings; netns inode and cookie as
// uvarints; the creation time as a varint of Unix nanoseconds; a uvarint
// count of addresses, each a family byte (4 or 6), 16 address bytes
// (IPv4-mapped) and a prefix length byte; a uvarint count of gateways,
// each a family byte and 16 address bytes. An endpoint and its leases are
// always written in one transaction, so the store never holds a lease
// without an endpoint or the reverse.
//
// Beside them, the file intents-<boot id> holds one 4 KiB slot per attach
// or detach in flight: a big-endian uint32 length (0: free) and an
// api.Endpoint as JSON, named by its TempName (see intents.go); on restart
// the daemon finishes or undoes what they describe. A file of an earlier
// boot is removed unread; a directory of this boot (one JSON file per
// intent, the format before) is carried into the file.
//
// This is the current format, schema version 3 with endpoint records of
// version 0x01. Schema versions start at 2 because development versions
// before any release wrote version 1; version 2 lacked releases/, which
// its migration adds. A file of version 1, or of any version this code
// does not know, is refused with an error naming the version found and
// the one wanted, never reset.
package store
