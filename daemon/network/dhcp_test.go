package network

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/ipam/dhcp"
)

// fakeLeaser is a DHCP server and the interfaces' addresses in memory:
// leases of length life by client id, renewals counted, NAKs on demand.
type fakeLeaser struct {
	mu        sync.Mutex
	life      time.Duration
	next      int
	byClient  map[string]netip.Addr
	on        map[string]netip.Prefix // "inode/ifname" -> address on the interface
	renewals  int
	renewals6 int
	released  []netip.Addr
	nak       bool
	silent    bool
}

func newFakeLeaser(life time.Duration) *fakeLeaser {
	return &fakeLeaser{life: life, byClient: map[string]netip.Addr{}, on: map[string]netip.Prefix{}}
}

func (f *fakeLeaser) lease(a netip.Addr) dhcp.Lease {
	now := time.Now()
	return dhcp.Lease{Address: netip.PrefixFrom(a, 24), Router: netip.MustParseAddr("10.9.0.1"),
		Server: netip.MustParseAddr("10.9.0.1"), Domain: "lan.test", Obtained: now,
		Renew: now.Add(f.life / 2), Rebind: now.Add(f.life * 7 / 8), Expires: now.Add(f.life)}
}

func (f *fakeLeaser) Acquire(_ *link.Netns, _ string, id dhcp.Identity, _ netip.Addr, _ time.Duration) (dhcp.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.silent {
		return dhcp.Lease{}, dhcp.ErrNoAnswer
	}
	cid := string(id.ClientID())
	a, ok := f.byClient[cid]
	if !ok {
		f.next++
		a = netip.AddrFrom4([4]byte{10, 9, 0, byte(99 + f.next)})
		f.byClient[cid] = a
	}
	return f.lease(a), nil
}

func (f *fakeLeaser) Renew(_ *link.Netns, _ string, _ dhcp.Identity, l dhcp.Lease, _ bool, _ time.Duration) (dhcp.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.nak:
		return dhcp.Lease{}, dhcp.ErrNak
	case f.silent:
		return dhcp.Lease{}, dhcp.ErrNoAnswer
	}
	f.renewals++
	return f.lease(l.Address.Addr()), nil
}

func (f *fakeLeaser) Release(_ string, id dhcp.Identity, l dhcp.Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, l.Address.Addr())
	return nil
}

func (f *fakeLeaser) Leased(ns *link.Netns, ifname string, l dhcp.Lease, _ netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on[fmt.Sprint(ns.Inode, "/", ifname)] = l.Address
	return nil
}

func (f *fakeLeaser) Unlease(ns *link.Netns, ifname string, _ netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.on, fmt.Sprint(ns.Inode, "/", ifname))
	return nil
}

func (f *fakeLeaser) state() (renewals int, released []netip.Addr, on int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewals, append([]netip.Addr(nil), f.released...), len(f.on)
}

func dhcpHost(t *testing.T, life time.Duration) (*fakeHost, *fakeLeaser) {
	h := newFakeHost(t)
	f := newFakeLeaser(life)
	h.opts = append(h.opts, WithLeaser(f))
	h.restart()
	t.Cleanup(h.m.StopLeases)
	h.create(api.NetworkCreate{Name: "lan", IPAMDriver: "dhcp", Options: map[string]string{"parent": "eth1"}})
	return h, f
}

// eventually waits up to 5 s for ok: for timers to fire, not a deadline.
func eventually(t *testing.T, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !ok(); time.Sleep(10 * time.Millisecond) {
	}
}

func onlyEndpoint(t *testing.T, m *Manager) api.Endpoint {
	t.Helper()
	eps := m.Endpoints()
	if len(eps) != 1 {
		t.Fatalf("%d endpoints, want 1: %+v", len(eps), eps)
	}
	return eps[0]
}

