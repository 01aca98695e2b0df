package network

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/ipam/dhcp"
)

// Keeping leases: one timer per DHCP endpoint, set for its next step.
// At T1 underlayd asks the server that granted the lease, at T2 any
// server, and at expiry it takes the address off the interface (the
// kernel would too: the address's lifetime is the lease's). A NAK takes it
// off at once. An endpoint whose lease is lost keeps asking for a new one.

const (
	leaseBound = "bound"
	leaseLost  = "lost"
)

// lostRetry is how often an endpoint whose lease is lost asks again.
var lostRetry = 10 * time.Second

type leaseKey struct {
	network string
	k       epKey
	fam     int // 4: the DHCPv4 lease; 6: the DHCPv6 one
}

type leaseKeeper struct {
	mu      sync.Mutex
	timers  map[leaseKey]*time.Timer
	stopped bool
}

// scheduleLease sets the next step of ep's DHCPv4 lease for at.
func (m *Manager) scheduleLease(ep api.Endpoint, at time.Time) { m.schedule(ep, 4, at) }

// scheduleLease6 sets the next step of ep's DHCPv6 lease for at.
func (m *Manager) scheduleLease6(ep api.Endpoint, at time.Time) { m.schedule(ep, 6, at) }

func (m *Manager) schedule(ep api.Endpoint, fam int, at time.Time) {
	lk := leaseKey{ep.Network, keyOf(ep), fam}
	kp := &m.leases
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if kp.stopped {
		return
	}
	if kp.timers == nil {
		kp.timers = map[leaseKey]*time.Timer{}
	}
	if t := kp.timers[lk]; t != nil {
		t.Stop()
	}
	tend := m.tendLease
	if fam == 6 {
		tend = m.tendLease6
	}
	kp.timers[lk] = time.AfterFunc(max(time.Until(at), 0), func() { tend(lk) })
}

// unscheduleLease forgets ep's leases: they are released.
func (m *Manager) unscheduleLease(ep api.Endpoint) {
	kp := &m.leases
	kp.mu.Lock()
	defer kp.mu.Unlock()
	for _, fam := range []int{4, 6} {
		lk := leaseKey{ep.Network, keyOf(ep), fam}
		if t := kp.timers[lk]; t != nil {
			t.Stop()
			delete(kp.timers, lk)
		}
	}
}

// StopLeases stops keeping leases, at shutdown: the leases stay with
// their containers, and the next start renews them where they are due.
func (m *Manager) StopLeases() {
	kp := &m.leases
	kp.mu.Lock()
	defer kp.mu.Unlock()
	kp.stopped = true
	for _, t := range kp.timers {
		t.Stop()
	}
	kp.timers = nil
}

// scheduleStored sets the timers of the stored DHCP endpoints, at start.
// A renewal that fell due while underlayd was down happens now.
func (m *Manager) scheduleStored() {
	for _, st := range m.states() {
		if st.net.IPAMDriver != dhcpIPAM {
			continue
		}
		st.mu.Lock()
		eps := st.all()
		st.mu.Unlock()
		for _, ep := range eps {
			m.scheduleLeases(ep)
		}
	}
}

// scheduleLeases sets the timers of a new or loaded DHCP endpoint.
func (m *Manager) scheduleLeases(ep api.Endpoint) {
	if ep.DHCP == nil {
		return
	}
	m.scheduleLease(ep, nextStep(ep, time.Now()))
	if d := ep.DHCP.V6; d != nil && d.Mode == "dhcpv6" {
		at := time.Now()
		if l, _, ok := lease6Of(ep); ok && d.State == leaseBound {
			at = l.Renew
		}
		m.scheduleLease6(ep, at)
	}
}

// nextStep is when ep's lease needs tending next.
func nextStep(ep api.Endpoint, now time.Time) time.Time {
	l, ok := leaseOf(ep)
	if !ok || ep.DHCP.State == leaseLost {
		return now
	}
	return l.Renew
}

// tending finds what tending a lease needs: the network, the endpoint,
// its namespace (the caller closes it) and identity. ok is false when
// there is nothing to tend: the endpoint was released, or its container
// is gone, whose release comes with the event or the next reconciliation.
func (m *Manager) tending(lk leaseKey) (st *netState, ep api.Endpoint, ns *link.Netns, id dhcp.Identity, ok bool) {
	st, err := m.network(lk.network)
	if err != nil {
		return
	}
	st.mu.Lock()
	ep, found := st.get(lk.k)
	st.mu.Unlock()
	if !found || ep.DHCP == nil {
		return
	}
	if ns = m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0); ns == nil {
		return
	}
	if id, err = identityOf(ep); err != nil {
		ns.Close()
		m.log.Error("DHCP lease not kept", "network", ep.Network, "container", ep.Container(), "err", err)
		return
	}
	return st, ep, ns, id, true
}

