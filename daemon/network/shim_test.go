package network

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// fakeShims keeps shims and their host routes in memory.
type fakeShims struct {
	mu     sync.Mutex
	shims  map[string]link.Shim
	routes map[string]map[netip.Addr]bool
}

func newFakeShims() *fakeShims {
	return &fakeShims{shims: map[string]link.Shim{}, routes: map[string]map[netip.Addr]bool{}}
}

func (f *fakeShims) EnsureShim(s link.Shim) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, had := f.shims[s.Name]
	f.shims[s.Name] = s
	if f.routes[s.Name] == nil {
		f.routes[s.Name] = map[netip.Addr]bool{}
	}
	return !had, nil
}

func (f *fakeShims) DeleteShim(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.shims, name)
	delete(f.routes, name)
	return nil
}

func (f *fakeShims) ShimStatus(name string) link.ShimState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.shims[name]
	st := link.ShimState{Exists: ok, Up: ok}
	for _, a := range s.Addrs {
		st.Addrs = append(st.Addrs, a.String())
	}
	return st
}

func (f *fakeShims) SyncHostRoutes(shim string, wantFn func() []netip.Addr, _ []netip.Addr) (int, int, error) {
	want := wantFn()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.shims[shim]; !ok {
		return 0, 0, fmt.Errorf("shim %s: %w", shim, link.ErrNotFound)
	}
	added, removed := 0, 0
	w := map[netip.Addr]bool{}
	for _, a := range want {
		w[a] = true
		if !f.routes[shim][a] {
			added++
		}
	}
	for a := range f.routes[shim] {
		if !w[a] {
			removed++
		}
	}
	f.routes[shim] = w
	return added, removed, nil
}

func (f *fakeShims) AddHostRoutes(shim string, addrs, _ []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.shims[shim]; !ok {
		return fmt.Errorf("shim %s: %w", shim, link.ErrNotFound)
	}
	for _, a := range addrs {
		f.routes[shim][a] = true
	}
	return nil
}

func (f *fakeShims) DelHostRoutes(shim string, addrs []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		delete(f.routes[shim], a)
	}
	return nil
}

func (f *fakeShims) routesOf(shim string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for a := range f.routes[shim] {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

func shimNet(name string, host ...string) api.NetworkCreate {
	req := netReq(name, "macvlan", "10.3.0.0/24", "parent=eth1")
	req.Subnets = append(req.Subnets, "2001:db8:3::/64")
	req.HostAddresses = host
	return req
}

// A network with host addresses has a shim, whose routes follow the
// endpoints; the addresses are never leased; inspect shows the shim;
// network rm takes it away.
func TestFakeShimRoutes(t *testing.T) {
	h := newFakeHost(t)
	h.create(shimNet("lan", "10.3.0.254", "2001:db8:3::fe"))
	n, err := h.m.Inspect("lan")
	if err != nil || n.Shim == nil || !n.Shim.Exists || len(n.Shim.Addresses) != 2 {
		t.Fatalf("inspect: %+v (%v)", n.Shim, err)
	}
	shim := n.Shim.Name
	for i := range 3 {
		h.start(on(fmt.Sprint("c", i), 100+i, "lan"))
	}
	same(t, "routes with three endpoints", h.shims.routesOf(shim),
		[]string{"10.3.0.2", "10.3.0.3", "10.3.0.4", "2001:db8:3::2", "2001:db8:3::3", "2001:db8:3::4"})
	h.stop("", "c1")
	same(t, "routes after a detach", h.shims.routesOf(shim),
		[]string{"10.3.0.2", "10.3.0.4", "2001:db8:3::2", "2001:db8:3::4"})
	// A route lost (a shim deleted and made again) comes back at the sync.
	h.shims.DeleteShim(shim)
	h.m.SyncShims()
	same(t, "routes after the shim came back", h.shims.routesOf(shim),
		[]string{"10.3.0.2", "10.3.0.4", "2001:db8:3::2", "2001:db8:3::4"})
	// A restart syncs too.
	h.restart()
	h.m.SyncShims()
	same(t, "routes after a restart", h.shims.routesOf(shim),
		[]string{"10.3.0.2", "10.3.0.4", "2001:db8:3::2", "2001:db8:3::4"})
	// Fill the rest of the /24: .254 is never handed out.
	for i := 3; i < 300; i++ {
		if _, err := h.attach(on(fmt.Sprint("f", i), 200+i, "lan")); err != nil {
			break
		}
	}
	for _, ep := range h.m.Endpoints() {
		for _, a := range ep.Addresses {
			if a == "10.3.0.254/24" || a == "2001:db8:3::fe/64" {
				t.Fatalf("%s leased the host's address %s", ep.ContainerID, a)
			}
		}
	}
	for _, ep := range h.m.Endpoints() {
		h.stop(ep.Namespace, ep.ContainerID)
	}
	if err := h.m.Remove("lan"); err != nil {
		t.Fatal(err)
	}
	if s := h.shims.ShimStatus(shim); s.Exists {
		t.Errorf("network rm left the shim")
	}
}

// Bad --host-address values get a sentence and leave nothing.
func TestFakeShimRefused(t *testing.T) {
	h := newFakeHost(t)
	for _, c := range []struct {
		req  api.NetworkCreate
		text string
	}{
		{shimNet("a", "10.9.9.9"), "--host-address 10.9.9.9 is in no --subnet"},
		{shimNet("a", "10.3.0.1"), "is the gateway"},
		{shimNet("a", "10.3.0.0"), "is the network address"},
		{shimNet("a", "10.3.0.255"), "--host-address 10.3.0.255 is the broadcast address of 10.3.0.0/24"},
		{shimNet("a", "10.3.0.5", "10.3.0.6"), "one address per family"},
		{shimNet("a", "bogus"), `--host-address "bogus": not an IP address`},
		{func() api.NetworkCreate {
			r := shimNet("a", "10.3.0.7")
			r.Aux = []string{"printer=10.3.0.7"}
			return r
		}(), "reserved by --aux-address printer"},
		{func() api.NetworkCreate {
			r := netReq("a", "ipvlan", "10.3.0.0/24", "parent=eth1", "ipvlan_mode=l3")
			r.HostAddresses = []string{"10.3.0.9"}
			return r
		}(), "ipvlan l3 containers are routed"},
	} {
		_, err := h.m.Create(c.req)
		wantErr(t, err, ErrInvalid, c.text)
	}
	if nets := h.m.List(); len(nets) != 0 {
		t.Errorf("networks left: %v", nets)
	}
	if len(h.shims.shims) != 0 {
		t.Errorf("shims left: %v", h.shims.shims)
	}
}
