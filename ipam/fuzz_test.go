package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fuzzSpec is small enough for the model to enumerate every address: a /28
// with an ip-range and aux addresses inside and outside it, a /30, and an
// IPv6 /124 with a given gateway and its own range.
var fuzzSpec = Spec{
	Subnets:  []string{"10.0.0.0/28", "10.0.1.0/30", "fd00::/124"},
	Ranges:   []string{"10.0.0.8/29", "fd00::8/125"},
	Gateways: []string{"fd00::a"},
	Aux:      []string{"x=10.0.0.9", "y=10.0.0.3", "z=fd00::1"},
}

// fuzzAddrs are the addresses that Claim, Mark and Release pick from: every
// address of every subnet, plus a few foreign ones.
func fuzzAddrs(pools []Pool) []netip.Addr {
	var out []netip.Addr
	for _, p := range pools {
		for a := p.Subnet.Addr(); p.Subnet.Contains(a); a = a.Next() {
			out = append(out, a)
		}
	}
	return append(out, ip("10.0.2.1"), ip("fd00::100"), ip("::ffff:10.0.0.5"))
}

// model is the obvious, slow allocator that the real one must agree with.
type model struct {
	pools []Pool
	used  map[netip.Addr]bool
}

func (m *model) reserved(p Pool, a netip.Addr) bool {
	if a == p.Subnet.Addr() || a == p.Gateway {
		return true
	}
	if a.Is4() && !p.Subnet.Contains(a.Next()) { // the last address
		return true
	}
	for _, x := range p.Aux {
		if a == x {
			return true
		}
	}
	return false
}

func (m *model) pool(a netip.Addr) (Pool, bool) {
	for _, p := range m.pools {
		if p.Subnet.Contains(a) {
			return p, true
		}
	}
	return Pool{}, false
}

// firstFree scans, pool by pool, the dynamic range for the lowest address
// that is neither used nor reserved.
func (m *model) firstFree(family int) (netip.Addr, bool) {
	for _, p := range m.pools {
		if p.Family() != family {
			continue
		}
		r := p.Range
		if !r.IsValid() {
			r = p.Subnet
		}
		for a := r.Addr(); r.Contains(a); a = a.Next() {
			if !m.used[a] && !m.reserved(p, a) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// wantErr is what Claim (and, but for in-use, Mark) must return for a.
func (m *model) wantErr(a netip.Addr) error {
	p, ok := m.pool(a)
	switch {
	case !ok:
		return ErrNotInSubnet
	case m.reserved(p, a):
		return ErrReserved
	case m.used[a]:
		return ErrAddressInUse
	}
	return nil
}

func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 3, 10, 0, 0})
	f.Add([]byte{2, 5, 2, 5, 3, 5, 0, 0, 4, 40, 3, 40, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 25, 1, 0})
	pools, err := BuildPools(fuzzSpec)
	if err != nil {
		f.Fatal(err)
	}
	addrs := fuzzAddrs(pools)
	f.Fuzz(func(t *testing.T, ops []byte) {
		// The pools hold 36 addresses; longer runs only repeat states and
		// slow the fuzzer down.
		ops = ops[:min(len(ops), 512)]
		a := NewAllocator(pools)
		m := &model{pools: pools, used: make(map[netip.Addr]bool)}
		for i := 0; i+1 < len(ops); i += 2 {
			addr := addrs[int(ops[i+1])%len(addrs)]
			switch ops[i] % 5 {
			case 0:
				fuzzAllocate(t, a, m, 4)
			case 1:
				fuzzAllocate(t, a, m, 6)
			case 2:
				fuzzClaim(t, a, m, addr)
			case 3:
				fuzzMark(t, a, m, addr)
			case 4:
				a.Release(addr)
				delete(m.used, addr)
			}
			checkAgrees(t, a, m, addrs)
		}
	})
}

func fuzzAllocate(t *testing.T, a *Allocator, m *model, family int) {
	want, ok := m.firstFree(family)
	got, p, err := a.Allocate(family)
	if !ok {
		if !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("Allocate(%d) = %s, %v; model says exhausted", family, got, err)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("Allocate(%d) = %s, %v; want %s", family, got, err, want)
	}
	if r := p.Range; (r.IsValid() && !r.Contains(got)) || !p.Subnet.Contains(got) || m.reserved(p, got) {
		t.Fatalf("Allocate(%d) = %s outside the range of, or reserved in, %+v", family, got, p)
	}
	m.used[got] = true
}

