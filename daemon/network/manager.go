// Package network is underlayd's core: it validates and stores networks,
// attaches containers (addresses from ipam, interfaces through link), and
// detaches them. Every change to a network happens under that network's own
// lock; networks never wait on each other.
package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/store"
	"github.com/underlay/underlay/ipam"
)

// Sentinel errors, one per meaning; the API maps each to a status code
// (server.statusOf). Errors wrap them with %w and say what went wrong.
var (
	// ErrInvalid is the caller's mistake: a bad flag, annotation or
	// request. invalid() makes these.
	ErrInvalid = errors.New("invalid request")
	// ErrNoParent means a network's parent link is missing and cannot be
	// made: a user error (a typo, a NIC renamed), not underlayd's.
	ErrNoParent     = errors.New("parent interface missing")
	ErrNotFound     = store.ErrNotFound
	ErrExists       = store.ErrExists
	ErrAddressInUse = ipam.ErrAddressInUse
	ErrExhausted    = ipam.ErrPoolExhausted
	ErrParentBusy   = errors.New("parent busy")
	ErrInUse        = errors.New("network in use")
	// ErrNotRunning means a container exists but has no running process,
	// so there is no network namespace to connect.
	ErrNotRunning = errors.New("container not running")
	// ErrNoLease means the LAN's DHCP server gave no lease in time.
	ErrNoLease = errors.New("no DHCP lease")
)

// invalid marks an error as the caller's mistake (ErrInvalid) and keeps
// its text; a %w in format keeps the cause for errors.Is too.
func invalid(format string, a ...any) error {
	return &classed{fmt.Errorf(format, a...), ErrInvalid}
}

// noParent marks an error as ErrNoParent and keeps its text, which says
// which link is missing better than the sentinel's words would after it.
func noParent(format string, a ...any) error {
	return &classed{fmt.Errorf(format, a...), ErrNoParent}
}

// classed is an error that is its class for errors.Is without the
// class's words in its text.
type classed struct{ err, class error }

func (e *classed) Error() string        { return e.err.Error() }
func (e *classed) Unwrap() error        { return e.err }
func (e *classed) Is(target error) bool { return target == e.class }

// networkError is an error of one network: "network NAME: cause".
type networkError struct {
	name string
	err  error
}