// retryAt is when to try a renewal again that went unanswered: after half
// the time left in its phase (RFC 2131 4.4.5, RFC 8415 18.2.4), at least
// a second later, and no later than the phase's end.
func retryAt(phaseEnd time.Time) time.Time {
	next := time.Now().Add(max(time.Until(phaseEnd)/2, time.Second))
	if next.After(phaseEnd) {
		return phaseEnd
	}
	return next
}

// tendLease takes the due step of one endpoint's DHCPv4 lease.
func (m *Manager) tendLease(lk leaseKey) {
	st, ep, ns, id, ok := m.tending(lk)
	if !ok {
		return
	}
	defer ns.Close()
	timeout := dhcpTimeout(st.net)
	now := time.Now()
	l, bound := leaseOf(ep)
	if !bound || ep.DHCP.State == leaseLost {
		want := netip.Addr{}
		nl, err := m.leaser.Acquire(ns, ep.IfName, id, want, timeout)
		if err == nil {
			err = m.keepLease(st, ep, id, nl, true)
		}
		if err != nil {
			m.scheduleLease(ep, now.Add(lostRetry))
		}
		return
	}
	if !now.Before(l.Expires) {
		m.loseLease(st, ep, l, "the lease expired and no server renewed it")
		return
	}
	rebind := !now.Before(l.Rebind)
	phaseEnd := l.Rebind
	if rebind {
		phaseEnd = l.Expires
	}
	wait := min(max(time.Until(phaseEnd), 100*time.Millisecond), timeout)
	nl, err := m.leaser.Renew(ns, ep.IfName, id, l, rebind, wait)
	switch {
	case err == nil:
		if err := m.keepLease(st, ep, id, nl, false); err != nil {
			m.scheduleLease(ep, time.Now().Add(time.Second))
		}
	case errors.Is(err, dhcp.ErrNak):
		m.loseLease(st, ep, l, err.Error())
	default:
		m.log.Warn("DHCP renewal unanswered", "network", ep.Network, "container", ep.Container(),
			"address", l.Address, "rebinding", rebind, "expires", l.Expires.UTC().Format(time.RFC3339), "err", err)
		m.scheduleLease(ep, retryAt(phaseEnd))
	}
}

// keepLease puts a renewed (or, with fresh, a new) lease on ep's
// interface, stores it, and sets the next renewal.
func (m *Manager) keepLease(st *netState, ep api.Endpoint, id dhcp.Identity, l dhcp.Lease, fresh bool) error {
	ns := m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0)
	if ns == nil {
		return nil
	}
	defer ns.Close()
	var gw netip.Addr
	if ep.DHCP.Routed {
		gw = l.Router
	}
	if err := m.leaser.Leased(ns, ep.IfName, l, gw); errors.Is(err, link.ErrDefaultRouted) {
		// Another interface took the default route meanwhile: it keeps
		// it, and the lease stays without one.
		gw = netip.Addr{}
	} else if err != nil {
		m.log.Error("DHCP lease not put on the interface", "network", ep.Network, "container", ep.Container(), "err", err)
		return err
	}
	st.mu.Lock()
	cur, ok := st.get(keyOf(ep))
	if !ok || cur.NetnsInode != ep.NetnsInode {
		st.mu.Unlock()
		return nil // released meanwhile: its release names the old lease
	}
	setLease(&cur, id, ep.DHCP.Name, l, gw)
	err := m.store.PutEndpoint(cur)
	if err == nil {
		st.put(cur, m.intern)
	}
	st.mu.Unlock()
	if err != nil {
		m.log.Error("renewed DHCP lease not stored", "network", ep.Network, "container", ep.Container(), "err", err)
		return err
	}
	if fresh {
		m.log.Info("DHCP lease obtained again", "network", ep.Network, "container", ep.Container(), "address", l.Address)
	} else {
		m.log.Debug("DHCP lease renewed", "network", ep.Network, "container", ep.Container(), "address", l.Address,
			"expires", l.Expires.UTC().Format(time.RFC3339))
	}
	m.scheduleLease(cur, l.Renew)
	if fresh {
		m.shimRoutes(st, cur, false)
	}
	return nil
}

// loseLease takes a lease the server no longer grants off ep's interface,
// records it as lost with why, and sets the first try for a new one.
func (m *Manager) loseLease(st *netState, ep api.Endpoint, l dhcp.Lease, why string) {
	if ns := m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0); ns != nil {
		if err := m.leaser.Unlease(ns, ep.IfName, l.Address); err != nil {
			m.log.Error("lost DHCP address not removed", "network", ep.Network, "container", ep.Container(), "err", err)
		}
		ns.Close()
	}
	m.log.Warn("DHCP lease lost: address removed from the container", "network", ep.Network,
		"container", ep.Container(), "address", l.Address, "reason", why)
	m.emitLeaseLost(ep, l.Address.String(), why)
	st.mu.Lock()
	cur, ok := st.get(keyOf(ep))
	if ok && cur.NetnsInode == ep.NetnsInode && cur.DHCP != nil {
		d := *cur.DHCP
		d.State, d.Reason = leaseLost, why
		cur.DHCP, cur.Addresses, cur.Gateways = &d, v6Of(cur.Addresses), nil
		if err := m.store.PutEndpoint(cur); err == nil {
			st.put(cur, m.intern)
		}
	}
	st.mu.Unlock()
	m.shimRoutes(st, ep, true)
	m.scheduleLease(ep, time.Now().Add(lostRetry))
}

