package network

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/ipam"
)

// Host shims (--host-address): the host's own interface on a network's
// parent, with a host route through it to every endpoint's address, so the
// host and its containers reach each other. underlayd keeps the shim and
// the routes as the endpoints come and go, and puts them back when link
// events say the shim or its parent was lost (link.WatchLinks).

// ShimKernel is the kernel work of shims: link's functions in underlayd,
// a fake in the unit tests.
type ShimKernel interface {
	EnsureShim(link.Shim) (bool, error)
	DeleteShim(name string) error
	ShimStatus(name string) link.ShimState
	SyncHostRoutes(shim string, want func() []netip.Addr, src []netip.Addr) (added, removed int, err error)
	AddHostRoutes(shim string, addrs, src []netip.Addr) error
	DelHostRoutes(shim string, addrs []netip.Addr) error
}

// WithShimKernel replaces the shims' kernel work (tests).
func WithShimKernel(k ShimKernel) Option { return func(m *Manager) { m.shims = k } }

type hostShims struct{}

var _ ShimKernel = hostShims{}

func (hostShims) EnsureShim(s link.Shim) (bool, error)  { return link.EnsureShim(s) }
func (hostShims) DeleteShim(name string) error          { return link.DeleteShim(name) }
func (hostShims) ShimStatus(name string) link.ShimState { return link.ShimStatus(name) }
func (hostShims) SyncHostRoutes(shim string, want func() []netip.Addr, src []netip.Addr) (int, int, error) {
	return link.SyncHostRoutes(shim, want, src)
}
func (hostShims) AddHostRoutes(shim string, addrs, src []netip.Addr) error {
	return link.AddHostRoutes(shim, addrs, src)
}
func (hostShims) DelHostRoutes(shim string, addrs []netip.Addr) error {
	return link.DelHostRoutes(shim, addrs)
}

// shimAux names a host address among a pool's reserved addresses.
const shimAux = "host-address"

// shimName is the shim's stable name: "ul-" and the network id's first
// twelve hex digits, 15 characters as the kernel allows.
func shimName(n api.Network) string { return "ul-" + n.ID[:12] }

