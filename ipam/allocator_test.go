package ipam

import (
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

func newAlloc(t testing.TB, s Spec) *Allocator {
	t.Helper()
	pools, err := BuildPools(s)
	if err != nil {
		t.Fatalf("BuildPools: %v", err)
	}
	return NewAllocator(pools)
}

func mustAllocate(t testing.TB, a *Allocator, family int) netip.Addr {
	t.Helper()
	addr, _, err := a.Allocate(family)
	if err != nil {
		t.Fatalf("Allocate(%d): %v", family, err)
	}
	return addr
}

func TestAllocateOrder(t *testing.T) {
	tests := []struct {
		name   string
		spec   Spec
		family int
		want   []string // successive allocations
	}{
		{"skips network and gateway", Spec{Subnets: []string{"172.16.86.0/24"}, Gateways: []string{"172.16.86.1"}},
			4, []string{"172.16.86.2", "172.16.86.3"}},
		{"gateway in the middle", Spec{Subnets: []string{"10.0.0.0/24"}, Gateways: []string{"10.0.0.3"}},
			4, []string{"10.0.0.1", "10.0.0.2", "10.0.0.4"}},
		{"seed: ip-range starts at .128, aux .129 skipped",
			Spec{Subnets: []string{"192.168.32.0/24"}, Ranges: []string{"192.168.32.128/25"}, Aux: []string{"a=192.168.32.129"}},
			4, []string{"192.168.32.128", "192.168.32.130"}},
		{"ip-range ending at broadcast", Spec{Subnets: []string{"10.0.0.0/24"}, Ranges: []string{"10.0.0.252/30"}},
			4, []string{"10.0.0.252", "10.0.0.253", "10.0.0.254"}},
		{"pools in order, next pool when full",
			Spec{Subnets: []string{"10.0.0.0/30", "10.0.1.0/30"}},
			4, []string{"10.0.0.2", "10.0.1.2"}},
		{"families apart", Spec{Subnets: []string{"fd00::/64", "10.0.0.0/24"}},
			6, []string{"fd00::2", "fd00::3"}},
		{"seed: dual stack ipv6 gateway ::10", Spec{Subnets: []string{"2001:db8:abc8::/64"}, Gateways: []string{"2001:db8:abc8::10"}},
			6, []string{"2001:db8:abc8::1", "2001:db8:abc8::2"}},
		{"no gateway: first address after the network", Spec{Subnets: []string{"192.168.120.0/24"}, NoGateway: true},
			4, []string{"192.168.120.1", "192.168.120.2"}},
		{"aux run", Spec{Subnets: []string{"10.0.0.0/24"}, Aux: []string{"a=10.0.0.2", "b=10.0.0.3", "c=10.0.0.5"}},
			4, []string{"10.0.0.4", "10.0.0.6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAlloc(t, tt.spec)
			for i, w := range tt.want {
				got, pool, err := a.Allocate(tt.family)
				if err != nil {
					t.Fatalf("allocation %d: %v", i, err)
				}
				if got != ip(w) {
					t.Errorf("allocation %d = %s, want %s", i, got, w)
				}
				if !pool.Subnet.Contains(got) {
					t.Errorf("allocation %d: %s not in returned pool %s", i, got, pool.Subnet)
				}
			}
			if a.Count() != len(tt.want) {
				t.Errorf("Count = %d, want %d", a.Count(), len(tt.want))
			}
		})
	}
}

func TestSlash30(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"10.0.0.0/30"}})
	if got := mustAllocate(t, a, 4); got != ip("10.0.0.2") {
		t.Fatalf("first = %s, want 10.0.0.2", got)
	}
	_, _, err := a.Allocate(4)
	if !errors.Is(err, ErrPoolExhausted) || err.Error() != "no free address in 10.0.0.0/30" {
		t.Fatalf("second Allocate error = %v, want %q", err, "no free address in 10.0.0.0/30")
	}
}

