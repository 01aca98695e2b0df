package network

import (
	"maps"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// A host can hold tens of thousands of endpoints, all in memory for the
// whole life of underlayd. As api.Endpoint (a dozen strings and slices)
// each costs about 430 bytes of heap; a network keeps them as epRecord
// instead, a quarter of that: addresses and MAC as bytes, the time as an
// integer, and nothing the network itself knows (its name, its parent, the
// gateways of its pools). They become api.Endpoint only when answered or
// stored.

// epKey identifies an endpoint within its network: one container.
type epKey struct{ ns, id string }

func keyOf(ep api.Endpoint) epKey { return epKey{ep.Namespace, ep.ContainerID} }

// epRecord is one endpoint as its network keeps it: 56 bytes, next to a
// 32-byte key. What few endpoints have lives in the network's side table
// (epRare), not in every record.
type epRecord struct {
	inode   uint64
	cookie  uint64
	created int64 // Unix nanoseconds
	v6      [16]byte
	v4      [4]byte
	mac     [6]byte
	bits4   uint8
	bits6   uint8
	ifIdx   uint8 // N of ethN
	flags   uint8
}

const (
	hasV4 = 1 << iota
	hasV6 // v6 holds an address
	gwV4  // the IPv4 address routes through its pool's gateway
	gwV6  // likewise for IPv6
	rare  // the network's rare table has more of this endpoint
	byCNI // a CNI ADD made it
)

// epRare holds what does not fit a record: a name other than eth0-eth15,
// and a MAC that is not 6 bytes (IPoIB parents of ipvlan).
type epRare struct {
	ifname, mac string
	// dhcp is a DHCP endpoint's lease; its gateway comes from the lease,
	// not from a pool.
	dhcp *api.DHCPLease
	// names are the container's DNS names, comma-separated.
	names string
}

// ifNames are the names attach gives, shared by every endpoint.
var ifNames = func() []string {
	out := make([]string, api.MaxNetworks)
	for i := range out {
		out[i] = "eth" + strconv.Itoa(i)
	}
	return out
}()

// record compacts ep; what it cannot hold (a malformed stored address) is
// dropped, as the allocator drops it at load.
func (st *netState) record(k epKey, ep api.Endpoint) epRecord {
	r := epRecord{inode: ep.NetnsInode, cookie: ep.NetnsCookie}
	var odd epRare
	if t, err := time.Parse(time.RFC3339Nano, ep.Created); err == nil {
		r.created = t.UnixNano()
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(ep.IfName, "eth")); err == nil && n >= 0 && n < api.MaxNetworks && ifNames[n] == ep.IfName {
		r.ifIdx = uint8(n)
	} else {
		odd.ifname = ep.IfName
	}
	if hw, err := net.ParseMAC(ep.MAC); err == nil && len(hw) == len(r.mac) {
		copy(r.mac[:], hw)
	} else {
		odd.mac = ep.MAC
	}
	gws := map[string]bool{}
	for _, g := range ep.Gateways {
		gws[g] = true
	}
	pools := st.addrs.Pools()
	if ep.DHCP != nil {
		d := *ep.DHCP
		odd.dhcp = &d
		pools = nil // the lease's router is the gateway
	}
	for _, a := range ep.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		gw, ok := gatewayFor(pools, p.Addr())
		routed := ok && gws[gw.String()]
		switch {
		case p.Addr().Is4() && r.flags&hasV4 == 0:
			r.v4, r.bits4, r.flags = p.Addr().As4(), uint8(p.Bits()), r.flags|hasV4
			if routed {
				r.flags |= gwV4
			}
		case p.Addr().Is6() && r.flags&hasV6 == 0:
			r.v6, r.bits6, r.flags = p.Addr().As16(), uint8(p.Bits()), r.flags|hasV6
			if routed {
				r.flags |= gwV6
			}
		}
	}
	if ep.CNI {
		r.flags |= byCNI
	}
	odd.names = strings.Join(ep.Names, ",")
	delete(st.rare, k)
	if odd != (epRare{}) {
		st.rare[k] = odd
		r.flags |= rare
	}
	return r
}

// addrs returns the record's addresses.
func (r *epRecord) addrs() []netip.Addr {
	var out []netip.Addr
	if r.flags&hasV4 != 0 {
		out = append(out, netip.AddrFrom4(r.v4))
	}
	if r.flags&hasV6 != 0 {
		out = append(out, netip.AddrFrom16(r.v6))
	}
	return out
}

// endpoint expands a record back into an api.Endpoint.
func (st *netState) endpoint(k epKey, r *epRecord) api.Endpoint {
	return expand(st.net, st.addrs.Pools(), st.rare, k, r)
}

