package ipam

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestSpanSetAgainstMap(t *testing.T) {
	// Around zero, around the 64-bit carry and at the top of the space, so
	// that inc/dec wrapping and the adjacency guards are exercised.
	bases := []struct {
		name string
		base u128
	}{
		{"zero", u128{}},
		{"carry", u128{7, ^uint64(0) - 20}},
		{"top", u128{^uint64(0), ^uint64(0) - 40}},
	}
	for _, b := range bases {
		t.Run(b.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			at := func(i int) u128 {
				x := b.base
				for range i {
					x = x.inc()
				}
				return x
			}
			var s spanSet
			model := make(map[int]bool)
			for range 5000 {
				i := rng.IntN(41)
				if rng.IntN(2) == 0 {
					if got := s.add(at(i)); got == model[i] {
						t.Fatalf("add(%d) = %v with model %v", i, got, model[i])
					}
					model[i] = true
				} else {
					if got := s.remove(at(i)); got != model[i] {
						t.Fatalf("remove(%d) = %v with model %v", i, got, model[i])
					}
					delete(model, i)
				}
				checkSpanSet(t, &s, model, at)
			}
		})
	}
}

func checkSpanSet(t *testing.T, s *spanSet, model map[int]bool, at func(int) u128) {
	t.Helper()
	for i, r := range s.runs {
		if r.hi.less(r.lo) {
			t.Fatalf("run %d inverted: %+v", i, r)
		}
		if i > 0 && !s.runs[i-1].hi.inc().less(r.lo) {
			t.Fatalf("runs %d and %d touch or overlap: %+v %+v", i-1, i, s.runs[i-1], r)
		}
	}
	for i := range 41 {
		if s.contains(at(i)) != model[i] {
			t.Fatalf("contains(%d) = %v, model %v", i, !model[i], model[i])
		}
	}
	// firstFree over a few windows against a scan of the model.
	for _, w := range [][2]int{{0, 40}, {5, 9}, {17, 17}, {30, 40}} {
		want := -1
		for i := w[0]; i <= w[1]; i++ {
			if !model[i] {
				want = i
				break
			}
		}
		got, ok := s.firstFree(at(w[0]), at(w[1]))
		if ok != (want >= 0) || (ok && got != at(want)) {
			t.Fatalf("firstFree(%d, %d) = %v, %v; want index %d", w[0], w[1], got, ok, want)
		}
	}
}

func TestU128(t *testing.T) {
	tests := []struct {
		prefix      string
		first, last string
	}{
		{"10.0.0.0/24", "10.0.0.0", "10.0.0.255"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"10.1.100.128/25", "10.1.100.128", "10.1.100.255"},
		{"fd00::/64", "fd00::", "fd00::ffff:ffff:ffff:ffff"},
		{"fd00::/56", "fd00::", "fd00:0:0:ff:ffff:ffff:ffff:ffff"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"fd00::8/127", "fd00::8", "fd00::9"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			p := netip.MustParsePrefix(tt.prefix)
			first, last := prefixBounds(p)
			is4 := p.Addr().Is4()
			if got := first.addr(is4); got != ip(tt.first) {
				t.Errorf("first = %s, want %s", got, tt.first)
			}
			if got := last.addr(is4); got != ip(tt.last) {
				t.Errorf("last = %s, want %s", got, tt.last)
			}
			if first.inc().dec() != first || last.dec().inc() != last {
				t.Error("inc/dec do not round-trip")
			}
		})
	}
}
