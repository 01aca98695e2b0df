package network

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/ipam"
	"github.com/underlay/underlay/ipam/dhcp"
)

// The "dhcp" address driver: each endpoint leases its address from the
// LAN's DHCP server, through its own interface inside the container's
// namespace, and underlayd keeps the lease (renewals, expiry, release).
// The lease lives in the endpoint's record, so a restarted underlayd
// renews instead of losing it.

const dhcpIPAM = "dhcp"

// defaultDHCPTimeout bounds an attach's lease exchange (-o dhcp_timeout).
const defaultDHCPTimeout = 5 * time.Second

// Leaser is the DHCP work of the driver: the exchanges with the server
// over a container's interface, the address that follows from them, and
// the release, sent from the parent because the container's namespace is
// often gone by then. hostLeaser is the real one.
type Leaser interface {
	Acquire(ns *link.Netns, ifname string, id dhcp.Identity, want netip.Addr, timeout time.Duration) (dhcp.Lease, error)
	Renew(ns *link.Netns, ifname string, id dhcp.Identity, l dhcp.Lease, rebind bool, timeout time.Duration) (dhcp.Lease, error)
	Release(parent string, id dhcp.Identity, l dhcp.Lease) error
	// Leased puts l's address (and gw, if valid, as the default route)
	// on the interface, with the lease's time as its lifetime.
	Leased(ns *link.Netns, ifname string, l dhcp.Lease, gw netip.Addr) error
	Unlease(ns *link.Netns, ifname string, addr netip.Prefix) error

	// IPv6: DHCPv6 IA_NA, or the address a router advertisement gave.
	Acquire6(ns *link.Netns, ifname string, id dhcp.Identity, timeout time.Duration) (dhcp.Lease6, error)
	Renew6(ns *link.Netns, ifname string, id dhcp.Identity, l dhcp.Lease6, rebind bool, timeout time.Duration) (dhcp.Lease6, error)
	Release6(parent string, id dhcp.Identity, l dhcp.Lease6) error
	Leased6(ns *link.Netns, ifname string, addr netip.Prefix, l dhcp.Lease6) error
	WaitSLAAC(ns *link.Netns, ifname string, timeout time.Duration) (netip.Prefix, error)
}

// WithLeaser replaces the DHCP side (tests).
func WithLeaser(l Leaser) Option { return func(m *Manager) { m.leaser = l } }

type hostLeaser struct{}

var _ Leaser = hostLeaser{}

func (hostLeaser) Acquire(ns *link.Netns, ifname string, id dhcp.Identity, want netip.Addr, timeout time.Duration) (dhcp.Lease, error) {
	return exchangeOn(link.OpenDHCP, ns, ifname, timeout, func(ctx context.Context, c *link.DHCPConn) (dhcp.Lease, error) {
		return dhcp.Acquire(ctx, c, id, want)
	})
}

func (hostLeaser) Renew(ns *link.Netns, ifname string, id dhcp.Identity, l dhcp.Lease, rebind bool, timeout time.Duration) (dhcp.Lease, error) {
	return exchangeOn(link.OpenDHCP, ns, ifname, timeout, func(ctx context.Context, c *link.DHCPConn) (dhcp.Lease, error) {
		return dhcp.Renew(ctx, c, id, l, rebind)
	})
}

