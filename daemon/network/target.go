package network

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Which container a network connect or disconnect means, tried in this
// order:
//
//  1. --pid or --netns: the network namespace itself. One underlay already
//     has endpoints in is their container's (a second name there would
//     clash over its ethN); otherwise the container is CONTAINER as given,
//     or netns-<inode> when none is given.
//  2. A container underlay has endpoints of: as endpoint ls names it, by
//     its id, or by a unique prefix of its id.
//  3. A containerd container (namespace/id; a bare id or nerdctl name is
//     looked for in namespace "default"), asked of the containerd underlayd
//     follows. Its endpoints are keyed namespace/id like the hook's, so
//     containerd's events and reconciliation release them.
//
// A podman name is the CLI's to resolve, in the user's environment (their
// podman, their storage), after the two above found nothing; it comes here
// as --pid and the container's full id, the key podman's hook uses.

// ContainerFinder looks running containers up in the container manager
// underlayd follows (containerd). daemon/main.go wires the real one.
type ContainerFinder interface {
	// FindContainer returns the id and the pid of the container that ref
	// (its id, or a name the manager gave it) names in namespace ns. No
	// such container wraps ErrNotFound, one without a running task
	// ErrNotRunning; the messages name the manager.
	FindContainer(ns, ref string) (id string, pid int, err error)
}

// WithContainers lets connect and disconnect find containers in f.
func WithContainers(f ContainerFinder) Option { return func(m *Manager) { m.finder = f } }

// defaultNamespace is where ctr and nerdctl put a container by default.
const defaultNamespace = "default"

// target is the container a connect or disconnect names: the key of its
// endpoints and, where the request or containerd gave it, its namespace,
// open until close.
type target struct {
	key   epKey
	netns *link.Netns
}

func (t *target) name() string {
	return api.Endpoint{Namespace: t.key.ns, ContainerID: t.key.id}.Container()
}

func (t *target) close() {
	if t.netns != nil {
		t.netns.Close()
	}
}

// findTarget resolves the container of req (the order above).
func (m *Manager) findTarget(req api.ConnectRequest) (*target, error) {
	if req.Pid != 0 || req.Netns != "" {
		return m.targetByNetns(req)
	}
	ref := req.Container
	if ref == "" {
		return nil, invalid("no container named: give CONTAINER, --pid or --netns")
	}
	key, _, err := m.findContainer(ref)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return &target{key: key}, err
	}
	if m.finder == nil {
		return nil, fmt.Errorf("container %s: no underlay endpoint, and underlayd follows no containerd to ask (--containerd-address): %w", ref, ErrNotFound)
	}
	ns, id, ok := strings.Cut(ref, "/")
	if !ok {
		ns, id = defaultNamespace, ref
	}
	if err := validID("containerd namespace", ns); err != nil {
		return nil, err
	}
	if err := validID("container id", id); err != nil {
		return nil, err
	}
	cid, pid, err := m.finder.FindContainer(ns, id)
	if err != nil {
		return nil, fmt.Errorf("container %s: no underlay endpoint, and %w", ref, err)
	}
	t := &target{key: epKey{ns, cid}}
	if len(m.endpointsOf(ns, cid)) > 0 {
		return t, nil // known by its id after all: its recorded namespace decides
	}
	if t.netns, err = m.kernel.OpenPid(pid); err != nil {
		return nil, invalid("container %s (containerd's pid %d): %w", ref, pid, err)
	}
	return t, nil
}

