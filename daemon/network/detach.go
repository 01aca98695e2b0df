package network

import (
	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/store"
)

// Detach releases every endpoint of a container. It is idempotent: a
// container with no endpoints, or whose namespace is gone, is success.
func (m *Manager) Detach(req api.DetachRequest) (api.DetachResponse, error) {
	if err := validID("container id", req.ContainerID); err != nil {
		return api.DetachResponse{}, err
	}
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
	cur, ok := st.eps[string(store.EndpointKey(ep))]
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

// releaseLocked removes the interface (if its namespace is given and
// matches), the endpoint and its leases. The caller holds st.mu and calls
// releaseParent after unlocking.
func (m *Manager) releaseLocked(st *netState, ep api.Endpoint, ns *link.Netns) error {
	m.deleteSlaves(ep, ns)
	if err := m.store.DeleteEndpoint(ep); err != nil {
		return err
	}
	m.forgetLocked(st, ep)
	return nil
}

// deleteSlaves removes the endpoint's interface from ns, if ns is the
// endpoint's namespace. An interrupted attach may have left it under its
// temporary name.
func (m *Manager) deleteSlaves(ep api.Endpoint, ns *link.Netns) {
	if ns == nil || !ns.Same(ep.NetnsInode, ep.NetnsCookie) {
		return
	}
	if err := link.DeleteSlave(ns, ep.IfName, ep.TempName); err != nil {
		m.log.Warn("interface not deleted", "network", ep.Network, "container", containerName(ep), "ifname", ep.IfName, "err", err)
	}
}

// forgetLocked drops a released endpoint from memory once the store no
// longer holds it. The caller holds st.mu.
func (m *Manager) forgetLocked(st *netState, ep api.Endpoint) {
	for _, a := range addrsOf(ep) {
		st.alloc.Release(a)
	}
	st.remember(string(store.EndpointKey(ep)), addrsOf(ep))
	delete(st.eps, string(store.EndpointKey(ep)))
	m.addRef(ep.Parent, -1)
	m.log.Info("detached", "network", ep.Network, "container", containerName(ep), "ifname", ep.IfName)
}