func (e *networkError) Error() string { return "network " + e.name + ": " + e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// inNetwork names network name in err, unless err names it already.
func inNetwork(name string, err error) error {
	var ne *networkError
	if err == nil || errors.As(err, &ne) && ne.name == name {
		return err
	}
	return &networkError{name, err}
}

// Store is the persistent state the manager needs; the bbolt store is the
// local implementation, and a shared (etcd) one can take its place.
type Store interface {
	Networks() ([]api.Network, error)
	CreateNetwork(api.Network) error
	DeleteNetwork(name string) error
	EachEndpoint(func(api.Endpoint) error) error
	PutEndpoint(api.Endpoint) error
	DeleteEndpoint(api.Endpoint) error
	DeleteEndpoints([]api.Endpoint) error
	Links() ([]store.OwnedLink, error)
	PutLink(store.OwnedLink) error
	DeleteLink(name string) error
	// Intents of attaches and detaches: recorded before their kernel work,
	// forgotten once it is done or rolled back, and listed at start.
	BeginIntent(api.Endpoint) error
	EndIntent(api.Endpoint)
	Intents() ([]api.Endpoint, error)
}

var _ Store = (*store.Store)(nil)

// Manager owns the networks.
type Manager struct {
	store  Store
	kernel Kernel
	log    *slog.Logger

	// global holds the global networks, nil without --store; parentOf
	// overrides their parents on this host.
	global       Global
	parentOf     map[string]string
	reclaimAfter time.Duration

	// createMu serialises create and remove, whose checks span networks
	// (one driver per parent, overlapping subnets). Attach never takes it.
	createMu sync.Mutex

	mu   sync.RWMutex // guards nets (the map, not its values)
	nets map[string]*netState

	parents keyedMutex // per parent link: creating and removing owned parents

	// containers is a lock per container (namespace/id), held by Attach
	// and Detach: one container's attaches and detaches never interleave,
	// while different containers' run in parallel.
	containers keyedMutex

	// Steps, if set before the first request, is told the wall time of
	// each step of an attach and a detach (the bench prints them).
	Steps func(step string, d time.Duration)

	refMu sync.Mutex // leaf lock: guards refs and owned
	refs  parentRefs
	owned map[string]store.OwnedLink

	background sync.WaitGroup // inBackground's work; Wait waits for it
	deletions  deletions
	announcer  announcer // second gratuitous ARPs to come (announce.go)

	// leaser does the DHCP of --ipam-driver dhcp networks; leases keeps
	// their renewals.
	leaser Leaser
	leases leaseKeeper
	// shims does the kernel work of --host-address shims.
	shims ShimKernel
	// dns serves 127.0.0.11 in containers (nil: no name service);
	// dnsRefs counts the endpoints on networks with DNS per namespace.
	dns     NameServer
	dnsMu   sync.Mutex
	dnsRefs map[uint64]int

	internMu sync.Mutex
	interned map[string]string // containerd namespaces, shared by endpoints

	// observers are told every attach, detach and reconcile (observe.go).
	observers []Observer

	// finder finds running containers underlay has no endpoint of
	// (network connect); nil without --containerd-address.
	finder ContainerFinder
}

// timer times the steps of one attach or detach for m.Steps.
func (m *Manager) timer() link.StepTimer { return link.NewStepTimer(m.Steps) }

// intern returns the shared copy of a namespace name.
func (m *Manager) intern(s string) string {
	m.internMu.Lock()
	defer m.internMu.Unlock()
	if c, ok := m.interned[s]; ok {
		return c
	}
	m.interned[s] = s
	return s
}

// netState is one network in memory. mu is the network's lock: it guards
// addrs, eps and pending. An attach holds it to reserve its addresses and
// again to commit, never across its kernel work (attach.go).
type netState struct {
	mu      sync.Mutex
	net     api.Network
	addrs   AddressDriver
	rec     []byte // a global network's record in the shared store
	eps     map[epKey]epRecord
	rare    map[epKey]epRare
	removed bool
	// names is the network's DNS: each container name's endpoints.
	names map[string]map[epKey]struct{}
	// pending counts attaches that have reserved addresses but not
	// committed: the network cannot be removed, nor a passthru parent
	// given to another container, until they end.
	pending int
	// recent remembers the addresses of released endpoints, so a container
	// restarted under the same id (a new task) gets them back if they are
	// still free. Bounded: it is a courtesy, not state.
	recent map[epKey][]netip.Addr
}

// maxRecent bounds netState.recent.
const maxRecent = 4096

func (st *netState) remember(key epKey, addrs []netip.Addr) {
	if st.recent == nil || len(st.recent) >= maxRecent {
		st.recent = map[epKey][]netip.Addr{}
	}
	st.recent[key] = addrs
}

// New loads the stored networks and endpoints, and finishes what a crash
// cut short. k is the kernel to work on: link.Host{} in underlayd.
func New(s Store, k Kernel, log *slog.Logger, opts ...Option) (*Manager, error) {
	m := &Manager{store: s, kernel: k, log: log, nets: map[string]*netState{},
		refs: parentRefs{}, owned: map[string]store.OwnedLink{}, interned: map[string]string{},
		leaser: hostLeaser{}, shims: hostShims{}}
	for _, o := range opts {
		o(m)
	}
	links, err := s.Links()
	if err != nil {
		return nil, fmt.Errorf("load owned links: %w", err)
	}
	for _, l := range links {
		m.owned[l.Name] = l
	}
	nets, err := s.Networks()
	if err != nil {
		return nil, fmt.Errorf("load networks: %w", err)
	}
	if err := m.loadNetworks(nets); err != nil {
		return nil, err
	}
	var orphans []api.Endpoint
	err = s.EachEndpoint(func(ep api.Endpoint) error {
		st := m.nets[ep.Network]
		if st == nil {
			orphans = append(orphans, ep)
			return nil
		}
		for _, a := range ep.Addresses {
			p, err := netip.ParsePrefix(a)
			if err == nil {
				err = st.addrs.Hold(ownerOf(ep), p.Addr())
			}
			if err != nil {
				// The container still uses the address: for a global
				// network held by another host now, that is a duplicate
				// on the wire, which the operator must see.
				log.Error("stored lease not loaded: the container's address may be in use elsewhere", "network", ep.Network, "container", ep.Container(), "address", a, "err", err)
			}
		}
		st.put(ep, m.intern)
		m.refs[ep.Parent]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load endpoints: %w", err)
	}
	for _, ep := range orphans {
		log.Warn("endpoint of unknown network dropped", "network", ep.Network, "container", ep.ContainerID)
		_ = s.DeleteEndpoint(ep)
	}
	for _, st := range m.nets {
		st.mu.Lock()
		m.releaseUnbackedLocked(st)
		st.mu.Unlock()
	}
	if m.global != nil {
		// Drops the copies of global networks removed elsewhere that
		// have no endpoint here.
		if err := m.loadGlobal(); err != nil {
			return nil, err
		}
	}
	if err := m.undoInterrupted(); err != nil {
		return nil, err
	}
	m.scheduleStored()
	return m, nil
}

// loadNetworks makes the stored networks known. A global network takes
// its record, and its addresses, from the shared store; one that is gone
// from there keeps this host's copy, with local addresses, until its
// endpoints here are released.
func (m *Manager) loadNetworks(nets []api.Network) error {
	var recs map[string][]byte
	var globals []string
	for _, n := range nets {
		if n.Scope == scopeGlobal {
			globals = append(globals, n.Name)
		}
	}
	if len(globals) > 0 && m.global == nil {
		return fmt.Errorf("the state holds global network(s) %s: start underlayd with the --store it was using", strings.Join(globals, ", "))
	}
	if m.global != nil {
		var err error
		if recs, err = m.global.Networks(); err != nil {
			return err
		}
	}
	for _, n := range nets {
		if rec, ok := recs[n.Name]; ok && n.Scope == scopeGlobal {
			var shared api.Network
			if err := json.Unmarshal(rec, &shared); err != nil {
				return fmt.Errorf("global network %s: unreadable record: %w", n.Name, err)
			}
			if err := m.addGlobal(shared, rec, false); err != nil {
				return fmt.Errorf("load global network %s: %w", n.Name, err)
			}
			continue
		}
		st, err := newState(n)
		if err != nil {
			return fmt.Errorf("load network %s: %w", n.Name, err)
		}
		m.nets[n.Name] = st
	}
	return nil
}

// undoInterrupted finishes what a crash cut short. An attach whose endpoint
// was never committed (the hook failed, so the runtime did not start the
// container) and a detach whose release was committed both leave an
// interface to delete, under its temporary name or its ethN name; the
// leases are already free. An intent whose endpoint is still stored as it
// was (an attach that did commit, a detach that did not) is only
// forgotten: the endpoint is whole.
func (m *Manager) undoInterrupted() error {
	intents, err := m.store.Intents()
	if err != nil {
		return err
	}
	for _, ep := range intents {
		if cur, ok := m.endpoint(ep); ok && cur.Created == ep.Created {
			m.store.EndIntent(ep)
			continue
		}
		if err := m.undoIntent(ep); err != nil {
			m.log.Error("interrupted attach or detach not finished", "network", ep.Network, "container", ep.Container(), "err", err)
			continue
		}
		m.store.EndIntent(ep)
		m.log.Info("interrupted attach or detach finished", "network", ep.Network, "container", ep.Container())
	}
	return nil
}

// undoIntent deletes what an intent's attach or detach left in the kernel:
// the interface under its temporary name, and under its ethN name if it is
// still the one the intent describes. An ethN name that a stored endpoint
// in the same namespace holds (a container that attached there since) is
// never touched.
func (m *Manager) undoIntent(ep api.Endpoint) error {
	ns := m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0)
	if ns == nil {
		return nil // the namespace is gone, and the interface with it
	}
	defer ns.Close()
	if err := m.kernel.DeleteSlave(ns, ep.TempName); err != nil {
		return err
	}
	held := m.endpointsWhere(func(_ epKey, r *epRecord) bool {
		return r.inode == ep.NetnsInode && r.cookie == ep.NetnsCookie
	})
	for _, h := range held {
		if h.IfName == ep.IfName {
			return nil
		}
	}
	return m.kernel.DeleteSlaveMatching(ns, ep.IfName, ep.MAC, ep.Addresses)
}

// endpoint returns the stored endpoint with ep's key.
func (m *Manager) endpoint(ep api.Endpoint) (api.Endpoint, bool) {
	st, err := m.network(ep.Network)
	if err != nil {
		return api.Endpoint{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.get(keyOf(ep))
}

func newState(n api.Network) (*netState, error) {
	pools, err := poolsOf(n)
	if err != nil {
		return nil, err
	}
	return newStateWith(n, pools)
}

func newStateWith(n api.Network, pools []ipam.Pool) (*netState, error) {
	addrs, err := newAddresses(n, pools)
	if err != nil {
		return nil, err
	}
	return &netState{net: n, addrs: addrs, eps: map[epKey]epRecord{}, rare: map[epKey]epRare{}}, nil
}

// poolsOf rebuilds ipam pools from a stored network.
func poolsOf(n api.Network) ([]ipam.Pool, error) {
	var pools []ipam.Pool
	for _, s := range n.Subnets {
		var p ipam.Pool
		var err error
		if p.Subnet, err = netip.ParsePrefix(s.Subnet); err != nil {
			return nil, err
		}
		if s.IPRange != "" {
			if p.Range, err = netip.ParsePrefix(s.IPRange); err != nil {
				return nil, err
			}
		}
		if s.Gateway != "" {
			if p.Gateway, err = netip.ParseAddr(s.Gateway); err != nil {
				return nil, err
			}
		}
		if len(s.Aux) > 0 {
			p.Aux = map[string]netip.Addr{}
			for k, v := range s.Aux {
				if p.Aux[k], err = netip.ParseAddr(v); err != nil {
					return nil, err
				}
			}
		}
		pools = append(pools, p)
	}
	return pools, nil
}

func (m *Manager) network(name string) (*netState, error) {
	m.mu.RLock()
	st := m.nets[name]
	m.mu.RUnlock()
	if st == nil {
		return nil, inNetwork(name, ErrNotFound)
	}
	return st, nil
}

// byID finds a network in memory by what Docker's commands also take for
// a name: its ID, or a prefix of it that only one network's ID has (the 12
// characters `network ls` shows). A name always comes first.
func (m *Manager) byID(ref string) (*netState, error) {
	if ref == "" || strings.Trim(ref, "0123456789abcdef") != "" {
		return nil, inNetwork(ref, ErrNotFound)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var found []*netState
	for _, st := range m.nets {
		if strings.HasPrefix(st.net.ID, ref) {
			found = append(found, st)
		}
	}
	switch len(found) {
	case 0:
		return nil, inNetwork(ref, ErrNotFound)
	case 1:
		return found[0], nil
	}
	names := make([]string, 0, len(found))
	for _, st := range found {
		names = append(names, st.net.Name)
	}
	sort.Strings(names)
	return nil, invalid("network ID prefix %s matches %d networks (%s): give more of the ID, or the name", ref, len(found), strings.Join(names, ", "))
}

// lookup finds a network in memory or, for a global network that another
// host created, in the shared store.
func (m *Manager) lookup(name string) (*netState, error) {
	st, err := m.network(name)
	if err != nil && m.global != nil {
		return m.globalLookup(name)
	}
	return st, err
}

// find is lookup for the network commands (inspect, rm, connect,
// disconnect), which take an ID or an ID prefix where no network has that
// name, as Docker's do.
func (m *Manager) find(ref string) (*netState, error) {
	st, err := m.lookup(ref)
	if errors.Is(err, ErrNotFound) {
		if byID, idErr := m.byID(ref); !errors.Is(idErr, ErrNotFound) {
			return byID, idErr
		}
	}
	return st, err
}

// List returns every network with how full its subnets are, sorted by
// name; with a shared store, those other hosts created too.
func (m *Manager) List() []api.Network {
	if m.global != nil {
		m.createMu.Lock()
		if err := m.loadGlobal(); err != nil {
			m.log.Warn("global networks not listed", "err", err)
		}
		m.createMu.Unlock()
	}
	states := m.states()
	out := make([]api.Network, 0, len(states))
	for _, st := range states {
		st.mu.Lock()
		n := st.net
		n.Usage = st.usageLocked()
		st.mu.Unlock()
		out = append(out, n)
	}
	sortNetworks(out)
	return out
}

// known returns the networks in memory, sorted by name, without their
// usage: what a create checks against.
func (m *Manager) known() []api.Network {
	m.mu.RLock()
	out := make([]api.Network, 0, len(m.nets))
	for _, st := range m.nets {
		out = append(out, st.net)
	}
	m.mu.RUnlock()
	sortNetworks(out)
	return out
}

func sortNetworks(ns []api.Network) {
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
}

// Inspect returns a network with its endpoints and what the kernel says of
// its parent.
func (m *Manager) Inspect(name string) (api.Network, error) {
	if err := api.ValidName(name); err != nil {
		return api.Network{}, invalid("%w", err)
	}
	st, err := m.find(name)
	if err != nil {
		return api.Network{}, err
	}
	st.mu.Lock()
	n := st.net
	n.Endpoints = st.all()
	n.Usage = st.usageLocked()
	st.mu.Unlock()
	n.ParentInfo = m.parentInfo(n)
	n.Shim = m.shimInfo(n)
	return n, nil
}

// Endpoints returns every endpoint, sorted by network, namespace and
// container.
func (m *Manager) Endpoints() []api.Endpoint {
	var out []api.Endpoint
	_ = m.EachEndpoint(func(ep api.Endpoint) error {
		out = append(out, ep)
		return nil
	})
	return out
}

// states returns the networks, for walks that lock one at a time.
func (m *Manager) states() []*netState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*netState, 0, len(m.nets))
	for _, st := range m.nets {
		out = append(out, st)
	}
	return out
}

// endpointsWhere returns the endpoints keep accepts, unsorted. keep sees
// the compact record, so a walk over every endpoint of a large host builds
// only the ones it returns.
func (m *Manager) endpointsWhere(keep func(epKey, *epRecord) bool) []api.Endpoint {
	var out []api.Endpoint
	for _, st := range m.states() {
		st.mu.Lock()
		for k, r := range st.eps {
			if keep(k, &r) {
				out = append(out, st.endpoint(k, &r))
			}
		}
		st.mu.Unlock()
	}
	return out
}

// endpointsOf returns a container's endpoints in interface order: one
// lookup per network, however many endpoints the host has.
func (m *Manager) endpointsOf(ns, id string) []api.Endpoint {
	var eps []api.Endpoint
	for _, st := range m.states() {
		st.mu.Lock()
		if ep, ok := st.get(epKey{ns, id}); ok {
			eps = append(eps, ep)
		}
		st.mu.Unlock()
	}
	sort.Slice(eps, func(i, j int) bool { return ifIndex(eps[i].IfName) < ifIndex(eps[j].IfName) })
	return eps
}

// ifIndex is N of ethN, for ordering eth2 before eth10.
func ifIndex(name string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(name, "eth"))
	return n
}

// EndpointCount is the number of endpoints, without copying them.
func (m *Manager) EndpointCount() int {
	n := 0
	for _, st := range m.states() {
		st.mu.Lock()
		n += len(st.eps)
		st.mu.Unlock()
	}
	return n
}

func (m *Manager) parentInfo(n api.Network) *api.ParentInfo {
	pi := &api.ParentInfo{Name: n.Parent}
	m.refMu.Lock()
	if l, ok := m.owned[n.Parent]; ok {
		pi.Owned, pi.Dummy = true, l.Kind == "dummy"
		pi.VLAN, pi.Base = l.VLAN, l.Base
	}
	m.refMu.Unlock()
	if in, err := m.kernel.Lookup(n.Parent); err == nil {
		pi.Exists, pi.Up, pi.Kind, pi.MTU = true, in.Up, in.Kind, in.MTU
		if in.VLAN != 0 {
			pi.VLAN, pi.Base = in.VLAN, in.Base
		}
	}
	return pi
}