// An attach records the lease in the endpoint, renewals keep it there,
// and a detach releases it on the server.
func TestFakeDHCPLeaseKept(t *testing.T) {
	h, f := dhcpHost(t, 400*time.Millisecond)
	req := on("web", 100, "lan")
	req.Name = "web1"
	h.start(req)
	ep := onlyEndpoint(t, h.m)
	if ep.DHCP == nil || ep.DHCP.State != leaseBound || ep.DHCP.Name != "web1" || len(ep.Addresses) != 1 {
		t.Fatalf("endpoint after attach: %+v (lease %+v)", ep, ep.DHCP)
	}
	same(t, "gateways", ep.Gateways, []string{"10.9.0.1"})
	eventually(t, func() bool { n, _, _ := f.state(); return n >= 2 }) // past two T1s
	ep = onlyEndpoint(t, h.m)
	if n, _, _ := f.state(); n < 2 || ep.DHCP == nil || ep.DHCP.State != leaseBound {
		t.Fatalf("after %d renewals: endpoint %+v, lease %+v", n, ep, ep.DHCP)
	}
	// A restart keeps the lease and goes on renewing it.
	before, _, _ := f.state()
	h.m.StopLeases()
	h.restart()
	eventually(t, func() bool { n, _, _ := f.state(); return n > before })
	if n, _, _ := f.state(); n <= before {
		t.Errorf("no renewal after a restart (%d before, %d after)", before, n)
	}
	h.stop("", "web")
	h.m.Wait()
	_, released, _ := f.state()
	same(t, "released", fmt.Sprint(released), fmt.Sprint([]netip.Addr{netip.MustParseAddr("10.9.0.100")}))
}

// A NAK takes the address off the interface and records the lease as
// lost; a new lease comes once the server grants one again.
func TestFakeDHCPNak(t *testing.T) {
	h, f := dhcpHost(t, 200*time.Millisecond)
	lostRetry = 50 * time.Millisecond
	t.Cleanup(func() { lostRetry = 10 * time.Second })
	h.start(on("web", 100, "lan"))
	f.mu.Lock()
	f.nak, f.silent = true, true
	f.mu.Unlock()
	eventually(t, func() bool { ep := onlyEndpoint(t, h.m); return ep.DHCP.State == leaseLost })
	ep := onlyEndpoint(t, h.m)
	if ep.DHCP == nil || ep.DHCP.State != leaseLost || len(ep.Addresses) != 0 || len(ep.Gateways) != 0 {
		t.Fatalf("after a NAK: %+v (lease %+v)", ep, ep.DHCP)
	}
	if _, _, on := f.state(); on != 0 {
		t.Fatalf("the address is still on the interface after a NAK")
	}
	f.mu.Lock()
	f.nak, f.silent = false, false
	f.mu.Unlock()
	eventually(t, func() bool { ep := onlyEndpoint(t, h.m); return ep.DHCP.State == leaseBound })
	ep = onlyEndpoint(t, h.m)
	if ep.DHCP == nil || ep.DHCP.State != leaseBound || len(ep.Addresses) != 1 {
		t.Fatalf("no new lease once the server answers: %+v (lease %+v)", ep, ep.DHCP)
	}
}

// No answer fails the attach, naming the parent, and leaves nothing.
func TestFakeDHCPNoServer(t *testing.T) {
	h, f := dhcpHost(t, time.Minute)
	f.silent = true
	_, err := h.attach(on("web", 100, "lan"))
	wantErr(t, err, ErrNoLease, "no DHCP lease on parent eth1 within 5s (-o dhcp_timeout): no server answered, or it was slow")
	same(t, "interfaces", h.k.ifs(100), none)
	same(t, "endpoints", h.eps(), none)
	same(t, "intents", h.intents(), none)
	_, err = h.attach(api.AttachRequest{ContainerID: "s", Pid: 101, Networks: []api.NetworkAttach{{Name: "lan", IP: "10.9.0.5"}}})
	wantErr(t, err, ErrInvalid, "come from the LAN's DHCP server")
}

func (f *fakeLeaser) Acquire6(_ *link.Netns, _ string, id dhcp.Identity, _ time.Duration) (dhcp.Lease6, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.silent {
		return dhcp.Lease6{}, dhcp.ErrNoAnswer
	}
	now := time.Now()
	return dhcp.Lease6{Address: netip.MustParseAddr("2001:db8::100"), Server: []byte{0, 3, 0, 1, 1, 2, 3, 4, 5, 6},
		Obtained: now, Renew: now.Add(f.life / 2), Rebind: now.Add(f.life * 4 / 5), Expires: now.Add(f.life)}, nil
}

