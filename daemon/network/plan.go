package network

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/ipam"
)

// What an attach asks of the kernel and of the network's address driver:
// the interface to make (planSlave), its addresses and routes, and the
// addresses themselves, taken now or beside the kernel work.

// planSlave describes the interface to create and fills in ep's addresses,
// gateways and MAC. Like Docker, the first network with a gateway of a
// family gives the default route of that family (routed records which).
func planSlave(st *netState, ep *api.Endpoint, na api.NetworkAttach, parent link.Info, mtu int, addrs []netip.Prefix, routed map[int]bool) (link.Slave, error) {
	n := st.net
	slave := link.Slave{Kind: n.Driver, Mode: n.Mode, Flag: n.Flag, ParentIndex: parent.Index,
		Name: ep.IfName, MTU: mtu, DevRoutes: n.Driver == "ipvlan" && n.Mode != "l2",
		Index: indexHint(ep.IfName)}
	// Like Docker: no IPv6 subnet, no IPv6 at all on the interface, so a
	// router advertisement on the LAN cannot give the container any.
	slave.DisableIPv6 = !hasFamily(st.addrs.Pools(), 6)
	planAddrs(st, ep, &slave, addrs, routed)
	if n.Driver != "macvlan" {
		ep.MAC = parent.MAC.String() // ipvlan shares the parent's
		return slave, nil
	}
	var err error
	if slave.MAC, err = chooseMAC(na.MAC); err != nil {
		return slave, err
	}
	ep.MAC = slave.MAC.String()
	return slave, nil
}

// planAddrs gives the interface its addresses and the routes that come
// with them, and records both in ep.
func planAddrs(st *netState, ep *api.Endpoint, slave *link.Slave, addrs []netip.Prefix, routed map[int]bool) {
	n := st.net
	pools := st.addrs.Pools()
	slave.Addrs = addrs
	for _, a := range addrs {
		ep.Addresses = append(ep.Addresses, a.String())
		fam := 4
		if a.Addr().Is6() {
			fam = 6
		}
		if n.Internal || routed[fam] {
			continue
		}
		if slave.DevRoutes {
			slave.DevRouteFamilies = append(slave.DevRouteFamilies, fam)
			routed[fam] = true
		} else if gw, ok := gatewayFor(pools, a.Addr()); ok {
			slave.Gateways = append(slave.Gateways, gw)
			ep.Gateways = append(ep.Gateways, gw.String())
			routed[fam] = true
		}
	}
}

// indexHint is the ifindex ethK most likely finds free in its container:
// 2+K, what the kernel itself gives when a namespace holds lo and the
// interfaces underlay made in order (Docker's containers look the same).
// Other names get the kernel's choice.
func indexHint(ifname string) int {
	k, err := strconv.Atoi(strings.TrimPrefix(ifname, "eth"))
	if err != nil || !strings.HasPrefix(ifname, "eth") || k < 0 || k > 1000 {
		return 0
	}
	return 2 + k
}

func chooseMAC(s string) (net.HardwareAddr, error) {
	if s == "" {
		return link.RandomMAC()
	}
	m, err := api.ParseMAC(s)
	if err != nil {
		return nil, invalid("MAC address %s: %w", s, err)
	}
	return net.ParseMAC(m)
}

// takeAddresses leases one address of each family the network has: the
// static one asked for, else a preferred one (a restarted container's old
// address) if free, else the next free one.
func (m *Manager) takeAddresses(st *netState, ep api.Endpoint, na api.NetworkAttach, prefer []netip.Addr, undo *undoList) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, fam := range []int{4, 6} {
		var pool ipam.Pool
		var addr netip.Addr
		var err error
		static := na.IP
		if fam == 6 {
			static = na.IP6
		}
		if !hasFamily(st.addrs.Pools(), fam) {
			continue
		}
		switch {
		case static != "":
			addr, err = netip.ParseAddr(static)
			if err != nil {
				return nil, invalid("static address %q is not an IP address (no /prefix: the subnet gives it)", static)
			}
			if pool, err = st.addrs.Claim(ownerOf(ep), addr); err != nil {
				return nil, fmt.Errorf("static address %w", err)
			}
		default:
			addr, pool, err = claimPreferred(st.addrs, ownerOf(ep), prefer, fam)
			if err != nil {
				return nil, err
			}
		}
		a := addr
		undo.add(func() { st.mu.Lock(); st.addrs.Release(ownerOf(ep), a); st.mu.Unlock() })
		out = append(out, netip.PrefixFrom(addr, pool.Subnet.Bits()))
	}
	return out, nil
}

func claimPreferred(addrs AddressDriver, o ipam.Owner, prefer []netip.Addr, fam int) (netip.Addr, ipam.Pool, error) {
	for _, p := range prefer {
		if (fam == 4) != p.Is4() {
			continue
		}
		if pool, err := addrs.Claim(o, p); err == nil {
			return p, pool, nil
		}
	}
	return addrs.Allocate(o, fam)
}

func hasFamily(pools []ipam.Pool, fam int) bool {
	for _, p := range pools {
		if p.Family() == fam {
			return true
		}
	}
	return false
}

// pendingAddrs is an allocation that runs beside the attach's kernel work.
type pendingAddrs struct {
	done  chan struct{}
	addrs []netip.Prefix
	err   error
}

// takeLater runs takeAddresses in a goroutine of its own. The attach's
// undo waits for it and gives back what it took.
func (m *Manager) takeLater(st *netState, ep api.Endpoint, na api.NetworkAttach, prefer []netip.Addr, undo *undoList) *pendingAddrs {
	p := &pendingAddrs{done: make(chan struct{})}
	var own undoList
	go func() {
		defer close(p.done)
		p.addrs, p.err = m.takeAddresses(st, ep, na, prefer, &own)
	}()
	undo.add(func() { <-p.done; own.run() })
	return p
}

func (p *pendingAddrs) wait() ([]netip.Prefix, error) {
	<-p.done
	return p.addrs, p.err
}
