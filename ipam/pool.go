// Package ipam owns a network's address plan: it turns Docker-style
// --subnet, --gateway, --ip-range and --aux-address flags into validated
// pools (BuildPools), and hands out, claims and releases container addresses
// within those pools (Allocator). It is pure logic over net/netip: storing
// leases and locking the network are the daemon's job.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Sentinel errors, checked with errors.Is; the returned errors wrap them with
// the address and subnet involved.
var (
	ErrAddressInUse  = errors.New("address already in use")
	ErrPoolExhausted = errors.New("no free address")
	ErrNotInSubnet   = errors.New("not in any subnet")
	// ErrReserved: the network address, the IPv4 broadcast address, the
	// gateway or an --aux-address. None of them is ever leased.
	ErrReserved = errors.New("address is reserved")
	// ErrNoSubnet: Allocate asked for a family the network has no subnet of.
	ErrNoSubnet = errors.New("no subnet of that family")
)

// Pool is one subnet of a network, with what belongs to it.
type Pool struct {
	Subnet  netip.Prefix          // masked
	Range   netip.Prefix          // --ip-range; zero value = whole subnet
	Gateway netip.Addr            // zero if none (Spec.NoGateway)
	Aux     map[string]netip.Addr // --aux-address NAME=IP, never handed out; nil if none
}

// Family returns 4 or 6.
func (p Pool) Family() int {
	if p.Subnet.Addr().Is4() {
		return 4
	}
	return 6
}

// Spec is the raw user input, as Docker's flags take it.
type Spec struct {
	Subnets  []string // --subnet
	Gateways []string // --gateway
	Ranges   []string // --ip-range
	Aux      []string // --aux-address NAME=IP, as given
	// NoGateway: do not infer gateways (a DHCP network, whose leases name
	// the router). Given gateways are still validated, so a typo is
	// caught, then dropped.
	NoGateway bool
}

// BuildPools validates s and returns one pool per --subnet, in the order
// given. Each --gateway, --ip-range and --aux-address goes to the subnet that
// contains it, as the docker CLI pairs them.
//
// A subnet or ip-range with host bits set (10.1.100.130/25) is refused, not
// masked: Docker refuses it ("it should be 10.1.100.128/25"), and silently
// masking would hide a typo in the address the user meant.
//
// IPv4 subnets must be /30 or larger: a /31 or /32 has no address left once
// the network and broadcast addresses are taken. An IPv6 /128 is refused for
// the same reason (its only address is the network address).
func BuildPools(s Spec) ([]Pool, error) {
	if len(s.Subnets) == 0 {
		return nil, errors.New("at least one --subnet is required")
	}
	pools := make([]Pool, 0, len(s.Subnets))
	for _, raw := range s.Subnets {
		subnet, err := parseSubnet(raw)
		if err != nil {
			return nil, err
		}
		for _, p := range pools {
			if p.Subnet.Overlaps(subnet) {
				return nil, fmt.Errorf("--subnet %s overlaps --subnet %s", subnet, p.Subnet)
			}
		}
		pools = append(pools, Pool{Subnet: subnet})
	}
	if err := addRanges(pools, s.Ranges); err != nil {
		return nil, err
	}
	if err := addGateways(pools, s.Gateways, s.NoGateway); err != nil {
		return nil, err
	}
	if err := addAux(pools, s.Aux); err != nil {
		return nil, err
	}
	for _, p := range pools {
		if p.Range.IsValid() && !hasFree(p) {
			return nil, fmt.Errorf("--ip-range %s holds no address to hand out: the network address, broadcast, gateway and --aux-address take them all", p.Range)
		}
	}
	return pools, nil
}

// hasFree says whether p's range keeps an address for a container. Only a
// range of a few addresses can be used up by what is reserved.
func hasFree(p Pool) bool {
	r := p.Range
	if r.Addr().BitLen()-r.Bits() > 3 {
		return true
	}
	np := newPool(p)
	for a := r.Addr(); r.Contains(a); a = a.Next() {
		if _, reserved := np.reserved[fromAddr(a)]; !reserved {
			return true
		}
	}
	return false
}

func parseSubnet(raw string) (netip.Prefix, error) {
	p, err := parseCIDR("--subnet", raw)
	if err != nil {
		return netip.Prefix{}, err
	}
	if what := specialPrefix(p); what != "" {
		return netip.Prefix{}, fmt.Errorf("--subnet %s is %s, not a subnet a LAN's hosts can be on", p, what)
	}
	switch {
	case p.Addr().Is4() && p.Bits() > 30:
		return netip.Prefix{}, fmt.Errorf("--subnet %s is too small: an IPv4 subnet must be /30 or larger (network, gateway, one address, broadcast)", p)
	case p.Addr().Is6() && p.Bits() > 127:
		return netip.Prefix{}, fmt.Errorf("--subnet %s is too small: an IPv6 subnet must be /127 or larger", p)
	}
	return p, nil
}