// tendLease6 takes the due step of one endpoint's DHCPv6 lease, as
// tendLease does for DHCPv4.
func (m *Manager) tendLease6(lk leaseKey) {
	st, ep, ns, id, ok := m.tending(lk)
	if !ok || ep.DHCP.V6 == nil {
		if ok {
			ns.Close()
		}
		return
	}
	defer ns.Close()
	timeout := dhcpTimeout(st.net)
	l, addr, bound := lease6Of(ep)
	if !bound || ep.DHCP.V6.State == leaseLost {
		nl, err := m.leaser.Acquire6(ns, ep.IfName, id, timeout)
		if err == nil {
			err = m.keepLease6(st, ns, ep, nl)
		}
		if err != nil {
			m.scheduleLease6(ep, time.Now().Add(lostRetry))
		}
		return
	}
	if !time.Now().Before(l.Expires) {
		m.loseLease6(st, ns, ep, addr, "the DHCPv6 lease expired and no server renewed it")
		return
	}
	rebind := !time.Now().Before(l.Rebind)
	phaseEnd := l.Rebind
	if rebind {
		phaseEnd = l.Expires
	}
	wait := min(max(time.Until(phaseEnd), 100*time.Millisecond), timeout)
	nl, err := m.leaser.Renew6(ns, ep.IfName, id, l, rebind, wait)
	switch {
	case err == nil:
		if err := m.keepLease6(st, ns, ep, nl); err != nil {
			m.scheduleLease6(ep, time.Now().Add(time.Second))
		}
	case errors.Is(err, dhcp.ErrNak):
		m.loseLease6(st, ns, ep, addr, err.Error())
	default:
		m.log.Warn("DHCPv6 renewal unanswered", "network", ep.Network, "container", ep.Container(),
			"address", l.Address, "rebinding", rebind, "expires", l.Expires.UTC().Format(time.RFC3339), "err", err)
		m.scheduleLease6(ep, retryAt(phaseEnd))
	}
}

// keepLease6 puts a DHCPv6 lease on ep's interface, stores it and sets
// its next renewal.
func (m *Manager) keepLease6(st *netState, ns *link.Netns, ep api.Endpoint, l dhcp.Lease6) error {
	addr := v6Prefix(st.addrs.Pools(), l.Address)
	if err := m.leaser.Leased6(ns, ep.IfName, addr, l); err != nil {
		m.log.Error("DHCPv6 lease not put on the interface", "network", ep.Network, "container", ep.Container(), "err", err)
		return err
	}
	st.mu.Lock()
	cur, ok := st.get(keyOf(ep))
	if !ok || cur.NetnsInode != ep.NetnsInode || cur.DHCP == nil {
		st.mu.Unlock()
		return nil
	}
	setLease6(&cur, "dhcpv6", addr, l)
	err := m.store.PutEndpoint(cur)
	if err == nil {
		st.put(cur, m.intern)
	}
	st.mu.Unlock()
	if err != nil {
		m.log.Error("DHCPv6 lease not stored", "network", ep.Network, "container", ep.Container(), "err", err)
		return err
	}
	m.scheduleLease6(cur, l.Renew)
	return nil
}

// loseLease6 takes a DHCPv6 address the server no longer grants off ep's
// interface and records why.
func (m *Manager) loseLease6(st *netState, ns *link.Netns, ep api.Endpoint, addr netip.Prefix, why string) {
	if err := m.leaser.Unlease(ns, ep.IfName, addr); err != nil {
		m.log.Error("lost DHCPv6 address not removed", "network", ep.Network, "container", ep.Container(), "err", err)
	}
	m.log.Warn("DHCPv6 lease lost: address removed from the container", "network", ep.Network,
		"container", ep.Container(), "address", addr, "reason", why)
	m.emitLeaseLost(ep, addr.String(), why)
	st.mu.Lock()
	cur, ok := st.get(keyOf(ep))
	if ok && cur.NetnsInode == ep.NetnsInode && cur.DHCP != nil && cur.DHCP.V6 != nil {
		d := *cur.DHCP
		v6 := *d.V6
		v6.State, v6.Reason = leaseLost, why
		d.V6 = &v6
		cur.DHCP = &d
		var v4 []string
		for _, a := range cur.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
				v4 = append(v4, a)
			}
		}
		cur.Addresses = v4
		if err := m.store.PutEndpoint(cur); err == nil {
			st.put(cur, m.intern)
		}
	}
	st.mu.Unlock()
	m.scheduleLease6(ep, time.Now().Add(lostRetry))
}
