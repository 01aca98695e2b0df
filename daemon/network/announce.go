package network

import (
	"net"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// announceInterval is the time between an endpoint's two gratuitous ARPs
// (ANNOUNCE_INTERVAL of RFC 5227): the first goes out of the parent as the
// attach commits, the second from inside the container (link/announce.go).
const announceInterval = 2 * time.Second

// announcer keeps the second announcements to come, by endpoint. Closing
// an announcement goes through Manager.inBackground, like all background
// work of a request; sending one starts from a timer, which may fire while
// Manager.Wait is waited on, so the sends have a WaitGroup of their own
// that only StopAnnouncements waits for, once no more can start.
type announcer struct {
	mu      sync.Mutex
	pending map[announceKey]*link.Announcement
	stopped bool
	sending sync.WaitGroup
}

type announceKey struct {
	network string
	ep      epKey
}

// announce announces a committed endpoint's IPv4 addresses: out of its
// parent now, and with a, if any, from inside the container after
// announceInterval, unless the endpoint is released first. Interfaces
// without ARP get neither (attachOne asks CreateSlave for no a then).
func (m *Manager) announce(n api.Network, ep api.Endpoint, parent int, a *link.Announcement) {
	if !arpCapable(n) {
		return
	}
	if mac, err := net.ParseMAC(ep.MAC); err == nil {
		if err := m.kernel.Announce(parent, mac, addrsOf(ep)); err != nil {
			m.log.Warn("addresses not announced out of the parent", "network", ep.Network, "container", ep.Container(),
				"parent", ep.Parent, "err", err)
		}
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
	if old := an.pending[k]; old != nil {
		m.inBackground(old.Close)
	}
	if an.pending == nil {
		an.pending = map[announceKey]*link.Announcement{}
	}
	an.pending[k] = a
	time.AfterFunc(announceInterval, func() {
		an.mu.Lock()
		if an.pending[k] != a { // released, replaced or stopped meanwhile
			an.mu.Unlock()
			return
		}
		delete(an.pending, k)
		an.sending.Add(1)
		an.mu.Unlock()
		defer an.sending.Done()
		if err := a.Send(); err != nil {
			m.log.Warn("addresses not announced from the container", "network", ep.Network,
				"container", ep.Container(), "ifname", ep.IfName, "err", err)
		}
	})
}

// arpCapable reports whether n's interfaces speak ARP: an ipvlan's in l3
// or l3s mode do not (the kernel marks them NOARP).
func arpCapable(n api.Network) bool { return n.Driver != "ipvlan" || n.Mode == "l2" }

// unannounce drops the second announcement of a released endpoint: its
// address may go to another container at once.
func (m *Manager) unannounce(ep api.Endpoint) {
	an := &m.announcer
	k := announceKey{ep.Network, keyOf(ep)}
	an.mu.Lock()
	a := an.pending[k]
	delete(an.pending, k)
	an.mu.Unlock()
	if a != nil {
		m.inBackground(a.Close)
	}
}

// StopAnnouncements drops the second announcements still to come and
// waits for those being sent, at shutdown (before Wait).
func (m *Manager) StopAnnouncements() {
	an := &m.announcer
	an.mu.Lock()
	an.stopped = true
	for k, a := range an.pending {
		delete(an.pending, k)
		m.inBackground(a.Close)
	}
	an.mu.Unlock()
	an.sending.Wait()
}
