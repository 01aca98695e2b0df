package network

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
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
}

type leaseKeeper struct {
	mu      sync.Mutex
	timers  map[leaseKey]*time.Timer
	stopped bool
}

// scheduleLease sets the next step of ep's lease for at.
func (m *Manager) scheduleLease(ep api.Endpoint, at time.Time) {
	lk := leaseKey{ep.Network, keyOf(ep)}
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
	kp.timers[lk] = time.AfterFunc(max(time.Until(at), 0), func() { m.tendLease(lk) })
}

// unscheduleLease forgets ep's lease: it is released.
func (m *Manager) unscheduleLease(ep api.Endpoint) {
	lk := leaseKey{ep.Network, keyOf(ep)}
	kp := &m.leases
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if t := kp.timers[lk]; t != nil {
		t.Stop()
		delete(kp.timers, lk)
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
			m.scheduleLease(ep, nextStep(ep, time.Now()))
		}
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

// tendLease takes the due step of one endpoint's lease.
func (m *Manager) tendLease(lk leaseKey) {
	st, err := m.network(lk.network)
	if err != nil {
		return
	}
	st.mu.Lock()
	ep, ok := st.get(lk.k)
	st.mu.Unlock()
	if !ok || ep.DHCP == nil {
		return
	}
	ns := m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0)
	if ns == nil {
		// The container is gone; its release comes with the event or
		// the next reconciliation.
		return
	}
	defer ns.Close()
	id, err := identityOf(ep)
	if err != nil {
		m.log.Error("DHCP lease not kept", "network", ep.Network, "container", containerName(ep), "err", err)
		return
	}
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
		// RFC 2131 4.4.5: try again after half the time left in this
		// phase, and take the address off when the lease runs out.
		next := time.Now().Add(max(time.Until(phaseEnd)/2, time.Second))
		if rebind && next.After(l.Expires) || !rebind && next.After(l.Rebind) {
			next = phaseEnd
		}
		m.log.Warn("DHCP renewal unanswered", "network", ep.Network, "container", containerName(ep),
			"address", l.Address, "rebinding", rebind, "expires", l.Expires.UTC().Format(time.RFC3339), "err", err)
		m.scheduleLease(ep, next)
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
	if err := m.leaser.Leased(ns, ep.IfName, l, gw); err != nil {
		m.log.Error("DHCP lease not put on the interface", "network", ep.Network, "container", containerName(ep), "err", err)
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
		m.log.Error("renewed DHCP lease not stored", "network", ep.Network, "container", containerName(ep), "err", err)
		return err
	}
	if fresh {
		m.log.Info("DHCP lease obtained again", "network", ep.Network, "container", containerName(ep), "address", l.Address)
	} else {
		m.log.Debug("DHCP lease renewed", "network", ep.Network, "container", containerName(ep), "address", l.Address,
			"expires", l.Expires.UTC().Format(time.RFC3339))
	}
	m.scheduleLease(cur, l.Renew)
	return nil
}

// loseLease takes a lease the server no longer grants off ep's interface,
// records it as lost with why, and sets the first try for a new one.
func (m *Manager) loseLease(st *netState, ep api.Endpoint, l dhcp.Lease, why string) {
	if ns := m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0); ns != nil {
		if err := m.leaser.Unlease(ns, ep.IfName, l.Address); err != nil {
			m.log.Error("lost DHCP address not removed", "network", ep.Network, "container", containerName(ep), "err", err)
		}
		ns.Close()
	}
	m.log.Warn("DHCP lease lost: address removed from the container", "network", ep.Network,
		"container", containerName(ep), "address", l.Address, "reason", why)
	st.mu.Lock()
	cur, ok := st.get(keyOf(ep))
	if ok && cur.NetnsInode == ep.NetnsInode && cur.DHCP != nil {
		d := *cur.DHCP
		d.State, d.Reason = leaseLost, why
		cur.DHCP, cur.Addresses, cur.Gateways = &d, nil, nil
		if err := m.store.PutEndpoint(cur); err == nil {
			st.put(cur, m.intern)
		}
	}
	st.mu.Unlock()
	m.scheduleLease(ep, time.Now().Add(lostRetry))
}