func TestExhaustion(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		fam  int
		n    int // allocations that succeed first
		want string
		is   error
	}{
		{"two pools", Spec{Subnets: []string{"10.0.0.0/30", "10.0.1.0/30"}}, 4, 2,
			"no free address in 10.0.0.0/30, 10.0.1.0/30", ErrPoolExhausted},
		{"ip-range named", Spec{Subnets: []string{"10.0.0.0/24"}, Ranges: []string{"10.0.0.8/30"}}, 4, 4,
			"no free address in 10.0.0.0/24 (--ip-range 10.0.0.8/30)", ErrPoolExhausted},
		{"ipv6 /127 with gateway", Spec{Subnets: []string{"fd00::/127"}}, 6, 0,
			"no free address in fd00::/127", ErrPoolExhausted},
		{"no ipv6 subnet", Spec{Subnets: []string{"10.0.0.0/24"}}, 6, 0,
			"network has no IPv6 subnet", ErrNoSubnet},
		{"no ipv4 subnet", Spec{Subnets: []string{"fd00::/64"}}, 4, 0,
			"network has no IPv4 subnet", ErrNoSubnet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAlloc(t, tt.spec)
			for range tt.n {
				mustAllocate(t, a, tt.fam)
			}
			_, _, err := a.Allocate(tt.fam)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Allocate error = %v, want %q (%v)", err, tt.want, tt.is)
			}
		})
	}
	if _, _, err := newAlloc(t, Spec{Subnets: []string{"10.0.0.0/24"}}).Allocate(5); err == nil {
		t.Error("Allocate(5) succeeded")
	}
}

func TestClaim(t *testing.T) {
	spec := Spec{
		Subnets:  []string{"172.16.86.0/24", "fd00::/64"},
		Gateways: []string{"172.16.86.1"},
		Ranges:   []string{"172.16.86.128/25"},
		Aux:      []string{"exclude_host=172.16.86.250", "v6=fd00::2"},
	}
	tests := []struct {
		addr   string
		is     error  // nil: success
		substr string // in the error, or the pool subnet on success
	}{
		{"172.16.86.10", nil, "172.16.86.0/24"}, // outside the ip-range: allowed
		{"172.16.86.200", nil, "172.16.86.0/24"},
		{"fd00::1234", nil, "fd00::/64"},
		{"172.16.99.1", ErrNotInSubnet, "172.16.99.1: not in any subnet of the network"},
		{"::ffff:172.16.86.10", ErrNotInSubnet, "not in any subnet"},
		{"172.16.86.1", ErrReserved, "172.16.86.1: address is reserved (gateway of 172.16.86.0/24)"},
		{"172.16.86.0", ErrReserved, "network address"},
		{"172.16.86.255", ErrReserved, "broadcast address"},
		{"172.16.86.250", ErrReserved, `aux address "exclude_host"`},
		{"fd00::", ErrReserved, "network address"},
		{"fd00::1", ErrReserved, "gateway"},
		{"fd00::2", ErrReserved, `aux address "v6"`},
		{"fd00::ffff:ffff:ffff:ffff", nil, "fd00::/64"}, // no broadcast in IPv6
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := newAlloc(t, spec)
			addr := ip(tt.addr)
			pool, err := a.Claim(addr)
			if tt.is != nil {
				if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.substr) {
					t.Fatalf("Claim error = %v, want %v containing %q", err, tt.is, tt.substr)
				}
				if a.Count() != 0 || a.InUse(addr) {
					t.Errorf("refused claim left state: Count=%d InUse=%v", a.Count(), a.InUse(addr))
				}
				return
			}
			if err != nil || pool.Subnet != pfx(tt.substr) {
				t.Fatalf("Claim = %v, %v; want pool %s", pool.Subnet, err, tt.substr)
			}
			if !a.InUse(addr) || a.Count() != 1 {
				t.Errorf("after Claim: InUse=%v Count=%d", a.InUse(addr), a.Count())
			}
			if _, err := a.Claim(addr); !errors.Is(err, ErrAddressInUse) || !strings.Contains(err.Error(), tt.addr) {
				t.Errorf("second Claim error = %v, want %v naming %s", err, ErrAddressInUse, tt.addr)
			}
		})
	}
}

func TestStaticThenDynamic(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"172.16.86.0/24"}})
	for _, s := range []string{"172.16.86.2", "172.16.86.3", "172.16.86.5"} {
		if _, err := a.Claim(ip(s)); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []string{"172.16.86.4", "172.16.86.6"} {
		if got := mustAllocate(t, a, 4); got != ip(w) {
			t.Errorf("Allocate = %s, want %s", got, w)
		}
	}
	if _, err := a.Claim(ip("172.16.86.4")); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("claiming a dynamic lease: %v, want ErrAddressInUse", err)
	}
}

func TestReleaseReusesAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		subnet string
		family int
		static string // "" = dynamic
	}{
		{"dynamic v4", "10.0.0.0/24", 4, ""},
		{"static v4", "10.0.0.0/24", 4, "10.0.0.77"},
		{"dynamic v6", "fd00::/64", 6, ""},
		{"static v6", "fd00::/64", 6, "fd00::beef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAlloc(t, Spec{Subnets: []string{tt.subnet}})
			var mid netip.Addr
			for i := range 5 {
				got := mustAllocate(t, a, tt.family)
				if i == 2 {
					mid = got
				}
			}
			if tt.static != "" {
				mid = ip(tt.static)
				if _, err := a.Claim(mid); err != nil {
					t.Fatal(err)
				}
			}
			before := a.Count()
			a.Release(mid)
			if a.InUse(mid) || a.Count() != before-1 {
				t.Fatalf("after Release: InUse=%v Count=%d", a.InUse(mid), a.Count())
			}
			// Claimable at once, and, being dynamic, handed out again at once.
			if _, err := a.Claim(mid); err != nil {
				t.Fatalf("Claim after Release: %v", err)
			}
			a.Release(mid)
			a.Release(mid) // no-op
			if tt.static == "" {
				if got := mustAllocate(t, a, tt.family); got != mid {
					t.Errorf("Allocate after Release = %s, want %s", got, mid)
				}
			}
		})
	}
}

func TestReleaseNoOps(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"10.0.0.0/30"}})
	mustAllocate(t, a, 4)
	for _, s := range []string{"10.0.0.1", "10.0.0.0", "10.0.0.3", "10.9.9.9", "fd00::1"} {
		a.Release(ip(s))
	}
	if a.Count() != 1 {
		t.Fatalf("Count = %d after releasing free/reserved/foreign addresses", a.Count())
	}
	// The gateway must still be reserved after a Release of it.
	if _, _, err := a.Allocate(4); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Allocate = %v, want exhausted", err)
	}
}

func TestMark(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"10.0.0.0/24"}})
	for _, s := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.3"} {
		if err := a.Mark(ip(s)); err != nil {
			t.Fatalf("Mark(%s): %v", s, err)
		}
	}
	if a.Count() != 2 {
		t.Errorf("Count = %d, want 2 (marking twice is one lease)", a.Count())
	}
	if got := mustAllocate(t, a, 4); got != ip("10.0.0.4") {
		t.Errorf("Allocate after Mark = %s, want 10.0.0.4", got)
	}
	if err := a.Mark(ip("10.1.0.1")); !errors.Is(err, ErrNotInSubnet) {
		t.Errorf("Mark(foreign) = %v", err)
	}
	if err := a.Mark(ip("10.0.0.1")); !errors.Is(err, ErrReserved) {
		t.Errorf("Mark(gateway) = %v", err)
	}
}

func TestPoolsAndPoolOf(t *testing.T) {
	pools, err := BuildPools(Spec{Subnets: []string{"10.0.0.0/24", "fd00::/64"}, Aux: []string{"a=10.0.0.9"}})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAllocator(pools)
	pools[0].Aux["b"] = ip("10.0.0.10") // the allocator took a copy
	if _, err := a.Claim(ip("10.0.0.10")); err != nil {
		t.Errorf("caller's later Aux edit leaked into the allocator: %v", err)
	}
	got := a.Pools()
	if len(got) != 2 || got[0].Subnet != pfx("10.0.0.0/24") || got[1].Subnet != pfx("fd00::/64") {
		t.Fatalf("Pools = %+v", got)
	}
	if p, ok := a.PoolOf(ip("fd00::42")); !ok || p.Subnet != pfx("fd00::/64") {
		t.Errorf("PoolOf(fd00::42) = %v, %v", p.Subnet, ok)
	}
	if _, ok := a.PoolOf(ip("10.0.1.1")); ok {
		t.Error("PoolOf(10.0.1.1) found a pool")
	}
	if n := len(NewAllocator([]Pool{{}}).Pools()); n != 0 {
		t.Errorf("invalid pool kept: %d pools", n)
	}
}

