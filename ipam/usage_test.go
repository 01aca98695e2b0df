package ipam

import (
	"math"
	"net/netip"
	"testing"
)

func TestUsage(t *testing.T) {
	a := newAlloc(t, Spec{
		Subnets:  []string{"172.16.86.0/24", "2001:db8::/64"},
		Gateways: []string{"172.16.86.1"},
		Ranges:   []string{"172.16.86.128/25"},
		Aux:      []string{"router=172.16.86.200"},
	})
	check := func(when string, inUse4 uint64, free4 float64, inUse6 uint64) {
		t.Helper()
		u := a.Usage()
		if len(u) != 2 || u[0].Subnet.String() != "172.16.86.0/24" || u[1].Subnet.String() != "2001:db8::/64" {
			t.Fatalf("%s: pools %+v", when, u)
		}
		if u[0].InUse != inUse4 || u[0].Free != free4 {
			t.Errorf("%s: v4 in use %d free %v, want %d and %v", when, u[0].InUse, u[0].Free, inUse4, free4)
		}
		// 2^64 less the subnet-router anycast address (::), less leases.
		if u[1].InUse != inUse6 || math.Abs(u[1].Free-math.Exp2(64)) > 1e4 {
			t.Errorf("%s: v6 in use %d free %v, want %d and about 2^64", when, u[1].InUse, u[1].Free, inUse6)
		}
	}
	// The range .128-.255 holds 128 addresses, less the broadcast and
	// the aux address.
	check("empty", 0, 126, 0)
	first := mustAllocate(t, a, 4)
	mustAllocate(t, a, 4)
	mustAllocate(t, a, 6)
	check("two v4 and one v6", 2, 124, 1)
	// A static address outside the range is in use, but takes nothing
	// from what the range can still hand out.
	if _, err := a.Claim(netip.MustParseAddr("172.16.86.10")); err != nil {
		t.Fatal(err)
	}
	check("static outside the range", 3, 124, 1)
	a.Release(first)
	check("one released", 2, 125, 1)
	for {
		if _, _, err := a.Allocate(4); err != nil {
			break
		}
	}
	check("full", 127, 0, 1)
}
