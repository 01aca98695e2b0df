package network

import (
	"net/netip"
	"sort"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// usager is an address driver that can say how full its pools are: the
// local allocator, and the cache of a global network (every host's
// addresses).
type usager interface{ Usage() []ipam.Usage }

// usageLocked reports how full each subnet of st is; the caller holds
// st.mu. A DHCP network counts this host's leases by the subnet each
// lease came with, and leaves Free unknown: the server decides.
func (st *netState) usageLocked() []api.SubnetUsage {
	if u, ok := st.addrs.(usager); ok {
		pools := u.Usage()
		out := make([]api.SubnetUsage, len(pools))
		for i, p := range pools {
			free := p.Free
			out[i] = api.SubnetUsage{Subnet: p.Subnet.String(), InUse: p.InUse, Free: &free}
		}
		return out
	}
	counts := map[netip.Prefix]uint64{}
	for _, p := range st.addrs.Pools() {
		counts[p.Subnet] = 0
	}
	for k, r := range st.eps {
		for _, a := range st.endpoint(k, &r).Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				continue
			}
			if p.Bits() == 128 {
				// A DHCPv6 address with no --subnet of its own is a /128:
				// counted by its /64 (the LAN's prefix, as a rule), not as
				// a subnet (and a metrics series) per container.
				p = netip.PrefixFrom(p.Addr(), 64)
			}
			counts[p.Masked()]++
		}
	}
	out := make([]api.SubnetUsage, 0, len(counts))
	for p, n := range counts {
		out = append(out, api.SubnetUsage{Subnet: p.String(), InUse: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subnet < out[j].Subnet })
	return out
}

// Usage reports every network's endpoints and subnets, for the metrics;
// it locks one network at a time.
func (m *Manager) Usage() []api.NetworkUsage {
	var out []api.NetworkUsage
	for _, st := range m.states() {
		st.mu.Lock()
		out = append(out, api.NetworkUsage{Name: st.net.Name, Driver: st.net.Driver, Endpoints: len(st.eps), Subnets: st.usageLocked()})
		st.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// OwnedParents counts the parents underlayd created (VLAN sub-interfaces,
// dummies) and still holds.
func (m *Manager) OwnedParents() int {
	m.refMu.Lock()
	defer m.refMu.Unlock()
	return len(m.owned)
}
