package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The host shim: an interface of the host's own on a network's parent, a
// macvlan in bridge mode (an ipvlan l2 slave for ipvlan networks), with
// one address per family as a host route. The kernel keeps a parent and
// its slaves from talking to each other; a sibling slave in the host's
// namespace is how the host reaches its containers, and they it.

// RouteProtocol tags the host routes underlay makes through shims
// (rtnetlink's protocol field, as bird or dhcp tag theirs), so that it only
// ever removes its own.
const RouteProtocol = netlink.RouteProtocol(203)

// Shim describes a host shim.
type Shim struct {
	Name        string
	Kind        string // "macvlan" or "ipvlan"
	ParentIndex int
	MAC         net.HardwareAddr // macvlan only
	MTU         int
	Addrs       []netip.Prefix // /32 and /128
}

// ShimState is what the kernel says of a shim.
type ShimState struct {
	Exists, Up bool
	Addrs      []string
}

// EnsureShim makes the shim as s says: created if missing (or on another
// parent), with its sysctls, addresses and up. It reports whether it
// created it.
func EnsureShim(s Shim) (bool, error) {
	l, err := netlink.LinkByName(s.Name)
	if err == nil && (l.Attrs().ParentIndex != s.ParentIndex || l.Type() != s.Kind) {
		_ = netlink.LinkDel(l)
		err = netlink.LinkNotFoundError{}
	}
	created := false
	if err != nil {
		if !errors.As(err, &netlink.LinkNotFoundError{}) {
			return false, fmt.Errorf("look up shim %s: %w", s.Name, err)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.ParentIndex, attrs.MTU = s.Name, s.ParentIndex, s.MTU
		var nl netlink.Link
		if s.Kind == "ipvlan" {
			nl = &netlink.IPVlan{LinkAttrs: attrs, Mode: netlink.IPVLAN_MODE_L2}
		} else {
			attrs.HardwareAddr = s.MAC
			nl = &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
		}
		if err := netlink.LinkAdd(nl); err != nil {
			return false, fmt.Errorf("create shim %s: %w", s.Name, createErr(s.Kind, err))
		}
		created = true
		if l, err = netlink.LinkByName(s.Name); err != nil {
			return true, fmt.Errorf("find new shim %s: %w", s.Name, err)
		}
	}
	// The shim answers ARP only for its own address, from its own
	// address: the host's other addresses stay off this network.
	for _, c := range []devConf{{"ipv4", "arp_ignore", "1"}, {"ipv4", "arp_announce", "2"}, {"ipv4", "arp_notify", "1"}} {
		if err := writeSysctl("/proc/sys/net/"+c.family+"/conf/"+s.Name+"/"+c.key, c.value); err != nil {
			return created, fmt.Errorf("set %s.%s on shim %s: %w", c.family, c.key, s.Name, err)
		}
	}
	for _, p := range s.Addrs {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(l, a); err != nil {
			return created, fmt.Errorf("add %s to shim %s: %w", p, s.Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return created, fmt.Errorf("bring shim %s up: %w", s.Name, err)
		}
	}
	return created, nil
}

// DeleteShim removes a shim (and with it every route through it). A
// missing one is success.
func DeleteShim(name string) error {
	return deleteNamed(netlink.LinkByName, netlink.LinkDel, name, "")
}

// ShimStatus reports the shim's state.
func ShimStatus(name string) ShimState {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return ShimState{}
	}
	op := l.Attrs().OperState
	st := ShimState{Exists: true, Up: l.Attrs().Flags&net.FlagUp != 0 && (op == netlink.OperUp || op == netlink.OperUnknown)}
	if addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL); err == nil {
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				st.Addrs = append(st.Addrs, a.IPNet.String())
			}
		}
	}
	return st
}

// SyncHostRoutes makes the routes of ours through shim exactly one host
// route per address want returns, each from the shim's address of its
// family (src). It returns how many it added and removed. want is asked
// after the routes are listed: an endpoint committed before its route is
// added, so one whose route the listing shows is in want's answer, and a
// route is never taken from an endpoint that attached meanwhile.
func SyncHostRoutes(shim string, want func() []netip.Addr, src []netip.Addr) (added, removed int, err error) {
	l, err := netlink.LinkByName(shim)
	if err != nil {
		return 0, 0, fmt.Errorf("shim %s: %w", shim, err)
	}
	have := map[netip.Addr]bool{}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: l.Attrs().Index, Protocol: RouteProtocol},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("list routes of shim %s: %w", shim, err)
	}
	wanted := map[netip.Addr]bool{}
	for _, a := range want() {
		wanted[a.Unmap()] = true
	}
	for _, r := range routes {
		a, ok := hostRouteAddr(r)
		if ok && wanted[a] && !have[a] {
			have[a] = true
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return added, removed, fmt.Errorf("remove route %s dev %s: %w", r.Dst, shim, err)
		}
		removed++
	}
	for a := range wanted {
		if have[a] {
			continue
		}
		if err := addHostRoute(l, a, src); err != nil {
			return added, removed, err
		}
		added++
	}
	return added, removed, nil
}

// AddHostRoutes adds a route of ours through shim to each of addrs.
func AddHostRoutes(shim string, addrs, src []netip.Addr) error {
	l, err := netlink.LinkByName(shim)
	if err != nil {
		return fmt.Errorf("shim %s: %w", shim, err)
	}
	for _, a := range addrs {
		if err := addHostRoute(l, a, src); err != nil {
			return err
		}
	}
	return nil
}

// DelHostRoutes removes our routes through shim to addrs; missing ones
// are success.
func DelHostRoutes(shim string, addrs []netip.Addr) error {
	l, err := netlink.LinkByName(shim)
	if err != nil {
		return nil // the shim is gone, and its routes with it
	}
	for _, a := range addrs {
		r := hostRoute(l, a, nil)
		if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove route %s dev %s: %w", a, shim, err)
		}
	}
	return nil
}

func hostRoute(l netlink.Link, a netip.Addr, src []netip.Addr) *netlink.Route {
	a = a.Unmap()
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(netip.PrefixFrom(a, a.BitLen())),
		Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol}
	for _, s := range src {
		if s.Is4() == a.Is4() {
			r.Src = s.AsSlice()
		}
	}
	return r
}

func addHostRoute(l netlink.Link, a netip.Addr, src []netip.Addr) error {
	if err := netlink.RouteReplace(hostRoute(l, a, src)); err != nil {
		return fmt.Errorf("add route %s dev %s: %w", a, l.Attrs().Name, err)
	}
	return nil
}

func hostRouteAddr(r netlink.Route) (netip.Addr, bool) {
	if r.Dst == nil {
		return netip.Addr{}, false
	}
	ones, bits := r.Dst.Mask.Size()
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok || ones != bits {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// WatchLinks calls fn with the name of every link that is added, changed
// or removed in the daemon's namespace, until ctx ends: what brings a
// shim back after its parent flaps or it is deleted by hand.
func WatchLinks(ctx context.Context, fn func(name string)) error {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	errs := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to link events: %w", err)
	}
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("link events: %w", err)
		case u, ok := <-ch:
			if !ok {
				return errors.New("link events: subscription closed")
			}
			fn(u.Attrs().Name)
		}
	}
}
