package network

import (
	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Detach releases every endpoint of a container. It is idempotent: a
// container with no endpoints, or whose namespace is gone, is success.
func (m *Manager) Detach(req api.DetachRequest) (api.DetachResponse, error) {
	if err := validID("container id", req.ContainerID); err != nil {
		return api.DetachResponse{}, err
	}
	key := containerName(api.Endpoint{Namespace: req.Namespace, ContainerID: req.ContainerID})
	m.containers.Lock(key)
	defer m.containers.Unlock(key)
	t := m.timer()
	eps := m.endpointsOf(req.Namespace, req.ContainerID)
	resp := api.DetachResponse{Released: []api.Endpoint{}}
	if len(eps) == 0 {
		return resp, nil
	}
	// All interfaces of a container share its namespace; find it once.
	ns := link.FindNetns(eps[0].NetnsInode, eps[0].NetnsCookie, req.Pid)
	if ns != nil {
		defer ns.Close()
	}
	t.Step("find netns")
	for i := len(eps) - 1; i >= 0; i-- {
		if err := m.detachEndpoint(eps[i], ns); err != nil {
			return resp, err
		}
		resp.Released = append(resp.Released, eps[i])
	}
	return resp, nil
}

// detachEndpoint releases one endpoint under its network's lock. ns is the
// container's namespace if it still exists, else nil.
func (m *Manager) detachEndpoint(ep api.Endpoint, ns *link.Netns) error {
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
	err = m.releaseLocked(st, cur, ns)
	st.mu.Unlock()
	if err == nil {
		m.releaseParent(ep.Parent)
	}
	return err
}

// releaseLocked releases ep: see releaseAllLocked.
func (m *Manager) releaseLocked(st *netState, ep api.Endpoint, ns *link.Netns) error {
	return m.releaseAllLocked(st, []release{{ep, ns}})
}

// release is an endpoint to release and its container's namespace, nil
// when that is gone (and the interface with it).
type release struct {
	ep api.Endpoint
	ns *link.Netns
}

// retiring is an interface taken down and renamed, waiting for deletion.
type retiring struct {
	intent  api.Endpoint // the endpoint, with TempName the interface's name now
	ns      *link.Netns
	oldTemp string // an interrupted attach's temporary name, if recorded
}

// releaseAllLocked releases endpoints of st, whose lock the caller holds
// (and calls releaseParent after unlocking): their records and leases go
// in one commit, and each interface still in its namespace is taken down
// and renamed before the lock is dropped, so its address and name are free
// for the next container at once. Deleting those interfaces, which takes
// the kernel 15-20 ms each, happens in the background; an intent recorded
// before the commit lets a restart finish it after a crash.
func (m *Manager) releaseAllLocked(st *netState, rs []release) error {
	var intents []retiring
	endAll := func() {
		for _, r := range intents {
			m.store.EndIntent(r.intent)
		}
	}
	eps := make([]api.Endpoint, 0, len(rs))
	for _, r := range rs {
		eps = append(eps, r.ep)
		if r.ns == nil || !r.ns.Same(r.ep.NetnsInode, r.ep.NetnsCookie) {
			continue
		}
		in := r.ep
		var err error
		if in.TempName, err = link.NewTempName(); err == nil {
			err = m.store.BeginIntent(in)
		}
		if err != nil {
			endAll()
			return err
		}
		intents = append(intents, retiring{in, r.ns, r.ep.TempName})
	}
	t := m.timer()
	if err := m.store.DeleteEndpoints(eps); err != nil {
		endAll()
		return err
	}
	t.Step("commit")
	// A passthru parent takes one slave at a time: the next container
	// cannot have it while this one still exists.
	now := st.net.Mode == "passthru"
	var later []retiring
	for _, r := range intents {
		if ns, ok := m.retire(r, now); ok {
			later = append(later, retiring{intent: r.intent, ns: ns})
		}
	}
	t.Step("retire")
	for _, ep := range eps {
		m.forgetLocked(st, ep)
	}
	m.deleteLater(later)
	return nil
}

// retire takes r's interface down, renames it and strips its addresses
// (an interrupted attach may have left it under its old temporary name).
// It returns a namespace handle for the deletion still to come, or false
// when nothing is left for later: no interface was found, or it was
// deleted at once (now is true, or it could not be retired). An interface
// that cannot be deleted either keeps its intent, for the next start.
func (m *Manager) retire(r retiring, now bool) (*link.Netns, bool) {
	ep := r.intent
	found, err := link.Retire(r.ns, ep.TempName, ep.IfName, r.oldTemp)
	if err == nil && found && !now {
		if ns, err := r.ns.Dup(); err == nil {
			return ns, true
		}
	}
	if found || err != nil {
		if err != nil {
			m.log.Warn("interface not retired, deleting it now", "network", ep.Network, "container", containerName(ep), "ifname", ep.IfName, "err", err)
		}
		if err = link.DeleteSlave(r.ns, ep.TempName, ep.IfName, r.oldTemp); err != nil {
			m.log.Error("interface not deleted", "network", ep.Network, "container", containerName(ep), "ifname", ep.IfName, "err", err)
			return nil, false
		}
	}
	m.store.EndIntent(ep)
	return nil, false
}

// deleteLater deletes retired interfaces in the background and forgets
// their intents. Wait waits for it.
func (m *Manager) deleteLater(rs []retiring) {
	if len(rs) == 0 {
		return
	}
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		for _, r := range rs {
			ep := r.intent
			if err := link.DeleteSlave(r.ns, ep.TempName); err != nil {
				m.log.Warn("interface not deleted", "network", ep.Network, "container", containerName(ep), "ifname", ep.TempName, "err", err)
			} else {
				m.store.EndIntent(ep)
			}
			r.ns.Close()
		}
	}()
}

// Wait waits for interfaces being deleted in the background.
func (m *Manager) Wait() { m.background.Wait() }

// forgetLocked drops a released endpoint from memory once the store no
// longer holds it. The caller holds st.mu.
func (m *Manager) forgetLocked(st *netState, ep api.Endpoint) {
	for _, a := range addrsOf(ep) {
		st.alloc.Release(a)
	}
	st.remember(keyOf(ep), addrsOf(ep))
	st.remove(keyOf(ep))
	m.addRef(ep.Parent, -1)
	m.log.Info("detached", "network", ep.Network, "container", containerName(ep), "ifname", ep.IfName)
}
