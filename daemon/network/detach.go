package network

import (
	"strings"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Detach releases every endpoint of a container. It is idempotent: a
// container with no endpoints, or whose namespace is gone, is success.
func (m *Manager) Detach(req api.DetachRequest) (api.DetachResponse, error) {
	return m.detach(req, api.ReleasePoststop)
}

// detach is Detach on behalf of path (api.Release*).
func (m *Manager) detach(req api.DetachRequest, path string) (api.DetachResponse, error) {
	if err := validID("container id", req.ContainerID); err != nil {
		return api.DetachResponse{}, err
	}
	key := api.Endpoint{Namespace: req.Namespace, ContainerID: req.ContainerID}.Container()
	m.containers.Lock(key)
	defer m.containers.Unlock(key)
	t := m.timer()
	eps := m.endpointsOf(req.Namespace, req.ContainerID)
	resp := api.DetachResponse{Released: []api.Endpoint{}}
	if len(eps) == 0 {
		return resp, nil
	}
	// All interfaces of a container share its namespace; find it once.
	ns := m.kernel.FindNetns(eps[0].NetnsInode, eps[0].NetnsCookie, req.Pid)
	if ns != nil {
		defer ns.Close()
	}
	t.Step("find netns")
	for i := len(eps) - 1; i >= 0; i-- {
		if err := m.detachEndpoint(eps[i], ns, false, path); err != nil {
			return resp, err
		}
		resp.Released = append(resp.Released, eps[i])
	}
	return resp, nil
}

// detachEndpoint releases one endpoint under its network's lock. ns is the
// container's namespace if it still exists, else nil. With now its
// interface is deleted before the call returns: an attach that fails
// takes back what it made before the hook says so. path says what asked
// (api.Release*), for the events and metrics.
func (m *Manager) detachEndpoint(ep api.Endpoint, ns *link.Netns, now bool, path string) error {
	start := time.Now()
	st, err := m.network(ep.Network)
	if err != nil {
		return nil // network gone: nothing left to release
	}
	st.mu.Lock()
	cur, ok := st.get(keyOf(ep))
	if !ok || cur.NetnsInode != ep.NetnsInode {
		st.mu.Unlock()
		return nil // already released, or replaced by a newer attach
	}
	err = m.releaseAllLocked(st, []release{{ep: cur, ns: ns, now: now, path: path, start: start}})
	st.mu.Unlock()
	if err == nil {
		m.releaseParent(ep.Parent)
	}
	return err
}

// releaseLocked releases ep: see releaseAllLocked.
func (m *Manager) releaseLocked(st *netState, ep api.Endpoint, ns *link.Netns, path string) error {
	return m.releaseAllLocked(st, []release{{ep: ep, ns: ns, path: path, start: time.Now()}})
}

// release is an endpoint to release and its container's namespace, nil
// when that is gone (and the interface with it). now deletes the
// interface before the release returns. path is what asked for it
// (api.Release*) and start when, for the events and metrics.
type release struct {
	ep    api.Endpoint
	ns    *link.Netns
	now   bool
	path  string
	start time.Time
}

// retiring is an interface stripped of its addresses, waiting for deletion.
type retiring struct {
	intent api.Endpoint // the endpoint, with a TempName that keys the intent
	ns     *link.Netns
	now    bool // delete before answering
	del    *deletion
}

// releaseAllLocked releases endpoints of st, whose lock the caller holds
// (and calls releaseParent after unlocking): their records and leases go
// in one commit, and each interface still in its namespace loses its
// addresses before the lock is dropped, so they are free for the next
// container at once. Deleting those interfaces, which makes the kernel
// wait 10-20 ms each, happens in the background; an intent recorded before
// the commit lets a restart finish it after a crash.
func (m *Manager) releaseAllLocked(st *netState, rs []release) error {
	var intents []retiring
	endAll := func(err error) {
		for _, r := range intents {
			m.store.EndIntent(r.intent)
		}
		for _, r := range rs {
			m.emitDetach(st.net, r.ep, r.path, r.start, err)
		}
	}
	eps := make([]api.Endpoint, 0, len(rs))
	for _, r := range rs {
		eps = append(eps, r.ep)
		if r.ns == nil || !r.ns.Same(r.ep.NetnsInode, r.ep.NetnsCookie) {
			continue
		}
		// The temporary name only keys the intent: the interface of a
		// committed endpoint is under IfName and stays there.
		in := r.ep
		var err error
		if in.TempName, err = link.NewTempName(); err == nil {
			err = m.store.BeginIntent(in)
		}
		if err != nil {
			endAll(err)
			return err
		}
		intents = append(intents, retiring{intent: in, ns: r.ns, now: r.now})
	}
	t := m.timer()
	if err := m.store.DeleteEndpoints(eps); err != nil {
		endAll(err)
		return err
	}
	t.Step("commit")
	// A passthru parent takes one slave at a time: the next container
	// cannot have it while this one still exists.
	passthru := st.net.Mode == "passthru"
	var later []retiring
	for _, r := range intents {
		if r, ok := m.retire(r, passthru || r.now); ok {
			later = append(later, r)
		}
	}
	t.Step("strip")
	for _, r := range rs {
		m.forgetLocked(st, r.ep)
		m.log.Info("detached", "network", r.ep.Network, "container", r.ep.Container(), "ifname", r.ep.IfName,
			"addresses", strings.Join(r.ep.Addresses, ","), "path", r.path, "took", time.Since(r.start).Round(time.Microsecond))
		m.emitDetach(st.net, r.ep, r.path, r.start, nil)
	}
	m.deleteLater(later)
	return nil
}

// retire strips r's interface of its addresses and returns it, with a
// namespace handle of its own, for the deletion still to come. It returns false when
// nothing is left for later: no interface was found, or it was deleted at
// once (now is true, or it could not be stripped). An interface that
// cannot be deleted either keeps its intent, for the next start.
func (m *Manager) retire(r retiring, now bool) (retiring, bool) {
	ep := r.intent
	if !now {
		found, err := m.kernel.Strip(r.ns, ep.IfName)
		if err == nil && !found {
			m.store.EndIntent(ep)
			return r, false
		}
		if err == nil {
			if ns, err := r.ns.Dup(); err == nil {
				r.ns = ns
				r.del = m.deletions.add(ep.NetnsInode, ep.Parent)
				return r, true
			}
		}
		if err != nil {
			m.log.Warn("addresses not stripped, deleting the interface now", "network", ep.Network, "container", ep.Container(), "ifname", ep.IfName, "err", err)
		}
	}
	if err := m.kernel.DeleteSlave(r.ns, ep.IfName); err != nil {
		m.log.Error("interface not deleted", "network", ep.Network, "container", ep.Container(), "ifname", ep.IfName, "err", err)
		return r, false
	}
	m.store.EndIntent(ep)
	return r, false
}

// deleteLater deletes stripped interfaces in the background and forgets
// their intents. Wait waits for it.
func (m *Manager) deleteLater(rs []retiring) {
	if len(rs) == 0 {
		return
	}
	m.inBackground(func() {
		for _, r := range rs {
			ep := r.intent
			if err := m.kernel.DeleteSlave(r.ns, ep.IfName); err != nil {
				m.log.Warn("interface not deleted", "network", ep.Network, "container", ep.Container(), "ifname", ep.IfName, "err", err)
			} else {
				m.store.EndIntent(ep)
			}
			r.ns.Close()
			m.deletions.done(r.del)
		}
	})
}

// Wait waits for the background work: interfaces being deleted after a
// detach, announcements, DHCP releases, name servers restarted.
func (m *Manager) Wait() { m.background.Wait() }

// deletions tracks the interfaces being deleted in the background. Until
// one is gone it keeps its ethN name in its namespace and its MAC on its
// parent, so an attach into that namespace, or one that asks for a fixed
// MAC on that parent, waits for it.
type deletions struct {
	mu  sync.Mutex
	all map[*deletion]struct{}
}

type deletion struct {
	inode  uint64 // the container's namespace
	parent string
	gone   chan struct{}
}

func (ds *deletions) add(inode uint64, parent string) *deletion {
	d := &deletion{inode: inode, parent: parent, gone: make(chan struct{})}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.all == nil {
		ds.all = map[*deletion]struct{}{}
	}
	ds.all[d] = struct{}{}
	return d
}

func (ds *deletions) done(d *deletion) {
	ds.mu.Lock()
	delete(ds.all, d)
	ds.mu.Unlock()
	close(d.gone)
}

// wait waits for the deletions in namespace inode and, if fixedMAC, for
// those on parent too.
func (ds *deletions) wait(inode uint64, parent string, fixedMAC bool) {
	ds.mu.Lock()
	var gone []chan struct{}
	for d := range ds.all {
		if d.inode == inode || fixedMAC && d.parent == parent {
			gone = append(gone, d.gone)
		}
	}
	ds.mu.Unlock()
	for _, c := range gone {
		<-c
	}
}

// forgetLocked drops a released endpoint from memory once the store no
// longer holds it. The caller holds st.mu.
func (m *Manager) forgetLocked(st *netState, ep api.Endpoint) {
	m.unannounce(ep)
	for _, a := range addrsOf(ep) {
		st.addrs.Release(ownerOf(ep), a)
	}
	st.remember(keyOf(ep), addrsOf(ep))
	st.remove(keyOf(ep))
	m.shimRoutes(st, ep, true)
	if dnsOn(st.net) {
		m.dnsRef(ep.NetnsInode, -1)
	}
	if ep.DHCP != nil {
		m.unscheduleLease(ep)
		if id, err := identityOf(ep); err == nil {
			if l, ok := leaseOf(ep); ok && ep.DHCP.State == leaseBound {
				m.releaseLease(ep.Parent, id, l)
			}
			if l, _, ok := lease6Of(ep); ok && ep.DHCP.V6.State == leaseBound {
				m.releaseLease6(ep.Parent, id, l)
			}
		}
	}
	m.addRef(ep.Parent, -1)
}
