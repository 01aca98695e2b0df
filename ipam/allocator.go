package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"
)

// Allocator hands out addresses from a network's pools. Not safe for
// concurrent use: the daemon holds the network's lock.
//
// Each pool keeps one spanSet holding both its leases and its reserved
// addresses (network, IPv4 broadcast, gateway, aux). Putting the reserved
// addresses in the same set is what makes first-fit a single binary search:
// the address after any run is free, never reserved. A separate small map
// remembers which addresses are reserved, so they are never released and
// not counted as leases.
type Allocator struct {
	pools []pool
	count int
}

type pool struct {
	Pool
	is4      bool
	first    u128            // first and last address handed out dynamically:
	last     u128            // the --ip-range, or the whole subnet
	reserved map[u128]string // why each reserved address is reserved
	taken    spanSet         // leases and reserved addresses
}

// NewAllocator builds an allocator with nothing leased. The pools should come
// from BuildPools (or the store, which saved them); a pool with an invalid
// subnet is dropped rather than panicking later. The pools are copied.
func NewAllocator(pools []Pool) *Allocator {
	a := &Allocator{pools: make([]pool, 0, len(pools))}
	for _, p := range pools {
		if !p.Subnet.IsValid() {
			continue
		}
		a.pools = append(a.pools, newPool(p))
	}
	return a
}

func newPool(p Pool) pool {
	p.Subnet = p.Subnet.Masked()
	p.Aux = maps.Clone(p.Aux)
	np := pool{Pool: p, is4: p.Subnet.Addr().Is4(), reserved: make(map[u128]string)}
	np.first, np.last = prefixBounds(p.Subnet)
	// A range that is not inside the subnet cannot be honoured; fall back to
	// the subnet rather than hand out foreign addresses.
	if r := p.Range.Masked(); r.IsValid() && r.Bits() >= p.Subnet.Bits() && p.Subnet.Contains(r.Addr()) {
		np.first, np.last = prefixBounds(r)
	}

	subnetFirst, subnetLast := prefixBounds(p.Subnet)
	np.reserve(subnetFirst, "network address")
	if np.is4 {
		np.reserve(subnetLast, "broadcast address")
	}
	if p.Gateway.IsValid() && p.Subnet.Contains(p.Gateway) {
		np.reserve(fromAddr(p.Gateway), "gateway")
	}
	for name, ip := range p.Aux {
		if p.Subnet.Contains(ip) {
			np.reserve(fromAddr(ip), fmt.Sprintf("aux address %q", name))
		}
	}
	return np
}

// reserve keeps the first reason given: the network address stays "network
// address" even if an aux address repeats it.
func (p *pool) reserve(x u128, why string) {
	if _, ok := p.reserved[x]; !ok {
		p.reserved[x] = why
		p.taken.add(x)
	}
}

// describe names the pool in errors: its subnet, and its range if it has one.
func (p *pool) describe() string {
	if p.Range.IsValid() {
		return fmt.Sprintf("%s (--ip-range %s)", p.Subnet, p.Range)
	}
	return p.Subnet.String()
}

// find returns the pool whose subnet contains addr, or nil. Subnets of one
// network never overlap; networks have a handful of pools, so a loop is
// cheaper than anything cleverer.
func (a *Allocator) find(addr netip.Addr) *pool {
	for i := range a.pools {
		if a.pools[i].Subnet.Contains(addr) {
			return &a.pools[i]
		}
	}
	return nil
}

// Pools returns the allocator's pools in order. Their Aux maps are shared:
// treat them as read-only.
func (a *Allocator) Pools() []Pool {
	out := make([]Pool, len(a.pools))
	for i := range a.pools {
		out[i] = a.pools[i].Pool
	}
	return out
}

// PoolOf returns the pool whose subnet contains addr.
func (a *Allocator) PoolOf(addr netip.Addr) (Pool, bool) {
	if p := a.find(addr); p != nil {
		return p.Pool, true
	}
	return Pool{}, false
}

