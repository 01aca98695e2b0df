package ipam

import (
	"encoding/binary"
	"net/netip"
	"sort"
)

// u128 is an address as a 128-bit integer, so IPv4 and IPv6 share one
// arithmetic. IPv4 addresses use their IPv4-mapped form (::ffff:a.b.c.d);
// a pool never mixes families, so the mapping never meets an IPv6 address.
type u128 struct{ hi, lo uint64 }

var maxU128 = u128{^uint64(0), ^uint64(0)}

func fromAddr(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// addr converts back; is4 undoes the IPv4 mapping.
func (x u128) addr(is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x u128) less(y u128) bool { return x.cmp(y) < 0 }

// inc and dec wrap around; callers check the bounds first.
func (x u128) inc() u128 {
	lo := x.lo + 1
	hi := x.hi
	if lo == 0 {
		hi++
	}
	return u128{hi, lo}
}

func (x u128) dec() u128 {
	lo := x.lo - 1
	hi := x.hi
	if x.lo == 0 {
		hi--
	}
	return u128{hi, lo}
}

// add and sub wrap around; callers keep within the bounds.
func (x u128) add(y u128) u128 {
	lo := x.lo + y.lo
	hi := x.hi + y.hi
	if lo < x.lo {
		hi++
	}
	return u128{hi, lo}
}

func (x u128) sub(y u128) u128 {
	lo := x.lo - y.lo
	hi := x.hi - y.hi
	if x.lo < y.lo {
		hi--
	}
	return u128{hi, lo}
}

// float is x as a float64, rounded where it has more than 53 bits.
func (x u128) float() float64 { return float64(x.hi)*(1<<64) + float64(x.lo) }

func (x u128) or(y u128) u128 { return u128{x.hi | y.hi, x.lo | y.lo} }

// lowMask has the n lowest bits set (0 <= n <= 128). Go defines shifts by
// the full width as 0, so 1<<64 - 1 is all ones, as needed.
func lowMask(n int) u128 {
	if n >= 64 {
		return u128{1<<uint(n-64) - 1, ^uint64(0)}
	}
	return u128{0, 1<<uint(n) - 1}
}

// prefixBounds returns the first and last address of a masked prefix.
func prefixBounds(p netip.Prefix) (first, last u128) {
	first = fromAddr(p.Addr())
	return first, first.or(lowMask(p.Addr().BitLen() - p.Bits()))
}

// span is a run of consecutive addresses, lo <= hi, both included.
type span struct{ lo, hi u128 }

// spanSet is a set of addresses kept as sorted, disjoint, non-adjacent runs.
// A dense block of leases costs one span whatever its size, which is what
// lets a /64 or a nearly full /16 be searched by one binary search instead
// of a scan. Runs are in a flat slice: inserting or removing a run moves the
// tail, a memmove that stays in the tens of microseconds even for the
// worst-fragmented /16 (32768 runs); see BenchmarkAllocate.
type spanSet struct{ runs []span }

// find returns the index of the first run that ends at or after x.
func (s *spanSet) find(x u128) int {
	return sort.Search(len(s.runs), func(i int) bool { return !s.runs[i].hi.less(x) })
}

func (s *spanSet) contains(x u128) bool {
	i := s.find(x)
	return i < len(s.runs) && !x.less(s.runs[i].lo)
}

// add inserts x, merging with the runs on either side when adjacent.
// It reports whether x was absent.
func (s *spanSet) add(x u128) bool {
	i := s.find(x)
	if i < len(s.runs) && !x.less(s.runs[i].lo) {
		return false
	}
	joinLeft := i > 0 && x != (u128{}) && s.runs[i-1].hi == x.dec()
	joinRight := i < len(s.runs) && x != maxU128 && s.runs[i].lo == x.inc()
	switch {
	case joinLeft && joinRight:
		s.runs[i-1].hi = s.runs[i].hi
		s.runs = append(s.runs[:i], s.runs[i+1:]...)
	case joinLeft:
		s.runs[i-1].hi = x
	case joinRight:
		s.runs[i].lo = x
	default:
		s.runs = append(s.runs, span{})
		copy(s.runs[i+1:], s.runs[i:])
		s.runs[i] = span{x, x}
	}
	return true
}

// remove deletes x, splitting its run when x is inside it.
// It reports whether x was present.
func (s *spanSet) remove(x u128) bool {
	i := s.find(x)
	if i == len(s.runs) || x.less(s.runs[i].lo) {
		return false
	}
	r := s.runs[i]
	switch {
	case r.lo == r.hi:
		s.runs = append(s.runs[:i], s.runs[i+1:]...)
	case r.lo == x:
		s.runs[i].lo = x.inc()
	case r.hi == x:
		s.runs[i].hi = x.dec()
	default:
		s.runs = append(s.runs, span{})
		copy(s.runs[i+2:], s.runs[i+1:])
		s.runs[i].hi = x.dec()
		s.runs[i+1] = span{x.inc(), r.hi}
	}
	return true
}

// firstFree returns the lowest address in [from, to] not in the set.
// Because runs never touch, the address right after the run holding from
// is free; one binary search is enough.
func (s *spanSet) firstFree(from, to u128) (u128, bool) {
	if to.less(from) {
		return u128{}, false
	}
	i := s.find(from)
	if i == len(s.runs) || from.less(s.runs[i].lo) {
		return from, true
	}
	if !s.runs[i].hi.less(to) {
		return u128{}, false
	}
	return s.runs[i].hi.inc(), true
}
