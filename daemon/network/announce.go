package network

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// announceInterval is the time between an endpoint's two gratuitous ARPs
// (ANNOUNCE_INTERVAL of RFC 5227): the first goes out of the parent as the
// attach commits, the second from inside the container (link/announce.go).
const announceInterval = 2 * time.Second

// announcer keeps the second announcements to come, by endpoint. Its own
// WaitGroup counts those being sent or closed: their timers fire at any
// time, so Manager.Wait's group, which may be waited on meanwhile, cannot
// count them. Only StopAnnouncements waits for it, once no more can start.
type announcer struct {
	mu      sync.Mutex
	pending map[announceKey]*link.Announcement
	stopped bool
	busy    sync.WaitGroup
}

type announceKey struct {
	network string
	ep      epKey
}

// announce announces a committed endpoint's IPv4 addresses: out of its
// parent now, and with a, if any, from inside the container after
// announceInterval, unless the endpoint is released first.
func (m *Manager) announce(n api.Network, ep api.Endpoint, parent int, a *link.Announcement) {
	var v4 []netip.Addr
	for _, addr := range addrsOf(ep) {
		if addr.Is4() {
			v4 = append(v4, addr)
		}
	}
	mac, err := net.ParseMAC(ep.MAC)
	if len(v4) == 0 || err != nil || !arpCapable(n) {
		if a != nil {
			m.inBackground(a.Close)
		}
		return
	}
	if err := m.kernel.Announce(parent, mac, v4); err != nil {
		m.log.Warn("addresses not announced out of the parent", "network", ep.Network, "container", ep.Container(),
			"parent", ep.Parent, "err", err)
	}
	if a == nil {
		return
	}
	an := &m.announcer
	k := announceKey{ep.Network, keyOf(ep)}
	an.mu.Lock()
	defer an.mu.Unlock()
	if an.stopped {
		m.inBackground(a.Close)
		return
	}
	if an.pending == nil {
		an.pending = map[announceKey]*link.Announcement{}
	}
	if old := an.pending[k]; old != nil {
		an.busy.Add(1)
		go func() { defer an.busy.Done(); old.Close() }()
	}
	an.pending[k] = a
	time.AfterFunc(announceInterval, func() {
		if an.take(k, a) == nil {
			return // released, or stopped, meanwhile
		}
		defer an.busy.Done()
		if err := a.Send(); err != nil {
			m.log.Warn("addresses not announced from the container", "network", ep.Network,
				"container", ep.Container(), "ifname", ep.IfName, "err", err)
		}
	})
}

// take removes and returns k's pending announcement if it is still a (any,
// if a is nil) and counts it busy; the caller sends or closes it, then
// calls busy.Done. It returns nil if there is none.
func (an *announcer) take(k announceKey, a *link.Announcement) *link.Announcement {
	an.mu.Lock()
	defer an.mu.Unlock()
	p := an.pending[k]
	if p == nil || a != nil && p != a {
		return nil
	}
	delete(an.pending, k)
	an.busy.Add(1)
	return p
}

// arpCapable reports whether n's interfaces speak ARP: an ipvlan's in l3
// or l3s mode do not.
func arpCapable(n api.Network) bool { return n.Driver != "ipvlan" || n.Mode == "l2" }

// unannounce drops the second announcement of a released endpoint: its
// address may go to another container at once.
func (m *Manager) unannounce(ep api.Endpoint) {
	an := &m.announcer
	if a := an.take(announceKey{ep.Network, keyOf(ep)}, nil); a != nil {
		go func() { defer an.busy.Done(); a.Close() }()
	}
}

// StopAnnouncements drops the second announcements still to come and
// waits for those being sent, at shutdown.
func (m *Manager) StopAnnouncements() {
	an := &m.announcer
	an.mu.Lock()
	an.stopped = true
	for k, a := range an.pending {
		delete(an.pending, k)
		an.busy.Add(1)
		go func() { defer an.busy.Done(); a.Close() }()
	}
	an.mu.Unlock()
	an.busy.Wait()
}
