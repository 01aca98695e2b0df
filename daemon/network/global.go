package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// Scopes of a network, as Docker names them.
const (
	scopeLocal  = "local"
	scopeGlobal = "global"
)

// Global is where global networks live: a store every host shares (etcd),
// with each network's shared addresses. Records are the networks' JSON as
// stored there; an allocation compares its network's record, so a network
// being removed takes no new lease.
type Global interface {
	// Networks leaves out networks being removed.
	Networks() (map[string][]byte, error)
	// NetworksCreated is Networks, and by name in which order the
	// networks were made (a revision of the store: smaller is earlier).
	NetworksCreated() (map[string][]byte, map[string]int64, error)
	CreateNetwork(name string, rec []byte) error
	// RemoveNetwork with rec nil finishes a removal that stopped half-way
	// (etcd timed out, an underlayd died), or restores the network if a
	// host has endpoints on it; ErrNotFound if name is not being removed.
	RemoveNetwork(name string, rec []byte) error
	Addresses(name string, rec []byte, pools []ipam.Pool) (AddressDriver, error)
	Hosts() ([]api.Host, error)
	// Reclaim frees a gone host's addresses that nobody answers for.
	Reclaim(host string, answering func(network string, addrs []netip.Addr) (map[netip.Addr]bool, error)) (freed, kept int, err error)
}

// probeWait is how long a reclaim waits for answers to its probes.
const probeWait = time.Second

// ReclaimHost frees the addresses of a gone host that nobody on the wire
// answers for, probing each global network's addresses out of its parent
// on this host.
func (m *Manager) ReclaimHost(name string) (api.ReclaimResponse, error) {
	if m.global == nil {
		return api.ReclaimResponse{}, invalid("this underlayd has no cluster: hosts are reclaimed with --store etcd://HOST:PORT")
	}
	freed, kept, err := m.global.Reclaim(name, func(network string, addrs []netip.Addr) (map[netip.Addr]bool, error) {
		st, err := m.lookup(network)
		if err != nil {
			return nil, err
		}
		return m.kernel.Answering(st.net.Parent, addrs, probeWait)
	})
	return api.ReclaimResponse{Host: name, Freed: freed, Kept: kept}, err
}

// reclaimGone reclaims the addresses of every host gone for longer than
// m.reclaimAfter (0: never by itself).
func (m *Manager) reclaimGone() {
	if m.global == nil || m.reclaimAfter <= 0 {
		return
	}
	hosts, err := m.global.Hosts()
	if err != nil {
		m.log.Warn("hosts not listed for reclaim", "err", err)
		return
	}
	for _, h := range hosts {
		seen, err := time.Parse(time.RFC3339, h.LastSeen)
		if h.Alive || h.Endpoints == 0 || err != nil || time.Since(seen) < m.reclaimAfter {
			continue
		}
		r, err := m.ReclaimHost(h.Name)
		if err != nil {
			m.log.Warn("gone host not reclaimed", "host", h.Name, "err", err)
			continue
		}
		m.log.Info("gone host reclaimed", "host", h.Name, "last_seen", h.LastSeen, "freed", r.Freed, "kept", r.Kept)
	}
}

// Hosts lists the hosts of the cluster.
func (m *Manager) Hosts() ([]api.Host, error) {
	if m.global == nil {
		return nil, invalid("this underlayd has no cluster: hosts are listed with --store etcd://HOST:PORT")
	}
	return m.global.Hosts()
}

// Option configures a Manager.
type Option func(*Manager)

// WithGlobal gives the manager global networks in g. parents maps a global
// network's name to the parent it has on this host, where its NICs are
// named otherwise than the network's record says (ens3.30 here, eth0.30
// elsewhere). A host gone for reclaimAfter has its addresses reclaimed by
// the next reconciliation (0: only by ReclaimHost).
func WithGlobal(g Global, parents map[string]string, reclaimAfter time.Duration) Option {
	return func(m *Manager) { m.global, m.parentOf, m.reclaimAfter = g, parents, reclaimAfter }
}

// recordOf is a global network's record in the shared store: what every
// host agrees on, without this host's parent override.
func recordOf(n api.Network) ([]byte, error) {
	return json.Marshal(n)
}

// loadGlobal brings global networks from the shared store into memory
// and this host's store, which keeps a copy of each so that its endpoints
// have a network to belong to. A network gone from the shared store is
// dropped here too, unless this host still has endpoints on it. The caller
// holds createMu, or is New.
func (m *Manager) loadGlobal() error {
	recs, err := m.global.Networks()
	if err != nil {
		return err
	}
	for name, rec := range recs {
		if st, err := m.network(name); err == nil {
			if st.net.Scope != scopeGlobal {
				m.log.Error("global network hidden by a local network of the same name", "network", name)
				continue
			}
			// Removed and made again on another host: this copy goes,
			// unless this host still has endpoints on the old one.
			if bytes.Equal(st.rec, rec) || !m.dropGlobal(st, "global network made again elsewhere") {
				continue
			}
		}
		var n api.Network
		if err := json.Unmarshal(rec, &n); err != nil || n.Name != name {
			m.log.Error("global network record unreadable", "network", name, "err", err)
			continue
		}
		if err := m.addGlobal(n, rec, true); err != nil {
			m.log.Error("global network not loaded", "network", name, "err", err)
		}
	}
	for _, st := range m.states() {
		if st.net.Scope != scopeGlobal {
			continue
		}
		if _, ok := recs[st.net.Name]; ok {
			continue
		}
		m.dropGlobal(st, "global network removed elsewhere")
	}
	return nil
}