// expand builds the api.Endpoint of record r of network n, whose pools
// give the gateways and whose rare table the fields records do not hold.
func expand(n api.Network, pools []ipam.Pool, rares map[epKey]epRare, k epKey, r *epRecord) api.Endpoint {
	ep := api.Endpoint{Network: n.Name, Namespace: k.ns, ContainerID: k.id, IfName: ifNames[r.ifIdx],
		NetnsInode: r.inode, NetnsCookie: r.cookie,
		Parent: n.Parent, State: stateAttached, Created: time.Unix(0, r.created).UTC().Format(time.RFC3339Nano),
		CNI: r.flags&byCNI != 0}
	if r.mac != [6]byte{} {
		ep.MAC = net.HardwareAddr(r.mac[:]).String()
	}
	if r.flags&rare != 0 {
		odd := rares[k]
		if odd.ifname != "" {
			ep.IfName = odd.ifname
		}
		if odd.mac != "" {
			ep.MAC = odd.mac
		}
		if odd.names != "" {
			ep.Names = strings.Split(odd.names, ",")
		}
		if odd.dhcp != nil {
			d := *odd.dhcp
			ep.DHCP = &d
			pools = nil
			if d.Routed && d.Router != "" && d.State == leaseBound {
				ep.Gateways = []string{d.Router}
			}
		}
	}
	add := func(a netip.Addr, bits uint8, routed bool) {
		ep.Addresses = append(ep.Addresses, netip.PrefixFrom(a, int(bits)).String())
		if gw, ok := gatewayFor(pools, a); ok && routed {
			ep.Gateways = append(ep.Gateways, gw.String())
		}
	}
	if r.flags&hasV4 != 0 {
		add(netip.AddrFrom4(r.v4), r.bits4, r.flags&gwV4 != 0)
	}
	if r.flags&hasV6 != 0 {
		add(netip.AddrFrom16(r.v6), r.bits6, r.flags&gwV6 != 0)
	}
	return ep
}

// EachEndpoint calls fn with every endpoint, in Endpoints' order, without
// holding them all at once: each network's compact records are copied
// under its lock and expanded one at a time after, so endpoint ls on a host
// with tens of thousands of endpoints needs a few MiB, and a slow reader
// never holds up an attach.
func (m *Manager) EachEndpoint(fn func(api.Endpoint) error) error {
	states := m.states()
	sort.Slice(states, func(i, j int) bool { return states[i].net.Name < states[j].net.Name })
	for _, st := range states {
		st.mu.Lock()
		entries := st.sorted()
		rares := maps.Clone(st.rare)
		n, pools := st.net, st.addrs.Pools()
		st.mu.Unlock()
		for i := range entries {
			if err := fn(expand(n, pools, rares, entries[i].k, &entries[i].r)); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry is a copied record and its key.
type entry struct {
	k epKey
	r epRecord
}

// sorted copies the network's records in namespace, container order (a
// container has one endpoint per network, so its key orders it). The
// caller holds st.mu.
func (st *netState) sorted() []entry {
	entries := make([]entry, 0, len(st.eps))
	for k, r := range st.eps {
		entries = append(entries, entry{k, r})
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].k, entries[j].k
		return a.ns < b.ns || a.ns == b.ns && a.id < b.id
	})
	return entries
}

// The table itself; the caller holds st.mu.

func (st *netState) get(k epKey) (api.Endpoint, bool) {
	r, ok := st.eps[k]
	if !ok {
		return api.Endpoint{}, false
	}
	return st.endpoint(k, &r), true
}

func (st *netState) put(ep api.Endpoint, intern func(string) string) {
	k := epKey{intern(ep.Namespace), ep.ContainerID}
	st.unname(k)
	st.eps[k] = st.record(k, ep)
	for _, n := range ep.Names {
		if st.names == nil {
			st.names = map[string]map[epKey]struct{}{}
		}
		if st.names[n] == nil {
			st.names[n] = map[epKey]struct{}{}
		}
		st.names[n][k] = struct{}{}
	}
}

func (st *netState) remove(k epKey) {
	st.unname(k)
	delete(st.eps, k)
	delete(st.rare, k)
}

// unname drops k's names from the network's DNS index.
func (st *netState) unname(k epKey) {
	odd, ok := st.rare[k]
	if !ok || odd.names == "" {
		return
	}
	for _, n := range strings.Split(odd.names, ",") {
		delete(st.names[n], k)
		if len(st.names[n]) == 0 {
			delete(st.names, n)
		}
	}
}

// all expands every endpoint of the network, in Endpoints' order. The
// caller holds st.mu.
func (st *netState) all() []api.Endpoint {
	entries := st.sorted()
	out := make([]api.Endpoint, len(entries))
	for i := range entries {
		out[i] = st.endpoint(entries[i].k, &entries[i].r)
	}
	return out
}
