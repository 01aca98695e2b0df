package etcd

import (
	"encoding/json"
	"net/netip"
	"strings"
	"time"

	"github.com/underlay/underlay/ipam"
)

// The keys under the prefix (default /underlay):
//
//	v1/networks/<network>                     -> the network's record (the daemon's JSON)
//	v1/leases/<network>/<address>             -> lease: who holds the address
//	v1/owners/<host>/<network>/<ns>/<container>/<ifname>/<4|6> -> the address
//	v1/hosts/<host>/alive                     -> under a lease kept alive by the host
//	v1/hosts/<host>/info                      -> the host's first and last start
//
// A lease key and its owner key are written and removed together, in one
// transaction, so a retried request finds what its first try did by its
// owner key. Lease keys never carry an etcd lease: a host that etcd stops
// hearing from may still have running containers. A released address
// becomes a tombstone under an etcd lease of the cooldown's length, so
// that another host takes it only once the LAN's caches have had time to
// forget it; etcd deletes the tombstone when the cooldown ends.

const version = "v1"

func (c *Cluster) networkKey(network string) string {
	return c.prefix + "/" + version + "/networks/" + network
}

func (c *Cluster) leasesPrefix(network string) string {
	return c.prefix + "/" + version + "/leases/" + network + "/"
}

func (c *Cluster) leaseKey(network string, a netip.Addr) string {
	return c.leasesPrefix(network) + a.String()
}

func (c *Cluster) ownersPrefix(host string) string {
	return c.prefix + "/" + version + "/owners/" + host + "/"
}

func (c *Cluster) ownerKey(o ipam.Owner, a netip.Addr) string {
	fam := "4"
	if a.Is6() {
		fam = "6"
	}
	return c.ownersPrefix(c.host) + strings.Join([]string{o.Network, o.Namespace, o.Container, o.IfName, fam}, "/")
}

func (c *Cluster) hostKey(host, what string) string {
	return c.prefix + "/" + version + "/hosts/" + host + "/" + what
}

// lease is the value of a lease key. Released is set on a tombstone.
type lease struct {
	Host      string `json:"host"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container"`
	IfName    string `json:"ifname"`
	Since     string `json:"since,omitempty"`
	Released  string `json:"released,omitempty"`
}

func (l lease) owner(network string) ipam.Owner {
	return ipam.Owner{Network: network, Namespace: l.Namespace, Container: l.Container, IfName: l.IfName}
}

func leaseOf(host string, o ipam.Owner) lease {
	return lease{Host: host, Namespace: o.Namespace, Container: o.Container, IfName: o.IfName,
		Since: time.Now().UTC().Format(time.RFC3339Nano)}
}

func (l lease) encode() []byte {
	b, _ := json.Marshal(l)
	return b
}

func decodeLease(b []byte) (lease, bool) {
	var l lease
	return l, json.Unmarshal(b, &l) == nil && l.Host != ""
}

// addrOfKey parses the address at the end of a lease key.
func addrOfKey(key string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(key[strings.LastIndexByte(key, '/')+1:])
	return a, err == nil
}
