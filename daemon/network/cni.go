package network

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// CNI: underlay-cni asks for one network at a time, for a container the
// runtime names by its CNI container id, in a netns it names by path, with
// the interface name it chooses. nerdctl's ids are "<namespace>-<id>":
// split, they key the endpoint as the hook and containerd's events do, so
// that whichever release path comes first releases it, once.

// cniKey splits a CNI container id into a containerd namespace and id.
func cniKey(id string) (ns, cid string) {
	if i := strings.LastIndexByte(id, '-'); i > 0 && len(id)-i-1 == 64 && isHex(id[i+1:]) {
		return id[:i], id[i+1:]
	}
	return "", id
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validCNI(req api.CNIRequest, needNetns bool) error {
	if err := validID("CNI_CONTAINERID", req.ContainerID); err != nil {
		return err
	}
	if err := api.ValidName(req.Network); err != nil {
		return invalid("network: %w", err)
	}
	if req.IfName != "" {
		if err := link.ValidIfName(req.IfName); err != nil {
			return invalid("CNI_IFNAME=%s: %w", req.IfName, err)
		}
	}
	if needNetns && (req.Netns == "" || !filepath.IsAbs(req.Netns)) {
		return invalid("CNI_NETNS=%q: want the absolute path of the container's network namespace", req.Netns)
	}
	for _, a := range []struct{ what, v, fam string }{{"IP", req.IP, "4"}, {"IP6", req.IP6, "6"}} {
		if a.v == "" {
			continue
		}
		if ip, err := netip.ParseAddr(a.v); err != nil || ip.Is4() != (a.fam == "4") {
			return invalid("%s=%s: not an IPv%s address", a.what, a.v, a.fam)
		}
	}
	return nil
}

// AttachCNI is a CNI ADD: the container gets an interface named
// req.IfName on req.Network in the netns at req.Netns. A repeated ADD for
// the same netns returns the endpoint there.
func (m *Manager) AttachCNI(req api.CNIRequest) (api.Endpoint, error) {
	if req.IfName == "" {
		req.IfName = "eth0"
	}
	if err := validCNI(req, true); err != nil {
		return api.Endpoint{}, err
	}
	ns, id := cniKey(req.ContainerID)
	key := api.Endpoint{Namespace: ns, ContainerID: id}.Container()
	m.containers.Lock(key)
	defer m.containers.Unlock(key)
	netns, err := m.kernel.OpenPath(req.Netns)
	if err != nil {
		return api.Endpoint{}, invalid("CNI_NETNS=%s: %w", req.Netns, err)
	}
	defer netns.Close()
	na := api.NetworkAttach{Name: req.Network, IP: req.IP, IP6: req.IP6, MAC: req.MAC, IfName: req.IfName, CNI: true}
	areq := api.AttachRequest{Namespace: ns, ContainerID: id, Networks: []api.NetworkAttach{na},
		Name: req.Name, Hostname: req.Hostname}
	ep, _, err := m.attachOne(netns, areq, 0, na, map[int]bool{})
	if err != nil {
		return api.Endpoint{}, inNetwork(req.Network, err)
	}
	return ep, nil
}

// cniEndpoint finds the endpoint of a CNI request, if any.
func (m *Manager) cniEndpoint(req api.CNIRequest) (api.Endpoint, bool) {
	st, err := m.network(req.Network)
	if err != nil {
		return api.Endpoint{}, false
	}
	ns, id := cniKey(req.ContainerID)
	st.mu.Lock()
	ep, ok := st.get(epKey{ns, id})
	st.mu.Unlock()
	if !ok || req.IfName != "" && ep.IfName != req.IfName {
		return api.Endpoint{}, false
	}
	return ep, true
}

// DetachCNI is a CNI DEL: it releases the endpoint if there is one, and
// succeeds if there is none (the spec's DEL is idempotent; nerdctl calls
// it before every ADD, and with no netns at poststop).
func (m *Manager) DetachCNI(req api.CNIRequest) error {
	if err := validCNI(req, false); err != nil {
		return err
	}
	ns, id := cniKey(req.ContainerID)
	key := api.Endpoint{Namespace: ns, ContainerID: id}.Container()
	m.containers.Lock(key)
	defer m.containers.Unlock(key)
	ep, ok := m.cniEndpoint(req)
	if !ok {
		return nil
	}
	// The runtime's path is the cheap way to the namespace; without one
	// (nerdctl's DELs), or if it names another, look it up.
	var netns *link.Netns
	if req.Netns != "" {
		if ns, err := m.kernel.OpenPath(req.Netns); err == nil {
			if ns.Same(ep.NetnsInode, ep.NetnsCookie) {
				netns = ns
			} else {
				ns.Close()
			}
		}
	}
	if netns == nil {
		netns = m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0)
	}
	if netns != nil {
		defer netns.Close()
	}
	return m.detachEndpoint(ep, netns, false, api.ReleaseCNI)
}

// CheckCNI is a CNI CHECK: the endpoint exists, in that netns, and its
// interface is there with its addresses.
func (m *Manager) CheckCNI(req api.CNIRequest) (api.Endpoint, error) {
	if req.IfName == "" {
		req.IfName = "eth0"
	}
	if err := validCNI(req, true); err != nil {
		return api.Endpoint{}, err
	}
	ep, ok := m.cniEndpoint(req)
	if !ok {
		return ep, fmt.Errorf("network %s: no attachment of container %s as %s: %w", req.Network, req.ContainerID, req.IfName, ErrNotFound)
	}
	netns, err := m.kernel.OpenPath(req.Netns)
	if err != nil {
		return ep, invalid("CNI_NETNS=%s: %w", req.Netns, err)
	}
	defer netns.Close()
	if !netns.Same(ep.NetnsInode, ep.NetnsCookie) {
		return ep, fmt.Errorf("network %s: container %s is attached in another network namespace than %s: %w", req.Network, req.ContainerID, req.Netns, ErrNotFound)
	}
	if err := m.kernel.HasSlave(netns, ep.IfName, ep.Addresses); err != nil {
		return ep, fmt.Errorf("network %s: %w", req.Network, err)
	}
	return ep, nil
}

// GCCNI is a CNI GC: it releases every endpoint of the network that a CNI
// ADD made and that is not among the valid attachments. The hook's
// endpoints are not CNI's to collect.
func (m *Manager) GCCNI(gc api.CNIGC) (int, error) {
	if err := api.ValidName(gc.Network); err != nil {
		return 0, invalid("network: %w", err)
	}
	st, err := m.network(gc.Network)
	if err != nil {
		return 0, nil // nothing of that network is left to collect
	}
	valid := map[epKey]string{}
	for _, a := range gc.Valid {
		ns, id := cniKey(a.ContainerID)
		valid[epKey{ns, id}] = valueOr(a.IfName, "eth0")
	}
	st.mu.Lock()
	var stale []api.Endpoint
	for _, ep := range st.all() {
		if ifname, ok := valid[keyOf(ep)]; ep.CNI && (!ok || ifname != ep.IfName) {
			stale = append(stale, ep)
		}
	}
	st.mu.Unlock()
	n := 0
	for _, ep := range stale {
		key := ep.Container()
		m.containers.Lock(key)
		netns := m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0)
		err := m.detachEndpoint(ep, netns, false, api.ReleaseGC)
		if netns != nil {
			netns.Close()
		}
		m.containers.Unlock(key)
		if err != nil {
			return n, err
		}
		n++
		m.log.Info("released by CNI GC", "network", ep.Network, "container", key, "ifname", ep.IfName)
	}
	return n, nil
}