// dropGlobal forgets this host's copy of a global network the shared store
// no longer has as it was, unless this host has endpoints on it (they keep
// it until they go); it says whether it did.
func (m *Manager) dropGlobal(st *netState, why string) bool {
	st.mu.Lock()
	busy := len(st.eps) > 0 || st.pending > 0
	if !busy {
		st.removed = true
	}
	st.mu.Unlock()
	if busy {
		m.log.Warn(why+": this host still has endpoints on its copy", "network", st.net.Name)
		return false
	}
	_ = m.store.DeleteNetwork(st.net.Name)
	m.mu.Lock()
	delete(m.nets, st.net.Name)
	m.mu.Unlock()
	m.log.Info(why, "network", st.net.Name)
	return true
}

// addGlobal makes a global network known on this host; copy stores it in
// this host's store too.
func (m *Manager) addGlobal(n api.Network, rec []byte, copy bool) error {
	if p, ok := m.parentOf[n.Name]; ok {
		n.Parent = p
	}
	pools, err := poolsOf(n)
	if err != nil {
		return err
	}
	addrs, err := m.global.Addresses(n.Name, rec, pools)
	if err != nil {
		return err
	}
	st := &netState{net: n, addrs: addrs, rec: rec, eps: map[epKey]epRecord{}, rare: map[epKey]epRare{}}
	if copy {
		if err := m.store.CreateNetwork(n); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	m.mu.Lock()
	m.nets[n.Name] = st
	m.mu.Unlock()
	return nil
}

// createGlobal stores a validated network in the shared store, then on
// this host.
func (m *Manager) createGlobal(n api.Network, pools []ipam.Pool) error {
	rec, err := recordOf(n)
	if err != nil {
		return err
	}
	if err := m.global.CreateNetwork(n.Name, rec); err != nil {
		return err
	}
	// Another host may have made a network that breaks the parent's rules
	// with this one at the same moment: both passed their checks before
	// either was stored. The later one (by the store's order) backs out,
	// so exactly one stays whichever host looks first.
	if err := m.firstOnParent(n, pools); err != nil {
		if rerr := m.global.RemoveNetwork(n.Name, rec); rerr != nil {
			m.log.Error("global network left in the shared store", "network", n.Name, "err", rerr)
		}
		return err
	}
	if err := m.addGlobal(n, rec, true); err != nil {
		if rerr := m.global.RemoveNetwork(n.Name, rec); rerr != nil {
			m.log.Error("global network left in the shared store", "network", n.Name, "err", rerr)
		}
		return err
	}
	return nil
}

// firstOnParent checks global network n, just stored, against the global
// networks the store had made before it, as this host has their parents.
func (m *Manager) firstOnParent(n api.Network, pools []ipam.Pool) error {
	recs, created, err := m.global.NetworksCreated()
	if err != nil {
		return err
	}
	mine, ok := created[n.Name]
	if !ok {
		return fmt.Errorf("global network %s: gone from the shared store as it was made: %w", n.Name, ErrNotFound)
	}
	var before []api.Network
	for name, rec := range recs {
		rev, ok := created[name]
		if name == n.Name || !ok || rev > mine {
			continue
		}
		var o api.Network
		if json.Unmarshal(rec, &o) != nil {
			continue
		}
		if p, ok := m.parentOf[o.Name]; ok {
			o.Parent = p
		}
		before = append(before, o)
	}
	if p, ok := m.parentOf[n.Name]; ok {
		n.Parent = p
	}
	if err := parentRules(n, pools, before); err != nil {
		return fmt.Errorf("%w (made on another host at the same moment as this one)", err)
	}
	return nil
}

// finishRemove settles the removal of global network name that another
// remove began and did not finish: the shared store hides such a network,
// so only its name is left to go by. notFound is the answer when name is
// not being removed. The caller holds createMu.
func (m *Manager) finishRemove(name string, notFound error) error {
	if m.global == nil {
		return notFound
	}
	if err := m.global.RemoveNetwork(name, nil); err != nil {
		if errors.Is(err, ErrNotFound) {
			return notFound
		}
		return err
	}
	m.log.Info("network removed: an interrupted removal finished", "network", name)
	m.emit(api.Event{Type: api.EventNetworkRemove, Network: name})
	return nil
}

// globalLookup finds a global network that another host created since
// this one last looked.
func (m *Manager) globalLookup(name string) (*netState, error) {
	if m.global == nil {
		return nil, inNetwork(name, ErrNotFound)
	}
	m.createMu.Lock()
	defer m.createMu.Unlock()
	if st, err := m.network(name); err == nil {
		return st, nil
	}
	if err := m.loadGlobal(); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	return m.network(name)
}
