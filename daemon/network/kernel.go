package network

import (
	"net"
	"net/netip"
	"time"

	"github.com/underlay/underlay/daemon/link"
)

// Kernel is the kernel work the manager does: parents on the host, and
// interfaces in containers' network namespaces. link.Host is the real one;
// the tests have a fake that keeps the kernel's rules in memory.
type Kernel interface {
	// Namespaces. FindNetns returns nil when the namespace is gone;
	// LiveNetns maps the inode of every live namespace to a path to it.
	OpenPid(pid int) (*link.Netns, error)
	OpenPath(path string) (*link.Netns, error)
	FindNetns(inode, cookie uint64, hintPid int) *link.Netns
	LiveNetns() map[uint64]string

	// Parents. Lookup fails with link.ErrNotFound for a missing link;
	// LookupParent gives only what an attach needs of a parent (index,
	// MTU, MAC, up), more cheaply; Probe reports whether the kernel has a
	// driver (link.ErrUnsupported).
	Lookup(name string) (link.Info, error)
	LookupParent(name string) (link.Info, error)
	Probe(driver string) error
	CreateVLAN(base string, vid int, name string) error
	CreateDummy(name string) error
	Delete(name string) error

	// Container interfaces: see the link functions of the same names.
	CreateSlave(ns *link.Netns, s link.Slave) error
	Strip(ns *link.Netns, name string) (bool, error)
	DeleteSlave(ns *link.Netns, names ...string) error
	DeleteSlaveMatching(ns *link.Netns, name, mac string, addrs []string) error
	// HasSlave fails unless ns has interface name, up, with addrs.
	HasSlave(ns *link.Netns, name string, addrs []string) error

	// Announce sends a gratuitous ARP for each IPv4 address of addrs (the
	// others it leaves to the kernel), at mac, out of the parent with that
	// ifindex.
	Announce(parent int, mac net.HardwareAddr, addrs []netip.Addr) error

	// Answering asks the wire, out of parent, whether anybody holds each
	// of addrs (ARP and ND probes, replies collected for wait).
	Answering(parent string, addrs []netip.Addr, wait time.Duration) (map[netip.Addr]bool, error)
}

var _ Kernel = link.Host{}