func fuzzClaim(t *testing.T, a *Allocator, m *model, addr netip.Addr) {
	want := m.wantErr(addr)
	p, err := a.Claim(addr)
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("Claim(%s) = %v, want %v", addr, err, want)
	}
	if err == nil {
		if !p.Subnet.Contains(addr) {
			t.Fatalf("Claim(%s) returned pool %s", addr, p.Subnet)
		}
		m.used[addr] = true
	}
}

func fuzzMark(t *testing.T, a *Allocator, m *model, addr netip.Addr) {
	want := m.wantErr(addr)
	if errors.Is(want, ErrAddressInUse) {
		want = nil // marking twice is allowed
	}
	err := a.Mark(addr)
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("Mark(%s) = %v, want %v", addr, err, want)
	}
	if err == nil {
		m.used[addr] = true
	}
}

func checkAgrees(t *testing.T, a *Allocator, m *model, addrs []netip.Addr) {
	t.Helper()
	if a.Count() != len(m.used) {
		t.Fatalf("Count = %d, model has %d", a.Count(), len(m.used))
	}
	for _, addr := range addrs {
		if a.InUse(addr) != m.used[addr] {
			t.Fatalf("InUse(%s) = %v, model %v", addr, a.InUse(addr), m.used[addr])
		}
	}
}

// FuzzBuildPools must never panic, and whatever it accepts must be a
// consistent plan the allocator can use.
func FuzzBuildPools(f *testing.F) {
	f.Add("172.16.86.0/24", "172.16.86.1", "", "", false)
	f.Add("192.168.32.0/24", "192.168.32.254", "192.168.32.128/25", "a=192.168.32.129", false)
	f.Add("10.1.100.128/25;2001:db8::/64", "2001:db8::10", "", "h=10.1.100.200;v=2001:db8::2", true)
	f.Add("10.1.100.130/25", "", "", "", false)
	f.Add("::/0;0.0.0.0/0", "::1", "::/1", "x=255.255.255.254", false)
	f.Add("fd00::/127", "", "fd00::1/128", "", false)
	f.Fuzz(func(t *testing.T, subnets, gateways, ranges, aux string, noGateway bool) {
		s := Spec{Subnets: split(subnets), Gateways: split(gateways), Ranges: split(ranges), Aux: split(aux), NoGateway: noGateway}
		pools, err := BuildPools(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		checkPools(t, pools, noGateway)
		a := NewAllocator(pools)
		for _, fam := range []int{4, 6} {
			got, p, err := a.Allocate(fam)
			if err == nil && (!p.Subnet.Contains(got) || got == p.Gateway || got == p.Subnet.Addr()) {
				t.Fatalf("Allocate(%d) = %s from %+v", fam, got, p)
			}
		}
	})
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ";")
}

func checkPools(t *testing.T, pools []Pool, noGateway bool) {
	for i, p := range pools {
		if p.Subnet != p.Subnet.Masked() || (p.Range.IsValid() && (!p.Subnet.Contains(p.Range.Addr()) || p.Range.Bits() < p.Subnet.Bits())) {
			t.Fatalf("bad subnet or range: %+v", p)
		}
		if noGateway == p.Gateway.IsValid() {
			t.Fatalf("gateway %s with NoGateway=%v", p.Gateway, noGateway)
		}
		if p.Gateway.IsValid() && (!p.Subnet.Contains(p.Gateway) || edgeAddress(p.Subnet, p.Gateway) != "") {
			t.Fatalf("bad gateway: %+v", p)
		}
		for _, x := range p.Aux {
			if !p.Subnet.Contains(x) || x == p.Gateway {
				t.Fatalf("bad aux %s: %+v", x, p)
			}
		}
		for _, q := range pools[:i] {
			if q.Subnet.Overlaps(p.Subnet) {
				t.Fatalf("overlapping subnets %s %s", q.Subnet, p.Subnet)
			}
		}
	}
}
