package network

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Connect and Disconnect are Docker's `network connect` and `network
// disconnect` for a running container: one more interface (the next
// ethN) on a network, or one less. The container is one underlay already
// has an endpoint of, named as endpoint ls names it (namespace/id), by
// its id, or by a unique prefix of its id; or, with Netns, any container,
// whose namespace the caller names.

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
		return epKey{}, nil, fmt.Errorf("container %s has no underlay endpoint (name it as endpoint ls does, or pass --netns for a container underlay does not know yet): %w", ref, ErrNotFound)
	case 1:
		for k := range matches {
			return k, m.endpointsOf(k.ns, k.id), nil
		}
	}
	var names []string
	for k := range matches {
		names = append(names, containerName(api.Endpoint{Namespace: k.ns, ContainerID: k.id}))
	}
	return epKey{}, nil, invalid("container %s is ambiguous: %s", ref, strings.Join(names, ", "))
}

// Connect attaches a running container to one more network.
func (m *Manager) Connect(req api.ConnectRequest) (api.Endpoint, error) {
	if err := api.ValidName(req.Network); err != nil {
		return api.Endpoint{}, invalid("%w", err)
	}
	var key epKey
	var eps []api.Endpoint
	var err error
	if req.Netns != "" {
		if !filepath.IsAbs(req.Netns) {
			return api.Endpoint{}, invalid("--netns %s: want an absolute path (/proc/PID/ns/net or /run/netns/NAME)", req.Netns)
		}
		ns, id, ok := strings.Cut(req.Container, "/")
		if !ok {
			ns, id = "", req.Container
		}
		if err := validID("container id", id); err != nil {
			return api.Endpoint{}, err
		}
		key, eps = epKey{ns, id}, m.endpointsOf(ns, id)
	} else if key, eps, err = m.findContainer(req.Container); err != nil {
		return api.Endpoint{}, err
	}
	name := containerName(api.Endpoint{Namespace: key.ns, ContainerID: key.id})
	m.containers.Lock(name)
	defer m.containers.Unlock(name)
	eps = m.endpointsOf(key.ns, key.id) // again, under the container's lock
	var netns *link.Netns
	switch {
	case req.Netns != "":
		if netns, err = m.kernel.OpenPath(req.Netns); err != nil {
			return api.Endpoint{}, invalid("--netns %s: %w", req.Netns, err)
		}
		if len(eps) > 0 && !netns.Same(eps[0].NetnsInode, eps[0].NetnsCookie) {
			netns.Close()
			return api.Endpoint{}, invalid("--netns %s is not the namespace of container %s's other interfaces", req.Netns, name)
		}
	case len(eps) > 0:
		if netns = m.kernel.FindNetns(eps[0].NetnsInode, eps[0].NetnsCookie, 0); netns == nil {
			return api.Endpoint{}, fmt.Errorf("container %s is not running (its network namespace is gone): %w", name, ErrNotFound)
		}
	}
	if netns == nil {
		return api.Endpoint{}, fmt.Errorf("container %s: %w", name, ErrNotFound)
	}
	defer netns.Close()
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
	areq := api.AttachRequest{Namespace: key.ns, ContainerID: key.id, Networks: []api.NetworkAttach{na}}
	ep, err := m.attachOne(netns, areq, idx, na, routed)
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
	key, eps, err := m.findContainer(req.Container)
	if err != nil {
		return err
	}
	name := containerName(api.Endpoint{Namespace: key.ns, ContainerID: key.id})
	m.containers.Lock(name)
	defer m.containers.Unlock(name)
	for _, ep := range eps {
		if ep.Network != req.Network {
			continue
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