// exchangeOn runs one exchange on a DHCP socket of ifname in ns, opened
// by open and closed after, bounded by timeout.
func exchangeOn[L any](open func(*link.Netns, string) (*link.DHCPConn, error), ns *link.Netns, ifname string,
	timeout time.Duration, fn func(context.Context, *link.DHCPConn) (L, error)) (L, error) {
	c, err := open(ns, ifname)
	if err != nil {
		var zero L
		return zero, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return fn(ctx, c)
}

func (hostLeaser) Release(parent string, id dhcp.Identity, l dhcp.Lease) error {
	msg, err := dhcp.ReleaseMessage(id, l)
	if err != nil {
		return err
	}
	// The frame goes to the server itself when it is on the lease's
	// subnet, else to the router that relayed the lease.
	hop := l.Server
	if !l.Address.Masked().Contains(hop) && l.Router.IsValid() {
		hop = l.Router
	}
	return link.SendUDPFrom(parent, id.MAC, netip.AddrPortFrom(l.Address.Addr(), 68),
		netip.AddrPortFrom(l.Server, 67), hop, msg, 300*time.Millisecond)
}

func (hostLeaser) Leased(ns *link.Netns, ifname string, l dhcp.Lease, gw netip.Addr) error {
	return link.Leased(ns, ifname, l.Address, gw, time.Until(l.Expires))
}

func (hostLeaser) Unlease(ns *link.Netns, ifname string, addr netip.Prefix) error {
	return link.Unlease(ns, ifname, addr)
}

func (hostLeaser) Acquire6(ns *link.Netns, ifname string, id dhcp.Identity, timeout time.Duration) (dhcp.Lease6, error) {
	return exchangeOn(link.OpenDHCP6, ns, ifname, timeout, func(ctx context.Context, c *link.DHCPConn) (dhcp.Lease6, error) {
		return dhcp.Acquire6(ctx, c, id)
	})
}

func (hostLeaser) Renew6(ns *link.Netns, ifname string, id dhcp.Identity, l dhcp.Lease6, rebind bool, timeout time.Duration) (dhcp.Lease6, error) {
	return exchangeOn(link.OpenDHCP6, ns, ifname, timeout, func(ctx context.Context, c *link.DHCPConn) (dhcp.Lease6, error) {
		return dhcp.Renew6(ctx, c, id, l, rebind)
	})
}

func (hostLeaser) Release6(parent string, id dhcp.Identity, l dhcp.Lease6) error {
	msg, err := dhcp.Release6Message(id, l)
	if err != nil {
		return err
	}
	return link.SendUDPFrom(parent, id.MAC, netip.AddrPortFrom(dhcp.EUI64LinkLocal(id.MAC), 546),
		netip.AddrPortFrom(dhcp.AllServers, 547), netip.Addr{}, msg, 0)
}

func (hostLeaser) Leased6(ns *link.Netns, ifname string, addr netip.Prefix, l dhcp.Lease6) error {
	return link.Leased(ns, ifname, addr, netip.Addr{}, time.Until(l.Expires))
}

func (hostLeaser) WaitSLAAC(ns *link.Netns, ifname string, timeout time.Duration) (netip.Prefix, error) {
	return link.WaitAddress(ns, ifname, timeout)
}

// dhcpAddresses is the network's AddressDriver: the server holds the
// leases, so there is nothing to allocate here. Its pools are the subnets
// the user gave, if any, which a lease must fall in.
type dhcpAddresses struct{ pools []ipam.Pool }

var errDHCPStatic = errors.New("its addresses come from the LAN's DHCP server, so a static io.underlay.ip or io.underlay.ip6 cannot be set; reserve the address for the container's MAC on the server instead")

func (d dhcpAddresses) Pools() []ipam.Pool { return d.pools }
func (d dhcpAddresses) Claim(ipam.Owner, netip.Addr) (ipam.Pool, error) {
	return ipam.Pool{}, invalid("%w", errDHCPStatic)
}
func (d dhcpAddresses) Allocate(ipam.Owner, int) (netip.Addr, ipam.Pool, error) {
	return netip.Addr{}, ipam.Pool{}, invalid("%w", errDHCPStatic)
}
func (dhcpAddresses) Release(ipam.Owner, netip.Addr)    {}
func (dhcpAddresses) Hold(ipam.Owner, netip.Addr) error { return nil }
func (dhcpAddresses) Held(func(ipam.Owner, netip.Addr)) {}
func (dhcpAddresses) Renew() error                      { return nil }

// dhcpTimeout is the network's -o dhcp_timeout.
func dhcpTimeout(n api.Network) time.Duration {
	if d, err := parseDHCPTimeout(n.Options["dhcp_timeout"]); err == nil && d > 0 {
		return d
	}
	return defaultDHCPTimeout
}

// parseDHCPTimeout takes a Go duration ("5s", "1m") or whole seconds.
func parseDHCPTimeout(s string) (time.Duration, error) {
	if s == "" {
		return defaultDHCPTimeout, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		s = strconv.Itoa(n) + "s"
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
		return 0, fmt.Errorf("-o dhcp_timeout=%s: want a time from 100ms to 10m, such as 5s", s)
	}
	return d, nil
}

// dhcpName is the name a container's DHCP identity derives from: the
// runtime's name for it, else its hostname, else its id (with its
// containerd namespace, which ids are unique within).
func dhcpName(req api.AttachRequest, hostname string) string {
	switch {
	case req.Name != "":
		first, _, _ := strings.Cut(req.Name, ",")
		return first
	case hostname != "":
		return hostname
	case req.Namespace != "":
		return req.Namespace + "/" + req.ContainerID
	}
	return req.ContainerID
}

// bundleSpec is what underlayd reads from a container's OCI bundle: its
// hostname, and its annotations (which name it).
type bundleSpec struct {
	Hostname    string            `json:"hostname"`
	Annotations map[string]string `json:"annotations"`
}

// readBundle reads the bundle's config.json, once per attach and only for
// a network that needs the names; none (no bundle, no file) is zero.
func readBundle(bundle string) bundleSpec {
	var spec bundleSpec
	if bundle == "" || !filepath.IsAbs(bundle) {
		return spec
	}
	if b, err := os.ReadFile(filepath.Join(bundle, "config.json")); err == nil {
		_ = json.Unmarshal(b, &spec)
	}
	return spec
}

// identityOf rebuilds the DHCP identity of a stored endpoint.
func identityOf(ep api.Endpoint) (dhcp.Identity, error) {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil || ep.DHCP == nil {
		return dhcp.Identity{}, fmt.Errorf("endpoint %s on %s has no DHCP identity", ep.Container(), ep.Network)
	}
	return dhcp.NewIdentity(ep.Network, ep.DHCP.Name, ep.DHCP.Hostname, mac), nil
}

// leaseOf reads the stored lease of ep back.
func leaseOf(ep api.Endpoint) (dhcp.Lease, bool) {
	d := ep.DHCP
	if d == nil || len(ep.Addresses) == 0 {
		return dhcp.Lease{}, false
	}
	var l dhcp.Lease
	for _, a := range ep.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
			l.Address = p
		}
	}
	if !l.Address.IsValid() {
		return l, false
	}
	l.Server, _ = netip.ParseAddr(d.Server)
	l.Router, _ = netip.ParseAddr(d.Router)
	for _, s := range d.DNS {
		if a, err := netip.ParseAddr(s); err == nil {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Domain = d.Domain
	l.Obtained, _ = time.Parse(time.RFC3339Nano, d.Obtained)
	l.Renew, _ = time.Parse(time.RFC3339Nano, d.Renew)
	l.Rebind, _ = time.Parse(time.RFC3339Nano, d.Rebind)
	l.Expires, _ = time.Parse(time.RFC3339Nano, d.Expires)
	return l, l.Server.IsValid() && !l.Expires.IsZero()
}

// setLease records lease l (bound) in ep, with gw as its default route
// when it gives one.
func setLease(ep *api.Endpoint, id dhcp.Identity, name string, l dhcp.Lease, gw netip.Addr) {
	d := &api.DHCPLease{Name: name, Hostname: id.Hostname, ClientID: hex.EncodeToString(id.ClientID()),
		Server: l.Server.String(), Domain: l.Domain, State: "bound",
		Obtained: l.Obtained.UTC().Format(time.RFC3339Nano), Renew: l.Renew.UTC().Format(time.RFC3339Nano),
		Rebind: l.Rebind.UTC().Format(time.RFC3339Nano), Expires: l.Expires.UTC().Format(time.RFC3339Nano)}
	if l.Router.IsValid() {
		d.Router = l.Router.String()
	}
	for _, a := range l.DNS {
		d.DNS = append(d.DNS, a.String())
	}
	d.Routed = gw.IsValid()
	if ep.DHCP != nil {
		d.V6 = ep.DHCP.V6
	}
	ep.DHCP = d
	ep.Addresses = append([]string{l.Address.String()}, v6Of(ep.Addresses)...)
	ep.Gateways = nil
	if gw.IsValid() {
		ep.Gateways = []string{gw.String()}
	}
}

// v6Of keeps the IPv6 addresses of addrs.
func v6Of(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is6() {
			out = append(out, a)
		}
	}
	return out
}

