package etcd

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/underlay/underlay/ipam"
)

var netRec = []byte(`{"name":"g"}`)

// host starts host name's part of a cluster on kv, with network g
// (10.9.0.0/24 and 2001:db8:9::/64) created if it is not there yet.
func host(t *testing.T, kv *memKV, name string, cooldown time.Duration) (*Cluster, *Addresses) {
	t.Helper()
	c, err := New(kv, Config{Prefix: "/ul", Host: name, Timeout: time.Second, Cooldown: cooldown})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.CreateNetwork("g", netRec); err != nil && !errors.Is(err, ErrNetworkExists) {
		t.Fatal(err)
	}
	pools, err := ipam.BuildPools(ipam.Spec{Subnets: []string{"10.9.0.0/24", "2001:db8:9::/64"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Addresses("g", netRec, pools)
	if err != nil {
		t.Fatal(err)
	}
	return c, d
}

func owner(id string) ipam.Owner { return ipam.Owner{Network: "g", Container: id, IfName: "eth0"} }

// leases lists the live lease keys as "address host/container".
func leases(t *testing.T, kv *memKV) map[string]string {
	t.Helper()
	ps, _, _ := kv.List(t.Context(), "/ul/v1/leases/g/")
	out := map[string]string{}
	for _, p := range ps {
		l, _ := decodeLease(p.Value)
		if l.Released == "" {
			out[p.Key[strings.LastIndexByte(p.Key, '/')+1:]] = l.Host + "/" + l.Container
		}
	}
	return out
}

// Three hosts allocate at once from one /24: every address is held once,
// by the host that got it, and etcd holds exactly those.
func TestConcurrentHostsNeverShare(t *testing.T) {
	kv := newMemKV()
	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for h := range 3 {
		_, d := host(t, kv, fmt.Sprintf("h%d", h), 0)
		for w := range 4 { // a host's attaches to one network overlap
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < 80; i += 4 {
					id := fmt.Sprintf("h%d-c%d", h, i)
					a, _, err := d.Allocate(owner(id), 4)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if prev, dup := got[a]; dup {
						t.Errorf("%s given to %s and %s", a, prev, id)
					}
					got[a] = id
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	ls := leases(t, kv)
	if len(ls) != 240 || len(got) != 240 {
		t.Fatalf("%d leases in etcd, %d handed out; want 240", len(ls), len(got))
	}
	for a, id := range got {
		if h := strings.SplitN(id, "-", 2)[0]; ls[a.String()] != h+"/"+id {
			t.Errorf("%s: etcd says %q, handed to %s", a, ls[a.String()], id)
		}
	}
	// The /24 has 253 usable addresses (the gateway is reserved): 13 left.
	_, d := host(t, kv, "h9", 0)
	for i := range 13 {
		if _, _, err := d.Allocate(owner(fmt.Sprint("last", i)), 4); err != nil {
			t.Fatalf("address %d of the last 13: %v", i, err)
		}
	}
	if _, _, err := d.Allocate(owner("one-too-many"), 4); !errors.Is(err, ipam.ErrPoolExhausted) {
		t.Errorf("full network: %v, want ErrPoolExhausted", err)
	}
}

// A write whose answer is lost did land: the owner key read back says so,
// and the request gets that address, once.
func TestLostAnswerAdopted(t *testing.T) {
	kv := newMemKV()
	_, d := host(t, kv, "h1", 0)
	kv.set(0, 1, false)
	a, _, err := d.Allocate(owner("c1"), 4)
	if err != nil {
		t.Fatalf("allocate after a lost answer: %v", err)
	}
	if ls := leases(t, kv); len(ls) != 1 || ls[a.String()] != "h1/c1" {
		t.Fatalf("leases %v, want only %s for c1", ls, a)
	}
	// The runtime retries the whole attach: the same interface, the same
	// address, no second lease.
	b, _, err := d.Allocate(owner("c1"), 4)
	if err != nil || b != a || len(leases(t, kv)) != 1 {
		t.Fatalf("retry: %s %v (leases %v), want %s again", b, err, leases(t, kv), a)
	}
}

// A write that failed before landing, and an etcd that is down, fail the
// request naming etcd, and leave no lease.
func TestFailedWriteLeavesNothing(t *testing.T) {
	kv := newMemKV()
	_, d := host(t, kv, "h1", 0)
	kv.set(1, 0, false)
	if _, _, err := d.Allocate(owner("c1"), 4); err == nil || !strings.Contains(err.Error(), "etcd") {
		t.Fatalf("allocate with a failing write: %v, want an etcd error", err)
	}
	kv.set(0, 0, true)
	start := time.Now()
	_, err := d.Claim(owner("c2"), netip.MustParseAddr("10.9.0.50"))
	if err == nil || !strings.Contains(err.Error(), "etcd") || time.Since(start) > 2*time.Second {
		t.Fatalf("claim with etcd down: %v after %s, want an etcd error at once", err, time.Since(start))
	}
	kv.set(0, 0, false)
	if ls := leases(t, kv); len(ls) != 0 {
		t.Fatalf("leases left: %v", ls)
	}
	var held []netip.Addr
	d.Held(func(_ ipam.Owner, a netip.Addr) { held = append(held, a) })
	if len(held) != 0 {
		t.Fatalf("held after failed writes: %v", held)
	}
}

// A static address another host holds is refused, naming that host; a
// released one cools down for everyone but the interface that let it go.
func TestStaticAndCooldown(t *testing.T) {
	kv := newMemKV()
	_, d1 := host(t, kv, "h1", 30*time.Second)
	_, d2 := host(t, kv, "h2", 30*time.Second)
	x := netip.MustParseAddr("10.9.0.77")
	if _, err := d1.Claim(owner("c1"), x); err != nil {
		t.Fatal(err)
	}
	_, err := d2.Claim(owner("c2"), x)
	if !errors.Is(err, ipam.ErrAddressInUse) || !strings.Contains(err.Error(), "host h1") {
		t.Fatalf("static address of another host: %v, want in use by h1", err)
	}
	if _, err := d2.Claim(owner("c2"), netip.MustParseAddr("10.9.0.1")); !errors.Is(err, ipam.ErrReserved) {
		t.Fatalf("gateway: %v, want ErrReserved", err)
	}
	d1.Release(owner("c1"), x)
	if _, err := d2.Claim(owner("c2"), x); !errors.Is(err, ipam.ErrAddressInUse) || !strings.Contains(err.Error(), "cooling down") {
		t.Fatalf("released address during its cooldown: %v, want cooling down", err)
	}
	if _, err := d1.Claim(owner("c1"), x); err != nil {
		t.Fatalf("the same interface taking its address back: %v", err)
	}
	d1.Release(owner("c1"), x)
	kv.expire() // the cooldown's etcd lease runs out
	waitFor(t, func() bool { _, err := d2.Claim(owner("c2"), x); return err == nil })
	if ls := leases(t, kv); ls[x.String()] != "h2/c2" {
		t.Fatalf("after the cooldown: %v, want %s held by h2/c2", ls, x)
	}
}

// A release etcd does not take is kept and applied once etcd is back; the
// address is never freed twice.
func TestPendingRelease(t *testing.T) {
	kv := newMemKV()
	_, d := host(t, kv, "h1", 0)
	a, _, err := d.Allocate(owner("c1"), 4)
	if err != nil {
		t.Fatal(err)
	}
	kv.set(0, 0, true)
	d.Release(owner("c1"), a)
	if err := d.Renew(); err == nil {
		t.Fatal("Renew with etcd down: no error")
	}
	kv.set(0, 0, false)
	if ls := leases(t, kv); len(ls) != 1 {
		t.Fatalf("lease released while etcd was down: %v", ls)
	}
	if err := d.Renew(); err != nil {
		t.Fatal(err)
	}
	if ls := leases(t, kv); len(ls) != 0 {
		t.Fatalf("pending release not applied: %v", ls)
	}
	// Another host takes the address; an old copy of the release must not
	// free it again.
	_, d2 := host(t, kv, "h2", 0)
	if _, err := d2.Claim(owner("c2"), a); err != nil {
		t.Fatal(err)
	}
	if err := d.c.apply(release{Network: "g", Addr: a, Owner: owner("c1")}); err != nil {
		t.Fatal(err)
	}
	if ls := leases(t, kv); ls[a.String()] != "h2/c2" {
		t.Fatalf("a repeated release freed another host's lease: %v", ls)
	}
}

// A restarted host finds its leases again (Held), keeps those its
// endpoints hold (Hold) and cannot hold another host's.
func TestRestartHolds(t *testing.T) {
	kv := newMemKV()
	c1, d := host(t, kv, "h1", 0)
	a, _, _ := d.Allocate(owner("c1"), 4)
	b, _, _ := d.Allocate(owner("c2"), 6)
	_, d2 := host(t, kv, "h2", 0)
	z, _, _ := d2.Allocate(owner("z"), 4)
	c1.Close()
	_, d = host(t, kv, "h1", 0)
	held := map[netip.Addr]string{}
	d.Held(func(o ipam.Owner, x netip.Addr) { held[x] = o.Container })
	if len(held) != 2 || held[a] != "c1" || held[b] != "c2" {
		t.Fatalf("held after restart: %v, want %s c1 and %s c2", held, a, b)
	}
	if err := d.Hold(owner("c1"), a); err != nil {
		t.Fatal(err)
	}
	if err := d.Hold(owner("c9"), z); !errors.Is(err, ipam.ErrAddressInUse) {
		t.Fatalf("holding another host's address: %v, want in use", err)
	}
}

// A network being removed takes no new lease, and one with leases is not
// removed: the error names the hosts.
func TestRemoveNetwork(t *testing.T) {
	kv := newMemKV()
	c, d := host(t, kv, "h1", 0)
	a, _, _ := d.Allocate(owner("c1"), 4)
	err := c.RemoveNetwork("g", netRec)
	if !errors.Is(err, ErrNetworkInUse) || !strings.Contains(err.Error(), "h1 (1)") {
		t.Fatalf("remove with a lease: %v, want in use on h1 (1)", err)
	}
	if nets, _ := c.Networks(); string(nets["g"]) != string(netRec) {
		t.Fatalf("network record after a refused remove: %q", nets["g"])
	}
	d.Release(owner("c1"), a)
	if err := c.RemoveNetwork("g", netRec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Allocate(owner("c2"), 4); !errors.Is(err, ErrNetworkGone) {
		t.Fatalf("allocate on a removed network: %v, want ErrNetworkGone", err)
	}
	if err := c.RemoveNetwork("g", netRec); !errors.Is(err, ErrNetworkGone) {
		t.Fatalf("second remove: %v, want ErrNetworkGone", err)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for range 100 {
		if ok() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within a second")
}

// host ls: who is up (here: who beat), who holds addresses for how many
// interfaces (a dual-stack one counts once).
func TestHosts(t *testing.T) {
	kv := newMemKV()
	c1, d1 := host(t, kv, "h1", 0)
	_, d2 := host(t, kv, "h2", 0)
	for i := range 3 {
		for _, fam := range []int{4, 6} {
			if _, _, err := d1.Allocate(owner(fmt.Sprint("a", i)), fam); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := d2.Allocate(owner("b"), 6); err != nil {
		t.Fatal(err)
	}
	if err := c1.Beat(); err != nil {
		t.Fatal(err)
	}
	hs, err := c1.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Name != "h1" || hs[0].Endpoints != 3 || hs[0].LastSeen == "" ||
		hs[1].Name != "h2" || hs[1].Endpoints != 1 || hs[1].LastSeen != "" {
		t.Fatalf("hosts: %+v", hs)
	}
}

// A gone host's addresses are freed unless they still answer on the wire;
// a host that is up, or this host, is refused.
func TestReclaim(t *testing.T) {
	kv := newMemKV()
	c1, _ := host(t, kv, "h1", 0)
	_, d2 := host(t, kv, "h2", 0)
	var addrs []netip.Addr
	for i := range 3 {
		a, _, err := d2.Allocate(owner(fmt.Sprint("c", i)), 4)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	still := addrs[0]
	answering := func(network string, as []netip.Addr) (map[netip.Addr]bool, error) {
		if network != "g" || len(as) != 3 {
			t.Errorf("probe of %s %v", network, as)
		}
		return map[netip.Addr]bool{still: true}, nil
	}
	freed, kept, err := c1.Reclaim("h2", answering)
	if err != nil || freed != 2 || kept != 1 {
		t.Fatalf("reclaim: freed %d kept %d %v, want 2 and 1", freed, kept, err)
	}
	if ls := leases(t, kv); len(ls) != 1 || ls[still.String()] != "h2/c0" {
		t.Fatalf("leases after reclaim: %v, want only %s", ls, still)
	}
	if hs, _ := c1.Hosts(); len(hs) != 1 || hs[0].Name != "h2" || hs[0].Endpoints != 1 {
		t.Fatalf("hosts after reclaim: %+v", hs)
	}
	if _, _, err := c1.Reclaim("h1", answering); !errors.Is(err, ErrHostUp) {
		t.Errorf("reclaim of this host: %v", err)
	}
	kv.Txn(t.Context(), nil, []Op{Put("/ul/v1/hosts/h2/alive", []byte("{}"))}, nil)
	if _, _, err := c1.Reclaim("h2", answering); !errors.Is(err, ErrHostUp) {
		t.Errorf("reclaim of a host that is up: %v", err)
	}
}