// shimMAC is the shim's stable MAC, hashed from the network id.
func shimMAC(n api.Network) net.HardwareAddr {
	sum := sha256.Sum256([]byte("underlay shim\x00" + n.ID))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// hostAddrsOf parses a network's host addresses.
func hostAddrsOf(n api.Network) []netip.Addr {
	var out []netip.Addr
	for _, s := range n.HostAddresses {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// checkHostAddresses validates --host-address against the network's pools
// and reserves each address so that it is never leased.
func checkHostAddresses(n *api.Network, raw []string, pools []ipam.Pool) error {
	if len(raw) == 0 {
		return nil
	}
	if n.Scope == scopeGlobal {
		return invalid("--host-address with --scope global: every host would claim the same address; give each host's shim its own address on a local network instead")
	}
	if n.Driver == "ipvlan" && n.Mode != "l2" {
		return invalid("--host-address: ipvlan %s containers are routed, not bridged, so a shim cannot reach them; route their subnet to this host's parent from the upstream router instead (README: ipvlan L3)", n.Mode)
	}
	seen := map[int]string{}
	for _, s := range raw {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return invalid("--host-address %q: not an IP address", s)
		}
		a = a.Unmap()
		fam := 4
		if a.Is6() {
			fam = 6
		}
		if prev, ok := seen[fam]; ok {
			return invalid("--host-address %s and %s: one address per family", prev, a)
		}
		seen[fam] = a.String()
		idx := -1
		for i, p := range pools {
			if p.Subnet.Contains(a) {
				idx = i
			}
		}
		if idx < 0 {
			return invalid("--host-address %s is in no --subnet of the network", a)
		}
		p := &pools[idx]
		if a == p.Subnet.Masked().Addr() {
			return invalid("--host-address %s is the network address of %s", a, p.Subnet)
		}
		if a.Is4() && a == lastAddr(p.Subnet) {
			return invalid("--host-address %s is the broadcast address of %s", a, p.Subnet)
		}
		if a == p.Gateway {
			return invalid("--host-address %s is the gateway of %s", a, p.Subnet)
		}
		for name, x := range p.Aux {
			if x == a {
				return invalid("--host-address %s is reserved by --aux-address %s=%s", a, name, x)
			}
		}
		if p.Aux == nil {
			p.Aux = map[string]netip.Addr{}
		}
		key := shimAux
		if fam == 6 {
			key += "6"
		}
		p.Aux[key] = a
		n.HostAddresses = append(n.HostAddresses, a.String())
	}
	return nil
}

// shimOf describes the shim of n on parent.
func shimOf(n api.Network, parent link.Info, mtu int) link.Shim {
	s := link.Shim{Name: shimName(n), Kind: n.Driver, ParentIndex: parent.Index, MTU: mtu}
	if n.Driver == "macvlan" {
		s.MAC = shimMAC(n)
	}
	for _, a := range hostAddrsOf(n) {
		s.Addrs = append(s.Addrs, netip.PrefixFrom(a, a.BitLen()))
	}
	return s
}

// syncShim makes st's shim and its routes what st says: the shim on the
// parent (if the parent is there now; an owned parent comes back with its
// next endpoint, and the link event with it brings the shim), one host
// route per endpoint address.
func (m *Manager) syncShim(st *netState) error {
	st.mu.Lock()
	n := st.net
	removed := st.removed
	st.mu.Unlock()
	if removed || len(n.HostAddresses) == 0 {
		return nil
	}
	want := func() []netip.Addr {
		st.mu.Lock()
		defer st.mu.Unlock()
		var out []netip.Addr
		for _, r := range st.eps {
			out = append(out, r.addrs()...)
		}
		return out
	}
	parent, err := m.kernel.LookupParent(n.Parent)
	if errors.Is(err, link.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	mtu := parent.MTU
	if n.MTU > 0 && n.MTU < mtu {
		mtu = n.MTU
	}
	created, err := m.shims.EnsureShim(shimOf(n, parent, mtu))
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	added, gone, err := m.shims.SyncHostRoutes(shimName(n), want, hostAddrsOf(n))
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if created || added > 0 || gone > 0 {
		m.log.Info("host shim in place", "network", n.Name, "shim", shimName(n), "created", created,
			"routes_added", added, "routes_removed", gone)
	}
	return nil
}

// SyncShims brings every network's shim and routes in line with its
// endpoints: at start, and after link events.
func (m *Manager) SyncShims() {
	for _, st := range m.states() {
		if err := m.syncShim(st); err != nil {
			m.log.Error("host shim not restored", "network", st.net.Name, "err", err)
		}
	}
}

// WatchShims follows link events until ctx ends and, when one concerns a
// shim or the parent of a network that has one, restores the shims within
// moments (events come in bursts: they are gathered for 50 ms).
func (m *Manager) WatchShims(ctx context.Context) error {
	var mu sync.Mutex
	var pending *time.Timer
	kick := func() {
		mu.Lock()
		defer mu.Unlock()
		if pending != nil {
			return
		}
		pending = time.AfterFunc(50*time.Millisecond, func() {
			mu.Lock()
			pending = nil
			mu.Unlock()
			if ctx.Err() == nil {
				m.SyncShims()
			}
		})
	}
	m.SyncShims()
	return link.WatchLinks(ctx, func(name string) {
		for _, st := range m.states() {
			n := st.net
			if len(n.HostAddresses) > 0 && (name == n.Parent || name == shimName(n)) {
				kick()
				return
			}
		}
	})
}

// shimRoutes adds (or, with del, removes) the host routes of ep's
// addresses through the shim of st's network. A shim that is not there
// (an owned parent made again for this endpoint, whose link event has not
// been handled yet) is made at once; other failures are logged and
// repaired by the next sync.
func (m *Manager) shimRoutes(st *netState, ep api.Endpoint, del bool) {
	n := st.net
	if len(n.HostAddresses) == 0 {
		return
	}
	addrs := addrsOf(ep)
	if len(addrs) == 0 {
		return
	}
	var err error
	if del {
		err = m.shims.DelHostRoutes(shimName(n), addrs)
	} else if err = m.shims.AddHostRoutes(shimName(n), addrs, hostAddrsOf(n)); err != nil {
		err = m.syncShim(st)
	}
	if err != nil {
		m.log.Warn("host route through the shim not updated", "network", n.Name, "container", ep.Container(), "err", err)
	}
}

// shimInfo is what inspect shows of n's shim.
func (m *Manager) shimInfo(n api.Network) *api.ShimInfo {
	if len(n.HostAddresses) == 0 {
		return nil
	}
	s := m.shims.ShimStatus(shimName(n))
	return &api.ShimInfo{Name: shimName(n), Exists: s.Exists, Up: s.Up, Addresses: s.Addrs}
}

// lastAddr is the last address of an IPv4 prefix: its broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
