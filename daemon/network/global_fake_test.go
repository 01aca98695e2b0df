package network

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// fakeGlobal is the shared store of global networks in memory, as one host
// sees it. Its address drivers may be called concurrently, as etcd's are,
// and their allocations wait at a gate the test opens: a slow round trip.
type fakeGlobal struct {
	mu        sync.Mutex
	recs      map[string][]byte
	removing  map[string][]byte // records whose removal stopped half-way: hidden
	elsewhere map[string]bool   // networks with endpoints on other hosts
	drivers   map[string]*fakeShared
	created   map[string]int64 // by name: the order of creation
	rev       int64
	meanwhile func(*fakeGlobal) // run once by the next CreateNetwork, under mu
	gate      chan struct{}     // allocations wait until it is closed, if set
	fail      error             // the allocations fail with it, if set
}

func newFakeGlobal() *fakeGlobal {
	return &fakeGlobal{recs: map[string][]byte{}, removing: map[string][]byte{}, elsewhere: map[string]bool{},
		drivers: map[string]*fakeShared{}, created: map[string]int64{}}
}

func (g *fakeGlobal) Networks() (map[string][]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.recs), nil
}

// NetworksCreated orders the networks by their creation, as etcd's
// revisions do.
func (g *fakeGlobal) NetworksCreated() (map[string][]byte, map[string]int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int64{}
	for name := range g.recs {
		out[name] = g.created[name]
	}
	return maps.Clone(g.recs), out, nil
}

func (g *fakeGlobal) CreateNetwork(name string, rec []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.meanwhile != nil {
		g.meanwhile(g) // another host's create, landing just before this one
		g.meanwhile = nil
	}
	g.store(name, rec)
	return nil
}

func (g *fakeGlobal) store(name string, rec []byte) {
	g.recs[name] = rec
	g.rev++
	g.created[name] = g.rev
}

// RemoveNetwork removes name, or settles its interrupted removal: the
// network is restored if another host has endpoints on it.
func (g *fakeGlobal) RemoveNetwork(name string, rec []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r, ok := g.removing[name]; ok {
		delete(g.removing, name)
		g.recs[name] = r
	} else if rec == nil {
		return inNetwork(name, ErrNotFound)
	}
	if g.elsewhere[name] {
		return inNetwork(name, ErrInUse)
	}
	delete(g.recs, name)
	return nil
}

// globalNet is a host on a shared store with global network name
// (macvlan, 10.7.0.0/24 on eth1).
func globalNet(t *testing.T, name string) (*fakeGlobal, *fakeHost) {
	g := newFakeGlobal()
	h := newFakeHost(t)
	h.opts = append(h.opts, WithGlobal(g, nil, 0))
	h.restart()
	req := netReq(name, "macvlan", "10.7.0.0/24", "parent=eth1")
	req.Scope = scopeGlobal
	h.create(req)
	return g, h
}

// interrupt leaves name as a remove that stopped half-way does.
func (g *fakeGlobal) interrupt(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removing[name] = g.recs[name]
	delete(g.recs, name)
}

func (g *fakeGlobal) Addresses(name string, _ []byte, pools []ipam.Pool) (AddressDriver, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := &fakeShared{g: g, a: ipam.NewAllocator(pools), held: map[netip.Addr]ipam.Owner{}}
	g.drivers[name] = d
	return d, nil
}

func (g *fakeGlobal) Hosts() ([]api.Host, error) { return nil, nil }

func (g *fakeGlobal) Reclaim(string, func(string, []netip.Addr) (map[netip.Addr]bool, error)) (int, int, error) {
	return 0, 0, nil
}

// held lists the addresses network's driver holds.
func (g *fakeGlobal) held(network string) []string {
	g.mu.Lock()
	d := g.drivers[network]
	g.mu.Unlock()
	var out []string
	d.Held(func(_ ipam.Owner, a netip.Addr) { out = append(out, a.String()) })
	return out
}

// fakeShared is a global network's address driver.
type fakeShared struct {
	g      *fakeGlobal
	mu     sync.Mutex
	a      *ipam.Allocator
	held   map[netip.Addr]ipam.Owner
	others map[netip.Addr]bool // addresses other hosts hold
}

