package network

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/underlay/underlay/daemon/api"
)

// Connect and Disconnect are Docker's `network connect` and `network
// disconnect` for a running container: one more interface (the next
// ethN) on a network, or one less. target.go finds the container.

// findContainer resolves ref to a container's key and its endpoints.
func (m *Manager) findContainer(ref string) (epKey, []api.Endpoint, error) {
	ns, id, hasNS := strings.Cut(ref, "/")
	if !hasNS {
		ns, id = "", ref
	}
	if id == "" {
		return epKey{}, nil, invalid("no container named")
	}
	matches := map[epKey]bool{}
	for _, ep := range m.endpointsWhere(func(k epKey, _ *epRecord) bool {
		return (!hasNS || k.ns == ns) && strings.HasPrefix(k.id, id)
	}) {
		matches[keyOf(ep)] = true
	}
	// An exact id wins over longer ids it is a prefix of.
	for k := range matches {
		if k.id == id {
			matches = map[epKey]bool{k: true}
			break
		}
	}
	switch len(matches) {
	case 0:
		return epKey{}, nil, fmt.Errorf("container %s has no underlay endpoint: %w", ref, ErrNotFound)
	case 1:
		for k := range matches {
			return k, m.endpointsOf(k.ns, k.id), nil
		}
	}
	var names []string
	for k := range matches {
		names = append(names, api.Endpoint{Namespace: k.ns, ContainerID: k.id}.Container())
	}
	return epKey{}, nil, invalid("container %s is ambiguous: %s", ref, strings.Join(names, ", "))
}

// Connect attaches a running container to one more network.
func (m *Manager) Connect(req api.ConnectRequest) (api.Endpoint, error) {
	if err := api.ValidName(req.Network); err != nil {
		return api.Endpoint{}, invalid("%w", err)
	}
	// The network first: a missing one is the error, not the container.
	st, err := m.find(req.Network)
	if err != nil {
		return api.Endpoint{}, err
	}
	req.Network = st.net.Name
	t, err := m.findTarget(req)
	if err != nil {
		return api.Endpoint{}, err
	}
	defer t.close()
	name := t.name()
	m.containers.Lock(name)
	defer m.containers.Unlock(name)
	eps, err := m.liveEndpoints(t, m.endpointsOf(t.key.ns, t.key.id)) // again, under the container's lock
	if err != nil {
		return api.Endpoint{}, err
	}
	// The next free ethN, and the default routes the container has:
	// like Docker, a connected network adds its subnet, not a second
	// default route of a family that has one.
	used := map[int]bool{}
	routed := map[int]bool{}
	for _, ep := range eps {
		if ep.Network == req.Network {
			return api.Endpoint{}, fmt.Errorf("container %s is already on network %s (as %s): %w", name, req.Network, ep.IfName, ErrExists)
		}
		used[ifIndex(ep.IfName)] = true
		for _, g := range ep.Gateways {
			if a, err := netip.ParseAddr(g); err == nil {
				routed[map[bool]int{true: 4, false: 6}[a.Is4()]] = true
			}
		}
	}
	idx := 0
	for used[idx] {
		idx++
	}
	if idx >= api.MaxNetworks {
		return api.Endpoint{}, invalid("container %s has %d interfaces, at most %d", name, len(eps), api.MaxNetworks)
	}
	na := api.NetworkAttach{Name: req.Network, IP: req.IP, IP6: req.IP6, MAC: req.MAC}
	areq := api.AttachRequest{Namespace: t.key.ns, ContainerID: t.key.id, Networks: []api.NetworkAttach{na}}
	ep, _, err := m.attachOne(t.netns, areq, idx, na, routed)
	if err != nil {
		return api.Endpoint{}, inNetwork(req.Network, err)
	}
	return ep, nil
}

// Disconnect takes a running container off one network.
func (m *Manager) Disconnect(req api.ConnectRequest) error {
	if err := api.ValidName(req.Network); err != nil {
		return invalid("%w", err)
	}
	if st, err := m.find(req.Network); err == nil {
		req.Network = st.net.Name // it was an ID
	}
	t, err := m.findTarget(req)
	if err != nil {
		return err
	}
	defer t.close()
	name := t.name()
	m.containers.Lock(name)
	defer m.containers.Unlock(name)
	eps := m.endpointsOf(t.key.ns, t.key.id)
	if len(eps) == 0 {
		return fmt.Errorf("container %s has no underlay endpoint: %w", name, ErrNotFound)
	}
	for _, ep := range eps {
		if ep.Network != req.Network {
			continue
		}
		if t.netns != nil && t.netns.Same(ep.NetnsInode, ep.NetnsCookie) {
			return m.detachEndpoint(ep, t.netns, false, api.ReleaseDisconnect)
		}
		netns := m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0)
		if netns != nil {
			defer netns.Close()
		}
		return m.detachEndpoint(ep, netns, false, api.ReleaseDisconnect)
	}
	var on []string
	for _, ep := range eps {
		on = append(on, ep.Network+" ("+ep.IfName+")")
	}
	return fmt.Errorf("container %s is not on network %s (it is on %s): %w", name, req.Network, strings.Join(on, ", "), ErrNotFound)
}