// Count returns how many addresses are leased (reserved ones not included).
func (a *Allocator) Count() int { return a.count }

// InUse reports whether addr is leased. Reserved addresses are not leases:
// InUse(gateway) is false, and Claim explains why it still cannot be had.
func (a *Allocator) InUse(addr netip.Addr) bool {
	p := a.find(addr)
	if p == nil {
		return false
	}
	x := fromAddr(addr)
	_, reserved := p.reserved[x]
	return !reserved && p.taken.contains(x)
}

// Reserved reports whether addr is one that is never handed out: a
// network, broadcast, gateway or aux address.
func (a *Allocator) Reserved(addr netip.Addr) bool {
	p := a.find(addr)
	if p == nil {
		return false
	}
	_, ok := p.reserved[fromAddr(addr)]
	return ok
}

// Allocate leases the lowest free address of the given family (4 or 6),
// trying pools in order; within a pool it searches the --ip-range (or the
// subnet) from its start upward. First-fit, not round robin, so that
// --ip-range 192.168.32.128/25 gives .128 first and a released address is
// handed out again at once, as Docker users see.
func (a *Allocator) Allocate(family int) (netip.Addr, Pool, error) {
	if family != 4 && family != 6 {
		return netip.Addr{}, Pool{}, fmt.Errorf("allocate: address family %d is neither 4 nor 6", family)
	}
	var full []string
	for i := range a.pools {
		p := &a.pools[i]
		if p.is4 != (family == 4) {
			continue
		}
		if x, ok := p.taken.firstFree(p.first, p.last); ok {
			p.taken.add(x)
			a.count++
			return x.addr(p.is4), p.Pool, nil
		}
		full = append(full, p.describe())
	}
	if len(full) == 0 {
		return netip.Addr{}, Pool{}, fmt.Errorf("network has no IPv%d subnet: %w", family, ErrNoSubnet)
	}
	return netip.Addr{}, Pool{}, fmt.Errorf("%w in %s", ErrPoolExhausted, strings.Join(full, ", "))
}

// Pick returns a free address of the family without leasing it. Within
// each pool's range the search starts at a point that seed chooses and
// wraps around, so that hosts sharing a pool (each picking with its own
// seeds, then racing to claim) rarely pick the same address; first-fit
// would send them all to one.
func (a *Allocator) Pick(family int, seed uint64) (netip.Addr, Pool, error) {
	if family != 4 && family != 6 {
		return netip.Addr{}, Pool{}, fmt.Errorf("pick: address family %d is neither 4 nor 6", family)
	}
	var full []string
	for i := range a.pools {
		p := &a.pools[i]
		if p.is4 != (family == 4) {
			continue
		}
		start := p.first.add(offsetIn(p.first, p.last, seed))
		x, ok := p.taken.firstFree(start, p.last)
		if !ok && p.first.less(start) {
			x, ok = p.taken.firstFree(p.first, start.dec())
		}
		if ok {
			return x.addr(p.is4), p.Pool, nil
		}
		full = append(full, p.describe())
	}
	if len(full) == 0 {
		return netip.Addr{}, Pool{}, fmt.Errorf("network has no IPv%d subnet: %w", family, ErrNoSubnet)
	}
	return netip.Addr{}, Pool{}, fmt.Errorf("%w in %s", ErrPoolExhausted, strings.Join(full, ", "))
}

// offsetIn maps seed into [0, last-first].
func offsetIn(first, last u128, seed uint64) u128 {
	size := last.sub(first) // one less than the count
	if size.hi != 0 || size.lo == ^uint64(0) {
		return u128{0, seed}
	}
	return u128{0, seed % (size.lo + 1)}
}