// TestLargeIPv6 allocates 10,000 addresses from a /64: fast, and the used
// set stays one run instead of materialising the space.
func TestLargeIPv6(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"2001:db8::/64"}, Gateways: []string{"2001:db8::1"}})
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	var last netip.Addr
	for range 10000 {
		last = mustAllocate(t, a, 6)
	}
	elapsed := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if last != ip("2001:db8::2711") { // 0x2711 = 10001: ::2 .. ::2711
		t.Errorf("10,000th address = %s, want 2001:db8::2711", last)
	}
	if runs := len(a.pools[0].taken.runs); runs != 1 {
		t.Errorf("used set has %d runs, want 1", runs)
	}
	if grew := after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc); grew > 4<<20 {
		t.Errorf("heap grew by %d bytes", grew)
	}
	if elapsed > time.Second {
		t.Errorf("10,000 allocations took %v", elapsed)
	}
	t.Logf("10,000 allocations in %v", elapsed)
}

// TestMemoryScattered: 65,000 static leases scattered over a /64 (each its
// own run, the worst case for memory) stay within a few MB.
func TestMemoryScattered(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"2001:db8::/64"}})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := uint64(0); a.Count() < 65000; i++ {
		// Spread over the whole interface-ID space, never adjacent.
		x := u128{fromAddr(ip("2001:db8::")).hi, i * 0x9e3779b97f4a7c15}
		if _, err := a.Claim(x.addr(false)); err != nil && !errors.Is(err, ErrReserved) {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	if grew > 4<<20 {
		t.Errorf("65,000 scattered leases hold %d bytes of heap", grew)
	}
	t.Logf("65,000 scattered leases: %d runs, %d KiB heap", len(a.pools[0].taken.runs), grew>>10)
}

// Each lists exactly the leases, in order, never a reserved address (the
// gateway and an aux address sit inside a run of leases here).
func TestEach(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"10.0.0.0/29", "2001:db8::/125"}, Aux: []string{"r=10.0.0.3"}})
	for _, s := range []string{"10.0.0.2", "10.0.0.4", "10.0.0.6", "2001:db8::7"} {
		if _, err := a.Claim(netip.MustParseAddr(s)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	a.Each(func(x netip.Addr) { got = append(got, x.String()) })
	if want := "10.0.0.2 10.0.0.4 10.0.0.6 2001:db8::7"; strings.Join(got, " ") != want {
		t.Errorf("Each: %v, want %s", got, want)
	}
	a.Release(netip.MustParseAddr("10.0.0.4"))
	got = nil
	a.Each(func(x netip.Addr) { got = append(got, x.String()) })
	if len(got) != a.Count() || len(got) != 3 {
		t.Errorf("after a release Each gave %v, Count %d", got, a.Count())
	}
}

// Pick spreads its candidates by seed, wraps around to the free addresses
// below its start, never returns a taken or reserved one, and leases
// nothing.
func TestPick(t *testing.T) {
	a := newAlloc(t, Spec{Subnets: []string{"10.0.0.0/24", "2001:db8::/64"}})
	seen := map[netip.Addr]bool{}
	for seed := uint64(0); seed < 50; seed++ {
		x, _, err := a.Pick(4, seed*7919)
		if err != nil {
			t.Fatal(err)
		}
		seen[x] = true
	}
	if len(seen) < 40 || a.Count() != 0 {
		t.Errorf("50 seeds gave %d distinct addresses, %d leased; want spread, none leased", len(seen), a.Count())
	}
	if x, _, err := a.Pick(6, 1<<63); err != nil || !x.Is6() {
		t.Errorf("Pick(6): %v %v", x, err)
	}
	// Fill all but 10.0.0.7: every seed must find it, from above or below.
	for i := 2; i < 255; i++ {
		if i != 7 {
			if _, err := a.Claim(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, seed := range []uint64{0, 3, 6, 7, 200, 253, 254, 255, ^uint64(0)} {
		if x, _, err := a.Pick(4, seed); err != nil || x.String() != "10.0.0.7" {
			t.Errorf("seed %d: %v %v, want 10.0.0.7", seed, x, err)
		}
	}
	if _, err := a.Claim(netip.MustParseAddr("10.0.0.7")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Pick(4, 9); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("full pool: %v, want ErrPoolExhausted", err)
	}
}