// ipv6Mode is a DHCP network's -o ipv6_mode: "dhcpv6" (the default) or
// "slaac"; "" for a network without IPv6.
func ipv6Mode(n api.Network) string {
	if !n.IPv6 {
		return ""
	}
	return valueOr(n.Options["ipv6_mode"], "dhcpv6")
}

// setLease6 records IPv6 lease l (or, for slaac, just addr) in ep.
func setLease6(ep *api.Endpoint, mode string, addr netip.Prefix, l dhcp.Lease6) {
	d := &api.DHCP6Lease{Mode: mode, State: leaseBound}
	if mode == "dhcpv6" {
		d.Server = hex.EncodeToString(l.Server)
		d.Domains = l.Domains
		d.Obtained = l.Obtained.UTC().Format(time.RFC3339Nano)
		d.Renew = l.Renew.UTC().Format(time.RFC3339Nano)
		d.Rebind = l.Rebind.UTC().Format(time.RFC3339Nano)
		d.Expires = l.Expires.UTC().Format(time.RFC3339Nano)
		for _, a := range l.DNS {
			d.DNS = append(d.DNS, a.String())
		}
	}
	ep.DHCP.V6 = d
	var v4 []string
	for _, a := range ep.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
			v4 = append(v4, a)
		}
	}
	ep.Addresses = v4
	if addr.IsValid() {
		ep.Addresses = append(ep.Addresses, addr.String())
	}
}

