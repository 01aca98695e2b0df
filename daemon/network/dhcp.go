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
	"strconv"
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
}

// WithLeaser replaces the DHCP side (tests).
func WithLeaser(l Leaser) Option { return func(m *Manager) { m.leaser = l } }

type hostLeaser struct{}

var _ Leaser = hostLeaser{}

func (hostLeaser) Acquire(ns *link.Netns, ifname string, id dhcp.Identity, want netip.Addr, timeout time.Duration) (dhcp.Lease, error) {
	c, err := link.OpenDHCP(ns, ifname)
	if err != nil {
		return dhcp.Lease{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dhcp.Acquire(ctx, c, id, want)
}

func (hostLeaser) Renew(ns *link.Netns, ifname string, id dhcp.Identity, l dhcp.Lease, rebind bool, timeout time.Duration) (dhcp.Lease, error) {
	c, err := link.OpenDHCP(ns, ifname)
	if err != nil {
		return dhcp.Lease{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dhcp.Renew(ctx, c, id, l, rebind)
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
		return req.Name
	case hostname != "":
		return hostname
	case req.Namespace != "":
		return req.Namespace + "/" + req.ContainerID
	}
	return req.ContainerID
}

// bundleHostname reads the OCI hostname from the container's bundle; none
// (no bundle, no file, no hostname) is "".
func bundleHostname(bundle string) string {
	if bundle == "" || !filepath.IsAbs(bundle) {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return ""
	}
	var spec struct {
		Hostname string `json:"hostname"`
	}
	if json.Unmarshal(b, &spec) != nil {
		return ""
	}
	return spec.Hostname
}

// identityOf rebuilds the DHCP identity of a stored endpoint.
func identityOf(ep api.Endpoint) (dhcp.Identity, error) {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil || ep.DHCP == nil {
		return dhcp.Identity{}, fmt.Errorf("endpoint %s on %s has no DHCP identity", containerName(ep), ep.Network)
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
	var err error
	if l.Address, err = netip.ParsePrefix(ep.Addresses[0]); err != nil {
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
	ep.DHCP = d
	ep.Addresses = []string{l.Address.String()}
	ep.Gateways = nil
	if gw.IsValid() {
		ep.Gateways = []string{gw.String()}
	}
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
			return fmt.Errorf("no DHCP server answered on parent %s within %s (-o dhcp_timeout): %w", n.Parent, timeout, ErrNoLease)
		}
		return fmt.Errorf("DHCP on parent %s: %w", n.Parent, err)
	}
	undo.add(func() { m.releaseLease(n.Parent, id, l) })
	if pools := st.addrs.Pools(); len(pools) > 0 {
		if !inPools(pools, l.Address.Addr()) {
			return invalid("the DHCP server on parent %s leased %s, which is in no --subnet of the network", n.Parent, l.Address)
		}
	}
	var gw netip.Addr
	if !n.Internal && !routed[4] && l.Router.IsValid() {
		gw = l.Router
		routed[4] = true
	}
	if err := m.leaser.Leased(ns, ep.IfName, l, gw); err != nil {
		return err
	}
	setLease(ep, id, name, l, gw)
	return nil
}

// releaseLease sends l's DHCPRELEASE in the background, holding parent
// meanwhile so that an owned VLAN parent outlives the message.
func (m *Manager) releaseLease(parent string, id dhcp.Identity, l dhcp.Lease) {
	m.addRef(parent, 1)
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		if err := m.leaser.Release(parent, id, l); err != nil {
			m.log.Warn("DHCP release not sent: the lease stays on the server until it expires",
				"parent", parent, "address", l.Address, "err", err)
		}
		m.addRef(parent, -1)
		m.releaseParent(parent)
	}()
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