func (f *fakeLeaser) Renew6(ns *link.Netns, ifname string, id dhcp.Identity, l dhcp.Lease6, _ bool, t time.Duration) (dhcp.Lease6, error) {
	f.mu.Lock()
	f.renewals6++
	f.mu.Unlock()
	return f.Acquire6(ns, ifname, id, t)
}

func (f *fakeLeaser) Release6(_ string, _ dhcp.Identity, l dhcp.Lease6) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, l.Address)
	return nil
}

func (f *fakeLeaser) Leased6(ns *link.Netns, ifname string, addr netip.Prefix, _ dhcp.Lease6) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on[fmt.Sprint(ns.Inode, "/", ifname, "/6")] = addr
	return nil
}

func (f *fakeLeaser) WaitSLAAC(*link.Netns, string, time.Duration) (netip.Prefix, error) {
	return netip.MustParsePrefix("2001:db8:5ac::7/64"), nil
}

// A dual-stack DHCP network keeps both leases and releases both.
func TestFakeDHCPDualStack(t *testing.T) {
	h := newFakeHost(t)
	f := newFakeLeaser(400 * time.Millisecond)
	h.opts = append(h.opts, WithLeaser(f))
	h.restart()
	t.Cleanup(h.m.StopLeases)
	h.create(api.NetworkCreate{Name: "lan", IPAMDriver: "dhcp", IPv6: true, Options: map[string]string{"parent": "eth1"}},
		api.NetworkCreate{Name: "ra", IPAMDriver: "dhcp", IPv6: true, Options: map[string]string{"parent": "eth1", "ipv6_mode": "slaac"}})
	h.start(on("web", 100, "lan"))
	ep := onlyEndpoint(t, h.m)
	same(t, "addresses", ep.Addresses, []string{"10.9.0.100/24", "2001:db8::100/128"})
	// A /128 counts under its /64, not as a subnet (a metrics series) of
	// its own.
	n, _ := h.m.Inspect("lan")
	same(t, "usage", fmt.Sprint(n.Usage), "[{10.9.0.0/24 1 <nil>} {2001:db8::/64 1 <nil>}]")
	eventually(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.renewals6 >= 1 && f.renewals >= 1 })
	ep = onlyEndpoint(t, h.m)
	same(t, "addresses after renewals", ep.Addresses, []string{"10.9.0.100/24", "2001:db8::100/128"})
	h.stop("", "web")
	h.m.Wait()
	_, released, _ := f.state()
	sort.Slice(released, func(i, j int) bool { return released[i].Less(released[j]) })
	same(t, "released", fmt.Sprint(released), "[10.9.0.100 2001:db8::100]")

	h.start(on("slaac", 101, "ra"))
	ep = onlyEndpoint(t, h.m)
	if len(ep.Addresses) != 2 || ep.Addresses[1] != "2001:db8:5ac::7/64" || ep.DHCP.V6.Mode != "slaac" {
		t.Fatalf("slaac endpoint %+v (v6 %+v)", ep, ep.DHCP.V6)
	}

	// A lease outside the network's --subnet of its family fails the
	// attach; an IPv6-only --subnet does not judge the IPv4 lease.
	h.create(api.NetworkCreate{Name: "v6sub", IPAMDriver: "dhcp", IPv6: true, Subnets: []string{"2001:db8:99::/64"},
		Options: map[string]string{"parent": "eth1"}})
	_, err := h.attach(on("out", 102, "v6sub"))
	wantErr(t, err, ErrInvalid, "leased 2001:db8::100, which is in no IPv6 --subnet")
}

// Two containers of one name on a DHCP network would be one client to the
// server, which hands the second the first one's lease: the second is
// refused, saying so, and the first one's lease is not released.
func TestFakeDHCPOneNameOneClient(t *testing.T) {
	h, f := dhcpHost(t, time.Minute)
	first := on("web", 100, "lan")
	first.Name = "runc"
	h.start(first)
	second := on("web2", 101, "lan")
	second.Name = "runc"
	_, err := h.attach(second)
	wantErr(t, err, ErrInvalid, `container web on network lan is DHCP client "runc" already`)
	same(t, "endpoints", h.eps(), []string{"lan web eth0 10.9.0.100/24"})
	same(t, "the second one's interfaces", h.k.ifs(101), none)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.released) != 0 {
		t.Errorf("released %v: the first container's lease is in use", f.released)
	}
}