// Claim leases a specific (static) address. Like Docker, it may lie outside
// the --ip-range but must be inside a subnet of the network.
func (a *Allocator) Claim(addr netip.Addr) (Pool, error) {
	p, err := a.check(addr)
	if err != nil {
		return Pool{}, err
	}
	if !p.taken.add(fromAddr(addr)) {
		return Pool{}, fmt.Errorf("%s: %w", addr, ErrAddressInUse)
	}
	a.count++
	return p.Pool, nil
}

// Mark records an address already leased, when the daemon rebuilds the
// allocator from its store at startup. Marking an address twice is not an
// error (the lease is the same); an address outside every subnet, or a
// reserved one, is: the store and the network disagree.
func (a *Allocator) Mark(addr netip.Addr) error {
	p, err := a.check(addr)
	if err != nil {
		return err
	}
	if p.taken.add(fromAddr(addr)) {
		a.count++
	}
	return nil
}

// check finds addr's pool and refuses addresses that can never be leased.
func (a *Allocator) check(addr netip.Addr) (*pool, error) {
	p := a.find(addr)
	if p == nil {
		return nil, fmt.Errorf("%s: %w of the network", addr, ErrNotInSubnet)
	}
	if why, ok := p.reserved[fromAddr(addr)]; ok {
		return nil, fmt.Errorf("%s: %w (%s of %s)", addr, ErrReserved, why, p.Subnet)
	}
	return p, nil
}

// Each calls fn with every leased address, pool by pool in address order.
func (a *Allocator) Each(fn func(netip.Addr)) {
	for i := range a.pools {
		p := &a.pools[i]
		for _, r := range p.taken.runs {
			for x := r.lo; ; x = x.inc() {
				if _, ok := p.reserved[x]; !ok {
					fn(x.addr(p.is4))
				}
				if x == r.hi {
					break
				}
			}
		}
	}
}

// Release frees addr at once, static or dynamic. Releasing a free, reserved
// or foreign address does nothing, so detaching twice is harmless.
func (a *Allocator) Release(addr netip.Addr) {
	p := a.find(addr)
	if p == nil {
		return
	}
	x := fromAddr(addr)
	if _, ok := p.reserved[x]; ok {
		return
	}
	if p.taken.remove(x) {
		a.count--
	}
}

// Usage is how full one pool is.
type Usage struct {
	Subnet netip.Prefix
	// InUse counts the leased addresses, static ones outside the range
	// included.
	InUse uint64
	// Free counts the addresses still to be handed out dynamically: the
	// --ip-range (or the subnet) less its leases and reserved addresses.
	// A float, since an IPv6 /64 has 2^64 of them.
	Free float64
}

// Usage reports each pool's leases and free addresses, in pool order. It
// walks the runs of leases, not the addresses, so a /64 costs no more
// than a /24.
func (a *Allocator) Usage() []Usage {
	out := make([]Usage, 0, len(a.pools))
	for i := range a.pools {
		p := &a.pools[i]
		var taken, takenInRange u128
		for _, r := range p.taken.runs {
			taken = taken.add(r.hi.sub(r.lo).inc())
			lo, hi := maxOf(r.lo, p.first), minOf(r.hi, p.last)
			if !hi.less(lo) {
				takenInRange = takenInRange.add(hi.sub(lo).inc())
			}
		}
		u := Usage{Subnet: p.Subnet}
		if leased := taken.sub(u128{lo: uint64(len(p.reserved))}); leased.hi == 0 {
			u.InUse = leased.lo
		}
		// The range's size less what is taken in it, kept from
		// overflowing: an empty /0 has 2^128 addresses, one more than a
		// u128 holds.
		if takenInRange == (u128{}) {
			u.Free = p.last.sub(p.first).float() + 1
		} else {
			u.Free = p.last.sub(p.first).sub(takenInRange.dec()).float()
		}
		out = append(out, u)
	}
	return out
}

func maxOf(x, y u128) u128 {
	if x.less(y) {
		return y
	}
	return x
}

func minOf(x, y u128) u128 {
	if x.less(y) {
		return x
	}
	return y
}