func (d *fakeShared) Concurrent() bool { return true }

func (d *fakeShared) Pools() []ipam.Pool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.a.Pools()
}

// roundTrip waits at the gate and returns the failure set, if any.
func (d *fakeShared) roundTrip() error {
	d.g.mu.Lock()
	gate, fail := d.g.gate, d.g.fail
	d.g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return fail
}

func (d *fakeShared) Claim(o ipam.Owner, a netip.Addr) (ipam.Pool, error) {
	if err := d.roundTrip(); err != nil {
		return ipam.Pool{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.a.Claim(a)
	if err == nil {
		d.held[a] = o
	}
	return p, err
}

func (d *fakeShared) Allocate(o ipam.Owner, family int) (netip.Addr, ipam.Pool, error) {
	if err := d.roundTrip(); err != nil {
		return netip.Addr{}, ipam.Pool{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a, p, err := d.a.Allocate(family)
	if err == nil {
		d.held[a] = o
	}
	return a, p, err
}

func (d *fakeShared) Release(_ ipam.Owner, a netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.held[a]; ok {
		delete(d.held, a)
		d.a.Release(a)
	}
}

func (d *fakeShared) Hold(o ipam.Owner, a netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.others[a] {
		return fmt.Errorf("%s: held by another host: %w", a, ipam.ErrAddressInUse)
	}
	if err := d.a.Mark(a); err != nil {
		return err
	}
	d.held[a] = o
	return nil
}

func (d *fakeShared) Held(fn func(ipam.Owner, netip.Addr)) {
	d.mu.Lock()
	held := maps.Clone(d.held)
	d.mu.Unlock()
	for a, o := range held {
		fn(o, a)
	}
}

func (d *fakeShared) Renew() error { return nil }

var errEtcdDown = errors.New("etcd: context deadline exceeded")

// A global macvlan network's address comes from a round trip to the shared
// store, which runs while the interface is made: the interface exists
// before the round trip ends, and gets its address and route from it.
// When the round trip fails, or something before the interface fails,
// nothing is left: no interface, no endpoint, no intent, no address held.
func TestFakeGlobalAddressBeside(t *testing.T) {
	g, h := globalNet(t, "pub")

	// The round trip is held until the kernel is asked for the interface.
	reached := h.k.reach("CreateSlave")
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	done := make(chan error, 1)
	h.k.container(2)
	go func() { _, err := h.m.Attach(on("c", 2, "pub")); done <- err }()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the interface was not made while its address was pending")
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	same(t, "interfaces", h.k.ifs(2), []string{"eth0 10.7.0.2/24"})
	same(t, "endpoints", h.eps(), []string{"pub c eth0 10.7.0.2/24"})
	same(t, "held", g.held("pub"), []string{"10.7.0.2"})
	if ep := h.m.Endpoints()[0]; len(ep.Gateways) != 1 || ep.Gateways[0] != "10.7.0.1" {
		t.Errorf("gateways %v, want the subnet's 10.7.0.1", ep.Gateways)
	}

	for _, c := range []struct {
		name string
		fail func()
		want error
	}{
		{"round trip fails", func() { g.mu.Lock(); g.gate, g.fail = nil, errEtcdDown; g.mu.Unlock() }, errEtcdDown},
		{"parent lookup fails", func() { g.mu.Lock(); g.fail = nil; g.mu.Unlock(); h.k.failAfter("Lookup", 0, errNetlink) }, errNetlink},
		{"interface not created", func() { h.k.failAfter("CreateSlave", 0, errNetlink) }, errNetlink},
		{"endpoint not committed", func() { h.k.failAfter("PutEndpoint", 0, errNetlink) }, errNetlink},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.fail()
			_, err := h.attach(on("d", 3, "pub"))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			h.m.Wait()
			same(t, "interfaces", h.k.ifs(3), none)
			same(t, "endpoints", h.eps(), []string{"pub c eth0 10.7.0.2/24"})
			same(t, "held", g.held("pub"), []string{"10.7.0.2"})
			same(t, "intents", h.intents(), none)
		})
	}
	h.stop("", "c")
	same(t, "held after the detach", g.held("pub"), none)
}

// A global network whose removal stopped half-way (etcd timed out) is
// hidden by the shared store, and so gone from network ls too; a remove of
// its name finishes the removal, or restores the network when another
// host has endpoints on it, whether this host still had its copy or not.
func TestFakeGlobalInterruptedRemove(t *testing.T) {
	for _, c := range []struct {
		name      string
		listed    bool // network ls ran in between, and dropped this host's copy
		elsewhere bool
		want      error
		stored    []string
	}{
		{"finished", false, false, nil, none},
		{"finished after ls", true, false, nil, none},
		{"restored", false, true, ErrInUse, []string{"net pub"}},
		{"restored after ls", true, true, ErrInUse, []string{"net pub"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, h := globalNet(t, "pub")
			g.interrupt("pub")
			g.elsewhere["pub"] = c.elsewhere
			if c.listed {
				same(t, "listed", listed(t, h.m.List(), nil, func(n api.Network) string { return n.Name }), none)
				same(t, "store", h.stored(), none)
			}
			if err := h.m.Remove("pub"); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("remove: %v, want %v", err, c.want)
			}
			g.mu.Lock()
			_, shared := g.recs["pub"]
			_, hidden := g.removing["pub"]
			g.mu.Unlock()
			if shared != c.elsewhere || hidden {
				t.Fatalf("shared store holds pub: %v, being removed: %v; want %v, false", shared, hidden, c.elsewhere)
			}
			if _, err := h.m.Inspect("pub"); (err == nil) != c.elsewhere {
				t.Fatalf("inspect after the remove: %v", err)
			}
			same(t, "store", h.stored(), c.stored)
			wantErr(t, h.m.Remove("nope"), ErrNotFound, "network nope")
		})
	}
}

// network rm NAME settles an interrupted removal of global network NAME
// even where NAME also starts a local network's ID: the name goes first.
func TestFakeGlobalInterruptedRemoveBeforeIDPrefix(t *testing.T) {
	g, h := globalNet(t, "b")
	g.interrupt("b")
	h.m.List() // drops this host's copy, as network ls does
	var local string
	for i := 0; local == ""; i++ {
		n, err := h.m.Create(netReq(fmt.Sprintf("n%d", i), "macvlan", fmt.Sprintf("10.8.%d.0/24", i), "parent=eth1"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(n.ID, "b") {
			local = n.Name
		}
	}
	if err := h.m.Remove("b"); err != nil {
		t.Fatalf("rm b: %v", err)
	}
	if _, err := h.m.Inspect(local); err != nil {
		t.Errorf("rm b removed %s, whose ID starts with b: %v", local, err)
	}
	if len(g.removing) != 0 {
		t.Errorf("global b is still marked for removal")
	}
}

// Two hosts on one shared store: a network one of them made is seen by
// the other's create at once, so a second network with an overlapping
// subnet on the same parent is refused there too, global or local; and a
// host whose NIC has another name (--parent) creates a global network whose
// record names a parent it does not have.
func TestFakeGlobalCreateSeesOtherHosts(t *testing.T) {
	g := newFakeGlobal()
	hostOn := func(parents map[string]string) *fakeHost {
		h := newFakeHost(t)
		h.opts = append(h.opts, WithGlobal(g, parents, 0))
		h.restart()
		return h
	}
	a, b := hostOn(nil), hostOn(map[string]string{"g7": "eth1"})
	global := func(name, subnet, parent string) api.NetworkCreate {
		req := netReq(name, "macvlan", subnet, "parent="+parent)
		req.Scope = scopeGlobal
		return req
	}
	a.create(global("gX", "10.61.0.0/24", "eth1"))
	_, err := b.m.Create(global("gY", "10.61.0.0/24", "eth1"))
	wantErr(t, err, ErrInvalid, "overlaps 10.61.0.0/24 of network gX")
	_, err = b.m.Create(netReq("loc", "macvlan", "10.61.0.128/25", "parent=eth1"))
	wantErr(t, err, ErrInvalid, "overlaps 10.61.0.0/24 of network gX")

	b.create(global("g7", "10.62.0.0/24", "lan0"))
	n, err := a.m.Inspect("g7")
	if err != nil || n.Parent != "lan0" {
		t.Errorf("g7 as the other host sees it: %+v %v, want the record's parent lan0", n.Parent, err)
	}
}

// Two hosts that make overlapping global networks on one parent at the
// same moment both pass their checks; the later one, by the store's order,
// backs out, and the earlier one stays.
func TestFakeGlobalCreateRace(t *testing.T) {
	g, h := globalNet(t, "pub")
	other := func(name string) func(*fakeGlobal) {
		rec, err := recordOf(api.Network{ID: "0123456789abcdef0123456789abcdef", Name: name, Driver: "macvlan", Mode: "bridge",
			Parent: "eth1", Scope: scopeGlobal, Subnets: []api.Subnet{{Subnet: "10.64.0.0/24"}}})
		if err != nil {
			t.Fatal(err)
		}
		return func(g *fakeGlobal) { g.store(name, rec) }
	}
	g.mu.Lock()
	g.meanwhile = other("theirs")
	g.mu.Unlock()
	req := netReq("mine", "macvlan", "10.64.0.128/25", "parent=eth1")
	req.Scope = scopeGlobal
	_, err := h.m.Create(req)
	wantErr(t, err, ErrInvalid, "overlaps 10.64.0.0/24 of network theirs on the same parent eth1 (made on another host at the same moment as this one)")
	g.mu.Lock()
	_, mine := g.recs["mine"]
	_, theirs := g.recs["theirs"]
	g.mu.Unlock()
	if mine || !theirs {
		t.Errorf("after the race: mine stored %v, theirs stored %v; want only theirs", mine, theirs)
	}
	if _, err := h.m.Inspect("mine"); err == nil {
		t.Errorf("the network that backed out is still known here")
	}
}

// A global network removed and made again on another host replaces this
// host's copy at the next look (network ls, a create, a failed attach),
// unless this host still has endpoints on the old one.
func TestFakeGlobalMadeAgainElsewhere(t *testing.T) {
	g, a := globalNet(t, "pub")
	b := newFakeHost(t)
	b.opts = append(b.opts, WithGlobal(g, nil, 0))
	b.restart()
	subnetOn := func(h *fakeHost) string {
		n, err := h.m.Inspect("pub")
		if err != nil {
			t.Fatal(err)
		}
		return n.Subnets[0].Subnet
	}
	same(t, "b's copy", subnetOn(b), "10.7.0.0/24")
	if err := a.m.Remove("pub"); err != nil {
		t.Fatal(err)
	}
	req := netReq("pub", "macvlan", "10.73.0.0/24", "parent=eth1")
	req.Scope = scopeGlobal
	a.create(req)
	b.m.List()
	same(t, "b's copy after network ls", subnetOn(b), "10.73.0.0/24")
}

// An endpoint whose address this host's lease no longer covers (it was
// freed while underlayd was down, and perhaps taken by another host) is
// claimed again by reconciliation once the address is free: a container
// that runs on with it must not have it handed out again.
func TestFakeGlobalUnheldClaimedAgain(t *testing.T) {
	g, h := globalNet(t, "pub")
	ep := h.start(on("c1", 11, "pub"))[0]
	a := netip.MustParsePrefix(ep.Addresses[0]).Addr()
	g.mu.Lock()
	d := g.drivers["pub"]
	g.mu.Unlock()
	held := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		_, ok := d.held[a]
		return ok
	}
	// Another host has the address now: not this host's lease.
	d.mu.Lock()
	delete(d.held, a)
	d.others = map[netip.Addr]bool{a: true}
	d.mu.Unlock()
	if _, err := h.m.Prune(); err != nil {
		t.Fatal(err)
	}
	if held() {
		t.Fatalf("%s taken while another host has it", a)
	}
	// It lets it go: the next reconciliation takes it back for c1.
	d.mu.Lock()
	delete(d.others, a)
	d.mu.Unlock()
	if _, err := h.m.Prune(); err != nil {
		t.Fatal(err)
	}
	if !held() {
		t.Fatalf("%s, which c1 still uses, was not claimed again", a)
	}
}
