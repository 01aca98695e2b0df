package ipam

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// fill leases about frac of a fresh /16 at random addresses, so the used
// set is as fragmented as that fill can make it (many short runs).
func fill16(b *testing.B, frac float64) *Allocator {
	a := newAlloc(b, Spec{Subnets: []string{"10.0.0.0/16"}})
	rng := rand.New(rand.NewPCG(7, 7))
	for addr := ip("10.0.0.0"); addr.Is4() && addr.As4()[1] == 0; addr = addr.Next() {
		if rng.Float64() < frac {
			_, _ = a.Claim(addr) // reserved addresses are refused; fine
		}
	}
	return a
}

// alternate16 leases every other address of a /16: the most runs a /16 can
// have (32768), the worst case for the flat run slice.
func alternate16(b *testing.B) *Allocator {
	a := newAlloc(b, Spec{Subnets: []string{"10.0.0.0/16"}})
	for i := 2; i < 65534; i += 2 {
		_, _ = a.Claim(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	return a
}

func benchAllocRelease(b *testing.B, a *Allocator, family int) {
	b.ReportAllocs()
	runs := 0
	for _, p := range a.pools {
		runs += len(p.taken.runs)
	}
	b.ReportMetric(float64(a.Count()), "leases")
	b.ReportMetric(float64(runs), "runs")
	b.ResetTimer()
	for b.Loop() {
		addr, _, err := a.Allocate(family)
		if err != nil {
			b.Fatal(err)
		}
		a.Release(addr)
	}
}

// BenchmarkAllocate99 is the hard requirement: a /16 that is 99% full,
// with the free 1% scattered.
func BenchmarkAllocate99(b *testing.B) {
	benchAllocRelease(b, fill16(b, 0.99), 4)
}

func BenchmarkAllocate(b *testing.B) {
	b.Run("v4-16-fill0", func(b *testing.B) { benchAllocRelease(b, fill16(b, 0), 4) })
	b.Run("v4-16-fill50", func(b *testing.B) { benchAllocRelease(b, fill16(b, 0.5), 4) })
	b.Run("v4-16-fill99", func(b *testing.B) { benchAllocRelease(b, fill16(b, 0.99), 4) })
	b.Run("v4-16-alternate", func(b *testing.B) { benchAllocRelease(b, alternate16(b), 4) })
	b.Run("v6-64-10000", func(b *testing.B) {
		a := newAlloc(b, Spec{Subnets: []string{"2001:db8::/64"}})
		for range 10000 {
			mustAllocate(b, a, 6)
		}
		benchAllocRelease(b, a, 6)
	})
	b.Run("v6-64-65000-scattered", func(b *testing.B) {
		a := newAlloc(b, Spec{Subnets: []string{"2001:db8::/64"}})
		rng := rand.New(rand.NewPCG(3, 3))
		for a.Count() < 65000 {
			var b16 [16]byte
			copy(b16[:], ip("2001:db8::").AsSlice())
			for i := 8; i < 16; i++ {
				b16[i] = byte(rng.Uint32())
			}
			_, _ = a.Claim(netip.AddrFrom16(b16))
		}
		benchAllocRelease(b, a, 6)
	})
}

// BenchmarkClaimRelease measures a static lease in the middle of the worst
// fragmentation: the run slice split and merged on each iteration.
func BenchmarkClaimRelease(b *testing.B) {
	a := alternate16(b)
	addr := ip("10.0.128.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Claim(addr); err != nil {
			b.Fatal(err)
		}
		a.Release(addr)
	}
}
