package network

import (
	"fmt"
	"net/netip"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// AddressDriver hands out the addresses of one network: the network's
// --ipam-driver. The manager calls it under the network's lock, with the
// endpoint the address is for. "default" keeps the leases on this host
// (localAddresses); a shared driver keeps them where every host of the
// network sees them, a DHCP one asks the LAN's server.
type AddressDriver interface {
	// Pools are the network's subnets with their gateways, ranges and
	// reserved addresses. The caller must not change them.
	Pools() []ipam.Pool
	// Claim takes addr for o: a static address, or a restarted
	// container's old one.
	Claim(o ipam.Owner, addr netip.Addr) (ipam.Pool, error)
	// Allocate takes a free address of family 4 or 6 for o.
	Allocate(o ipam.Owner, family int) (netip.Addr, ipam.Pool, error)
	// Release gives back an address that o held. Releasing one that is
	// not held does nothing.
	Release(o ipam.Owner, addr netip.Addr)
	// Hold records, at start, an address that a stored endpoint of this
	// host holds.
	Hold(o ipam.Owner, addr netip.Addr) error
	// Held calls fn with every address the driver holds for this host and
	// its owner (zero where the driver records none), so that the manager
	// can release those no endpoint backs.
	Held(fn func(ipam.Owner, netip.Addr))
	// Renew keeps this host's leases alive where they expire; the manager
	// calls it with every reconciliation.
	Renew() error
}

// ConcurrentDriver is an AddressDriver that keeps its own state safe and
// may be called without the network's lock, so that one network's
// attaches on this host overlap their round trips to a shared store.
type ConcurrentDriver interface {
	AddressDriver
	Concurrent() bool
}

func concurrent(d AddressDriver) bool {
	c, ok := d.(ConcurrentDriver)
	return ok && c.Concurrent()
}

// ipamDrivers are the --ipam-driver values underlay has.
var ipamDrivers = []string{"default", "dhcp"}

// defaultIPAM is the driver of a network whose record names none.
const defaultIPAM = "default"

// ownerOf is the lease holder of ep's addresses.
func ownerOf(ep api.Endpoint) ipam.Owner {
	return ipam.Owner{Network: ep.Network, Namespace: ep.Namespace, Container: ep.ContainerID, IfName: ep.IfName}
}

// newAddresses makes the address driver of network n.
func newAddresses(n api.Network, pools []ipam.Pool) (AddressDriver, error) {
	switch n.IPAMDriver {
	case defaultIPAM:
		return localAddresses{ipam.NewAllocator(pools)}, nil
	case dhcpIPAM:
		return dhcpAddresses{pools}, nil
	}
	return nil, fmt.Errorf("network %s: unknown address driver %q", n.Name, n.IPAMDriver)
}

// localAddresses is the "default" driver: an allocator in memory, rebuilt
// at start from the endpoints in this host's store, whose commit of an
// endpoint is the lease. Leases do not expire.
type localAddresses struct{ *ipam.Allocator }

func (l localAddresses) Claim(_ ipam.Owner, addr netip.Addr) (ipam.Pool, error) {
	return l.Allocator.Claim(addr)
}

func (l localAddresses) Allocate(_ ipam.Owner, family int) (netip.Addr, ipam.Pool, error) {
	return l.Allocator.Allocate(family)
}

func (l localAddresses) Release(_ ipam.Owner, addr netip.Addr) { l.Allocator.Release(addr) }

func (l localAddresses) Hold(_ ipam.Owner, addr netip.Addr) error { return l.Allocator.Mark(addr) }

func (l localAddresses) Held(fn func(ipam.Owner, netip.Addr)) {
	l.Allocator.Each(func(a netip.Addr) { fn(ipam.Owner{}, a) })
}

// Renew has nothing to do: a local lease lasts until its endpoint goes.
func (localAddresses) Renew() error { return nil }

// releaseUnbackedLocked releases the addresses st's driver holds for this
// host that no endpoint of st backs: a crash between a shared driver's
// commit and the store's leaves one. The caller holds st.mu. The counts
// are compared first, so the usual case builds nothing.
func (m *Manager) releaseUnbackedLocked(st *netState) {
	if st.pending > 0 {
		// An attach between its lease and its commit holds an address
		// that no endpoint backs yet: look again next time.
		return
	}
	held := 0
	st.addrs.Held(func(ipam.Owner, netip.Addr) { held++ })
	backed := 0
	for _, r := range st.eps {
		if r.flags&hasV4 != 0 {
			backed++
		}
		if r.flags&hasV6 != 0 {
			backed++
		}
	}
	if held == backed {
		return
	}
	used := make(map[netip.Addr]epKey, backed)
	for k, r := range st.eps {
		for _, a := range r.addrs() {
			used[a] = k
		}
	}
	var stray []heldAddr
	st.addrs.Held(func(o ipam.Owner, a netip.Addr) {
		if _, ok := used[a]; !ok {
			stray = append(stray, heldAddr{o, a})
		}
	})
	for _, l := range stray {
		m.log.Warn("address held without an endpoint released", "network", st.net.Name, "address", l.a, "container", l.o.Container)
		st.addrs.Release(l.o, l.a)
	}
}

// heldAddr is an endpoint's address, with the owner its lease names.
type heldAddr struct {
	o ipam.Owner
	a netip.Addr
}

// unheldLocked lists the addresses of st's endpoints that a shared
// driver does not hold for this host: one whose lease was not this
// host's to take when underlayd started (another host's, or cooling
// down), for a container that still uses it. The caller holds st.mu.
func unheldLocked(st *netState) []heldAddr {
	if !concurrent(st.addrs) {
		return nil // a local driver holds every endpoint's address
	}
	mine := map[netip.Addr]bool{}
	st.addrs.Held(func(_ ipam.Owner, a netip.Addr) { mine[a] = true })
	var out []heldAddr
	for k, r := range st.eps {
		for _, a := range r.addrs() {
			if !mine[a] {
				out = append(out, heldAddr{ownerOf(st.endpoint(k, &r)), a})
			}
		}
	}
	return out
}

// holdAgain claims unheld addresses again, now that their lease may be
// free: a container that runs on with an address the shared store does
// not give it would have it handed to another host's container.
func (m *Manager) holdAgain(st *netState, unheld []heldAddr) {
	for _, u := range unheld {
		if err := st.addrs.Hold(u.o, u.a); err != nil {
			m.log.Error("an endpoint's address is not this host's in the shared store: it may be in use elsewhere",
				"network", st.net.Name, "container", u.o.Container, "address", u.a, "err", err)
			continue
		}
		m.log.Warn("an endpoint's address held again in the shared store", "network", st.net.Name, "container", u.o.Container, "address", u.a)
	}
}