// specialPrefix names the range p lies in whose addresses no host's
// interface may have (the kernel refuses some, routes none), or "".
// Link-local IPv6 is allowed: the seed's own example is fe90::/64.
func specialPrefix(p netip.Prefix) string {
	for _, sp := range []struct {
		prefix netip.Prefix
		what   string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "in 0.0.0.0/8 (this network)"},
		{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
		{netip.MustParsePrefix("::/8"), "in ::/8 (unspecified, loopback, IPv4-compatible)"},
		{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
	} {
		if sp.prefix.Contains(p.Addr()) && p.Bits() >= sp.prefix.Bits() {
			return sp.what
		}
	}
	return ""
}

// parseCIDR parses a canonical prefix with an error that names the flag and
// says what is wrong in words (netip's messages repeat the input and quote
// Go function names).
func parseCIDR(flag, raw string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(raw)
	if err != nil {
		addr, bits, ok := strings.Cut(raw, "/")
		why := "bad prefix length " + strconv.Quote(bits)
		if !ok {
			why = "missing /length (CIDR notation, like 10.0.0.0/24)"
		} else if a, err := netip.ParseAddr(addr); err != nil || a.Zone() != "" {
			why = "bad address " + strconv.Quote(addr)
		}
		return netip.Prefix{}, fmt.Errorf("invalid %s %q: %s", flag, raw, why)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid %s %q: IPv4-mapped IPv6 prefixes are not supported", flag, raw)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("invalid %s %s: host bits are set, it should be %s", flag, p, m)
	}
	return p, nil
}

// parseAddr parses a plain address (no zone, not IPv4-mapped) for flag.
func parseAddr(flag, raw, value string) (netip.Addr, error) {
	a, err := netip.ParseAddr(value)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("invalid %s %q: %s is not an IP address", flag, raw, strconv.Quote(value))
	}
	return a, nil
}

// owner returns the index of the pool whose subnet contains a, or -1.
// Subnets of one network never overlap, so there is at most one.
func owner(pools []Pool, a netip.Addr) int {
	for i, p := range pools {
		if p.Subnet.Contains(a) {
			return i
		}
	}
	return -1
}

func addRanges(pools []Pool, ranges []string) error {
	for _, raw := range ranges {
		r, err := parseCIDR("--ip-range", raw)
		if err != nil {
			return err
		}
		i := owner(pools, r.Addr())
		if i < 0 {
			return fmt.Errorf("--ip-range %s is not in any --subnet", r)
		}
		p := &pools[i]
		if r.Bits() < p.Subnet.Bits() {
			return fmt.Errorf("--ip-range %s is larger than its --subnet %s", r, p.Subnet)
		}
		if p.Range.IsValid() {
			return fmt.Errorf("second --ip-range for subnet %s: %s", p.Subnet, r)
		}
		p.Range = r
	}
	return nil
}

func addGateways(pools []Pool, gateways []string, noGateway bool) error {
	for _, raw := range gateways {
		gw, err := parseAddr("--gateway", raw, raw)
		if err != nil {
			return err
		}
		i := owner(pools, gw)
		if i < 0 {
			return fmt.Errorf("--gateway %s is not in any --subnet", gw)
		}
		p := &pools[i]
		if p.Gateway.IsValid() {
			return fmt.Errorf("second --gateway for subnet %s: %s", p.Subnet, gw)
		}
		if what := edgeAddress(p.Subnet, gw); what != "" {
			return fmt.Errorf("--gateway %s is the %s of --subnet %s", gw, what, p.Subnet)
		}
		p.Gateway = gw
	}
	for i := range pools {
		switch {
		case noGateway:
			pools[i].Gateway = netip.Addr{}
		case !pools[i].Gateway.IsValid():
			// Docker's rule: the first address after the network address
			// of the subnet, even when an --ip-range starts elsewhere.
			pools[i].Gateway = pools[i].Subnet.Addr().Next()
		}
	}
	return nil
}

// edgeAddress names a as the network or (IPv4) broadcast address of subnet,
// or returns "".
func edgeAddress(subnet netip.Prefix, a netip.Addr) string {
	first, last := prefixBounds(subnet)
	x := fromAddr(a)
	switch {
	case x == first:
		return "network address"
	case x == last && a.Is4():
		return "broadcast address"
	}
	return ""
}

func addAux(pools []Pool, aux []string) error {
	for _, raw := range aux {
		name, value, ok := strings.Cut(raw, "=")
		if !ok {
			return fmt.Errorf("invalid --aux-address %q: want NAME=IP", raw)
		}
		if name == "" {
			return fmt.Errorf("invalid --aux-address %q: empty NAME in NAME=IP", raw)
		}
		a, err := parseAddr("--aux-address", raw, value)
		if err != nil {
			return err
		}
		i := owner(pools, a)
		if i < 0 {
			return fmt.Errorf("--aux-address %s=%s is not in any --subnet", name, a)
		}
		if err := putAux(pools, &pools[i], name, a); err != nil {
			return err
		}
	}
	return nil
}

func putAux(pools []Pool, p *Pool, name string, a netip.Addr) error {
	// Names are unique across the network, as in Docker, where they are the
	// keys of one map; a repeated name would silently drop an address.
	for _, q := range pools {
		if old, dup := q.Aux[name]; dup {
			return fmt.Errorf("duplicate --aux-address name %q: %s and %s", name, old, a)
		}
	}
	if a == p.Gateway {
		return fmt.Errorf("--aux-address %s=%s is the gateway of --subnet %s", name, a, p.Subnet)
	}
	if p.Aux == nil {
		p.Aux = make(map[string]netip.Addr)
	}
	p.Aux[name] = a
	return nil
}

// Overlaps returns the first pair of overlapping subnets, one from a and one
// from b, so the daemon can refuse two networks on one parent whose subnets
// overlap.
func Overlaps(a, b []Pool) (netip.Prefix, netip.Prefix, bool) {
	for _, p := range a {
		for _, q := range b {
			if p.Subnet.Overlaps(q.Subnet) {
				return p.Subnet, q.Subnet, true
			}
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}