// targetByNetns resolves a container named by its namespace (--pid,
// --netns): the same pid check as an attach refuses the daemon's own.
func (m *Manager) targetByNetns(req api.ConnectRequest) (*target, error) {
	var what string
	var ns *link.Netns
	var err error
	switch {
	case req.Pid != 0 && req.Netns != "":
		return nil, invalid("--pid and --netns both name the namespace: give one")
	case req.Pid != 0:
		what = fmt.Sprintf("--pid %d", req.Pid)
		ns, err = m.kernel.OpenPid(req.Pid)
	case !filepath.IsAbs(req.Netns):
		return nil, invalid("--netns %s: want an absolute path (/proc/PID/ns/net or /run/netns/NAME)", req.Netns)
	default:
		what = "--netns " + req.Netns
		ns, err = m.kernel.OpenPath(req.Netns)
	}
	if err != nil {
		return nil, invalid("%s: %w", what, err)
	}
	t := &target{netns: ns}
	var named epKey
	if req.Container != "" {
		if named, err = parseKey(req.Container); err != nil {
			t.close()
			return nil, err
		}
	}
	owners := map[epKey]bool{}
	for _, ep := range m.endpointsWhere(func(_ epKey, r *epRecord) bool { return ns.Same(r.inode, r.cookie) }) {
		owners[keyOf(ep)] = true
	}
	switch {
	case owners[named] || len(owners) == 0 && req.Container != "":
		t.key = named
	case len(owners) == 1 && req.Container == "":
		for k := range owners {
			t.key = k
		}
	case len(owners) > 0:
		t.close()
		var names []string
		for k := range owners {
			names = append(names, api.Endpoint{Namespace: k.ns, ContainerID: k.id}.Container())
		}
		sort.Strings(names)
		if req.Container == "" {
			return nil, invalid("%s is the network namespace of containers %s: name one", what, strings.Join(names, ", "))
		}
		return nil, invalid("%s is the network namespace of container %s, not %s: name that one, or none", what,
			strings.Join(names, ", "), req.Container)
	default:
		// An unnamed container is its namespace: the name lasts as long
		// as the endpoints, which go when the namespace does.
		t.key = epKey{"", fmt.Sprintf("netns-%d", ns.Inode)}
	}
	return t, nil
}

// parseKey reads a container named as endpoint ls names it: [namespace/]id.
func parseKey(ref string) (epKey, error) {
	ns, id, ok := strings.Cut(ref, "/")
	if !ok {
		ns, id = "", ref
	}
	if ok {
		if err := validID("namespace", ns); err != nil {
			return epKey{}, err
		}
	}
	if err := validID("container id", id); err != nil {
		return epKey{}, err
	}
	return epKey{ns, id}, nil
}

// liveEndpoints checks t's endpoints (eps, read under its lock) against
// the namespace the request gave, or finds theirs, and leaves the one to
// work in in t.netns. Endpoints whose namespace is gone (a podman
// container restarted under its id) are released here, as reconciliation
// would, so that the container's new namespace can be connected.
func (m *Manager) liveEndpoints(t *target, eps []api.Endpoint) ([]api.Endpoint, error) {
	if len(eps) == 0 {
		if t.netns == nil { // its endpoints went while we looked
			return nil, fmt.Errorf("container %s has no underlay endpoint: %w", t.name(), ErrNotFound)
		}
		return nil, nil
	}
	if t.netns != nil && t.netns.Same(eps[0].NetnsInode, eps[0].NetnsCookie) {
		return eps, nil
	}
	old := m.kernel.FindNetns(eps[0].NetnsInode, eps[0].NetnsCookie, 0)
	switch {
	case old != nil && t.netns == nil:
		t.netns = old
		return eps, nil
	case old != nil:
		old.Close()
		return nil, invalid("that network namespace is not the one of container %s's other interfaces", t.name())
	case t.netns == nil:
		return nil, fmt.Errorf("container %s is not running (its network namespace is gone): %w", t.name(), ErrNotRunning)
	}
	for _, ep := range eps {
		m.log.Info("releasing dead endpoint", "network", ep.Network, "container", t.name(),
			"ifname", ep.IfName, "reason", "network namespace is gone")
		if err := m.detachEndpoint(ep, nil, false, api.ReleaseReconcile); err != nil {
			return nil, fmt.Errorf("release %s's endpoint on %s, whose namespace is gone: %w", t.name(), ep.Network, err)
		}
	}
	return nil, nil
}