// lease6Of reads the stored DHCPv6 lease of ep back, with its address.
func lease6Of(ep api.Endpoint) (dhcp.Lease6, netip.Prefix, bool) {
	if ep.DHCP == nil || ep.DHCP.V6 == nil || ep.DHCP.V6.Mode != "dhcpv6" {
		return dhcp.Lease6{}, netip.Prefix{}, false
	}
	d := ep.DHCP.V6
	var l dhcp.Lease6
	var addr netip.Prefix
	for _, a := range ep.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is6() {
			addr = p
		}
	}
	l.Address = addr.Addr()
	l.Server, _ = hex.DecodeString(d.Server)
	l.Domains = d.Domains
	for _, s := range d.DNS {
		if a, err := netip.ParseAddr(s); err == nil {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Obtained, _ = time.Parse(time.RFC3339Nano, d.Obtained)
	l.Renew, _ = time.Parse(time.RFC3339Nano, d.Renew)
	l.Rebind, _ = time.Parse(time.RFC3339Nano, d.Rebind)
	l.Expires, _ = time.Parse(time.RFC3339Nano, d.Expires)
	return l, addr, addr.IsValid() && len(l.Server) > 0 && !l.Expires.IsZero()
}

// v6Prefix is how a leased IPv6 address goes on the interface: with the
// length of the network's --subnet that holds it, else as a /128 (the
// on-link prefix then comes from the router advertisements).
func v6Prefix(pools []ipam.Pool, a netip.Addr) netip.Prefix {
	for _, p := range pools {
		if p.Subnet.Contains(a) {
			return netip.PrefixFrom(a, p.Subnet.Bits())
		}
	}
	return netip.PrefixFrom(a, 128)
}

// leaseInterface runs the first exchange for ep once its interface is up
// in ns, puts the address on it, and records the lease in ep. want is a
// restarted container's old address.
func (m *Manager) leaseInterface(st *netState, ns *link.Netns, ep *api.Endpoint, id dhcp.Identity, name string, want netip.Addr, routed map[int]bool, undo *undoList) error {
	n := st.net
	timeout := dhcpTimeout(n)
	l, err := m.leaser.Acquire(ns, ep.IfName, id, want, timeout)
	if err != nil {
		if errors.Is(err, dhcp.ErrNoAnswer) {
			return fmt.Errorf("no DHCP lease on parent %s within %s (-o dhcp_timeout): no server answered, or it was slow (dnsmasq pings each new address first, one at a time; --no-ping): %w", n.Parent, timeout, ErrNoLease)
		}
		return fmt.Errorf("DHCP on parent %s: %w", n.Parent, err)
	}
	undo.add(func() {
		// Never a release of an address another endpoint has: the server
		// would free a lease in use.
		if !addressHeld(st, l.Address.Addr(), keyOf(*ep)) {
			m.releaseLease(n.Parent, id, l)
		}
	})
	if pools := familyPools(st.addrs.Pools(), 4); len(pools) > 0 {
		if !inPools(pools, l.Address.Addr()) {
			return invalid("the DHCP server on parent %s leased %s, which is in no IPv4 --subnet of the network", n.Parent, l.Address)
		}
	}
	var gw netip.Addr
	if !n.Internal && !routed[4] && l.Router.IsValid() {
		gw = l.Router
		routed[4] = true
	}
	if err := m.leaser.Leased(ns, ep.IfName, l, gw); errors.Is(err, link.ErrDefaultRouted) {
		// A pod's primary network has the default route: as a static
		// secondary network does, this one adds only its subnet.
		gw, routed[4] = netip.Addr{}, false
	} else if err != nil {
		return err
	}
	setLease(ep, id, name, l, gw)
	switch mode := ipv6Mode(n); mode {
	case "dhcpv6":
		l6, err := m.leaser.Acquire6(ns, ep.IfName, id, timeout)
		if err != nil {
			if errors.Is(err, dhcp.ErrNoAnswer) {
				return fmt.Errorf("no DHCPv6 server answered on parent %s within %s (-o dhcp_timeout; -o ipv6_mode=slaac for a LAN without one): %w", n.Parent, timeout, ErrNoLease)
			}
			return fmt.Errorf("DHCPv6 on parent %s: %w", n.Parent, err)
		}
		undo.add(func() { m.releaseLease6(n.Parent, id, l6) })
		if pools := familyPools(st.addrs.Pools(), 6); len(pools) > 0 && !inPools(pools, l6.Address) {
			return invalid("the DHCPv6 server on parent %s leased %s, which is in no IPv6 --subnet of the network", n.Parent, l6.Address)
		}
		addr := v6Prefix(st.addrs.Pools(), l6.Address)
		if err := m.leaser.Leased6(ns, ep.IfName, addr, l6); err != nil {
			return err
		}
		setLease6(ep, mode, addr, l6)
	case "slaac":
		addr, err := m.leaser.WaitSLAAC(ns, ep.IfName, timeout)
		if err != nil {
			return fmt.Errorf("on parent %s: %w (-o dhcp_timeout): %w", n.Parent, err, ErrNoLease)
		}
		setLease6(ep, mode, addr, dhcp.Lease6{})
	}
	return nil
}

// releaseLease6 sends l's DHCPv6 RELEASE in the background, as
// releaseLease does for DHCPv4.
func (m *Manager) releaseLease6(parent string, id dhcp.Identity, l dhcp.Lease6) {
	m.addRef(parent, 1)
	m.inBackground(func() {
		if err := m.leaser.Release6(parent, id, l); err != nil {
			m.log.Warn("DHCPv6 release not sent: the lease stays on the server until it expires",
				"parent", parent, "address", l.Address, "err", err)
		}
		m.addRef(parent, -1)
		m.releaseParent(parent)
	})
}

// releaseLease sends l's DHCPRELEASE in the background, holding parent
// meanwhile so that an owned VLAN parent outlives the message.
func (m *Manager) releaseLease(parent string, id dhcp.Identity, l dhcp.Lease) {
	m.addRef(parent, 1)
	m.inBackground(func() {
		if err := m.leaser.Release(parent, id, l); err != nil {
			m.log.Warn("DHCP release not sent: the lease stays on the server until it expires",
				"parent", parent, "address", l.Address, "err", err)
		}
		m.addRef(parent, -1)
		m.releaseParent(parent)
	})
}

func inPools(pools []ipam.Pool, a netip.Addr) bool {
	for _, p := range pools {
		if p.Subnet.Contains(a) {
			return true
		}
	}
	return false
}

// dhcpHostname is option 12: the OCI hostname, else the name, cut to
// what a hostname may be (a DHCP server refuses or mangles the rest).
func dhcpHostname(name, hostname string) string {
	if hostname == "" {
		hostname = name
	}
	out := make([]byte, 0, len(hostname))
	for i := 0; i < len(hostname) && len(out) < 63; i++ {
		c := hostname[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			out = append(out, c)
		case c == '.':
			i = len(hostname) // the first label only
		default:
			out = append(out, '-')
		}
	}
	return string(out)
}

// dhcpNameHolder is the endpoint on st, of another container than key,
// whose lease goes by name.
func dhcpNameHolder(st *netState, key epKey, name string) (api.Endpoint, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, ep := range st.all() {
		if ep.DHCP != nil && ep.DHCP.Name == name && keyOf(ep) != key {
			return ep, true
		}
	}
	return api.Endpoint{}, false
}

// addressHeld says whether an endpoint on st, of another container than
// key, has address a.
func addressHeld(st *netState, a netip.Addr, key epKey) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, r := range st.eps {
		if k != key && slices.Contains(r.addrs(), a) {
			return true
		}
	}
	return false
}

// familyPools are the pools of one family (4 or 6).
func familyPools(pools []ipam.Pool, fam int) []ipam.Pool {
	var out []ipam.Pool
	for _, p := range pools {
		if p.Family() == fam {
			out = append(out, p)
		}
	}
	return out
}
