package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/store"
)

// fakeKernel is a Kernel in memory that keeps the rules the manager relies
// on: a parent carries one slave type; a passthru parent carries one slave;
// macvlan MACs are unique per parent and ipvlan addresses are unique per
// parent (the kernel's EADDRINUSE); a name is unique per namespace; a
// slave's MTU is at most its parent's; deleting a parent deletes its
// slaves. fail makes an operation fail once, by name: a kernel operation,
// or a write of the store (faultyStore).
type fakeKernel struct {
	mu      sync.Mutex
	links   map[string]*fakeLink // host links by name
	nextIdx int
	netns   map[uint64]*fakeNetns    // by inode
	pids    map[int]uint64           // pid -> inode
	missing map[string]bool          // drivers the kernel lacks (Probe)
	fail    map[string]*fault        // operation -> its next failure
	gates   map[string]chan struct{} // operation -> closed when it may go on
	reached map[string]chan struct{} // operation -> closed when first called
	// announced are the gratuitous ARPs sent out of parents, as
	// "<parent index> <mac> <address>".
	announced []string
}

// fault is a failure to come: skip calls succeed, the next one fails.
type fault struct {
	skip int
	err  error
}

type fakeLink struct {
	info  link.Info
	owner string // "" for a link the test made, else the kind underlayd made
}

type fakeNetns struct {
	inode, cookie uint64
	ifs           map[string]*fakeIf
}

type fakeIf struct {
	kind, mode string
	parent     int
	mac        string
	mtu        int
	addrs      []netip.Prefix
	up         bool
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{links: map[string]*fakeLink{}, nextIdx: 2, netns: map[uint64]*fakeNetns{},
		pids: map[int]uint64{}, missing: map[string]bool{}, fail: map[string]*fault{},
		gates: map[string]chan struct{}{}, reached: map[string]chan struct{}{}}
}

// addLink adds a host link the user made (a NIC, a VLAN of their own).
func (k *fakeKernel) addLink(name, kind string, mtu int) link.Info {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.addLinkLocked(name, kind, mtu, "")
}

func (k *fakeKernel) addLinkLocked(name, kind string, mtu int, owner string) link.Info {
	in := link.Info{Name: name, Index: k.nextIdx, Kind: kind, MTU: mtu, Up: true,
		MAC: net.HardwareAddr{0x52, 0x54, 0, 0, byte(k.nextIdx >> 8), byte(k.nextIdx)}}
	k.nextIdx++
	k.links[name] = &fakeLink{info: in, owner: owner}
	return in
}

// hostPid is a process in the host's namespace, which OpenPid refuses.
const hostPid = 99999

// container makes a namespace that pid is in.
func (k *fakeKernel) container(pid int) *link.Netns {
	k.mu.Lock()
	defer k.mu.Unlock()
	inode := uint64(4026530000 + pid)
	k.netns[inode] = &fakeNetns{inode: inode, cookie: uint64(pid) * 7, ifs: map[string]*fakeIf{}}
	k.pids[pid] = inode
	return link.NamedNetns(inode, uint64(pid)*7)
}

// reuse ends pid's namespace and gives pid a new one at the same inode, as
// the kernel reuses inodes: only the cookie tells the two apart.
func (k *fakeKernel) reuse(pid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.netns[k.pids[pid]]
	k.netns[old.inode] = &fakeNetns{inode: old.inode, cookie: old.cookie + 1, ifs: map[string]*fakeIf{}}
}

// kill ends pid's namespace, and its interfaces with it.
func (k *fakeKernel) kill(pid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.netns, k.pids[pid])
	delete(k.pids, pid)
}

// ifs describes the interfaces in pid's namespace, sorted: "eth0 10.0.0.2/24".
func (k *fakeKernel) ifs(pid int) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	if ns := k.netns[k.pids[pid]]; ns != nil {
		for name, i := range ns.ifs {
			s := name
			for _, a := range i.addrs {
				s += " " + a.String()
			}
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// hostLinks lists the host's links, sorted.
func (k *fakeKernel) hostLinks() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for name := range k.links {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// alive reports whether pid has a namespace.
func (k *fakeKernel) alive(pid int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.pids[pid]
	return ok
}

// failNext makes the next call of op fail with err.
func (k *fakeKernel) failNext(op string, err error) { k.failAfter(op, 0, err) }

// failAfter lets skip calls of op succeed and makes the next one fail
// with err: the second network of an attach, say.
func (k *fakeKernel) failAfter(op string, skip int, err error) {
	k.mu.Lock()
	k.fail[op] = &fault{skip, err}
	k.mu.Unlock()
}

// failing returns the error op is to fail with now, if any; the caller
// holds k.mu.
func (k *fakeKernel) failing(op string) error {
	f := k.fail[op]
	if f == nil {
		return nil
	}
	if f.skip > 0 {
		f.skip--
		return nil
	}
	delete(k.fail, op)
	return f.err
}

// hold makes every call of op wait until the returned func is called: a
// slow kernel, for what must wait for an interface's deletion.
func (k *fakeKernel) hold(op string) (release func()) {
	gate := make(chan struct{})
	k.mu.Lock()
	k.gates[op] = gate
	k.mu.Unlock()
	return func() { close(gate) }
}

// reach returns a channel closed when op is next called.
func (k *fakeKernel) reach(op string) <-chan struct{} {
	ch := make(chan struct{})
	k.mu.Lock()
	k.reached[op] = ch
	k.mu.Unlock()
	return ch
}

// await waits while op is held; the caller does not hold k.mu.
func (k *fakeKernel) await(op string) {
	k.mu.Lock()
	gate := k.gates[op]
	if ch, ok := k.reached[op]; ok {
		close(ch)
		delete(k.reached, op)
	}
	k.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

// take is failing for callers that do not hold k.mu.
func (k *fakeKernel) take(op string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.failing(op)
}

func (k *fakeKernel) OpenPid(pid int) (*link.Netns, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("OpenPid"); err != nil {
		return nil, err
	}
	if pid == hostPid {
		return nil, fmt.Errorf("network namespace of pid %d %w", pid, link.ErrHostNetns)
	}
	ns, ok := k.netns[k.pids[pid]]
	if !ok {
		return nil, fmt.Errorf("network namespace of pid %d: process is gone", pid)
	}
	return link.NamedNetns(ns.inode, ns.cookie), nil
}

func (k *fakeKernel) OpenPath(path string) (*link.Netns, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	inode, err := strconv.ParseUint(strings.TrimPrefix(path, "/fake/netns/"), 10, 64)
	ns, ok := k.netns[inode]
	if err != nil || !ok {
		return nil, fmt.Errorf("open %s: no such namespace", path)
	}
	return link.NamedNetns(ns.inode, ns.cookie), nil
}

func (k *fakeKernel) FindNetns(inode, cookie uint64, _ int) *link.Netns {
	k.mu.Lock()
	defer k.mu.Unlock()
	ns, ok := k.netns[inode]
	if !ok || cookie != 0 && ns.cookie != cookie {
		return nil
	}
	return link.NamedNetns(ns.inode, ns.cookie)
}

func (k *fakeKernel) LiveNetns() map[uint64]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[uint64]string{}
	for inode := range k.netns {
		out[inode] = "/fake/netns/" + strconv.FormatUint(inode, 10)
	}
	return out
}

func (k *fakeKernel) Lookup(name string) (link.Info, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("Lookup"); err != nil {
		return link.Info{}, err
	}
	l, ok := k.links[name]
	if !ok {
		return link.Info{}, fmt.Errorf("%s: %w", name, link.ErrNotFound)
	}
	return l.info, nil
}

// LookupParent gives what the real one does: Lookup's index, MTU, MAC and
// state, no kind or VLAN, so that nothing comes to rely on those.
func (k *fakeKernel) LookupParent(name string) (link.Info, error) {
	in, err := k.Lookup(name)
	return link.Info{Name: in.Name, Index: in.Index, MTU: in.MTU, Up: in.Up, MAC: in.MAC}, err
}

func (k *fakeKernel) Probe(driver string) error {
	if k.missing[driver] {
		return fmt.Errorf("%s interfaces are %w", driver, link.ErrUnsupported)
	}
	return nil
}

func (k *fakeKernel) CreateVLAN(base string, vid int, name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("CreateVLAN"); err != nil {
		return err
	}
	b, ok := k.links[base]
	if !ok {
		return fmt.Errorf("VLAN base %s: %w", base, link.ErrNotFound)
	}
	if _, ok := k.links[name]; ok {
		return fmt.Errorf("create %s: %w", name, syscall.EEXIST)
	}
	in := k.addLinkLocked(name, "vlan", b.info.MTU, "vlan")
	in.VLAN, in.Base = vid, base
	k.links[name].info = in
	return nil
}

func (k *fakeKernel) CreateDummy(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("CreateDummy"); err != nil {
		return err
	}
	if _, ok := k.links[name]; ok {
		return fmt.Errorf("create %s: %w", name, syscall.EEXIST)
	}
	k.addLinkLocked(name, "dummy", 1500, "dummy")
	return nil
}

// Delete removes a host link and, as the kernel does, every slave on it.
func (k *fakeKernel) Delete(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("Delete"); err != nil {
		return err
	}
	l, ok := k.links[name]
	if !ok {
		return nil
	}
	for _, ns := range k.netns {
		for n, i := range ns.ifs {
			if i.parent == l.info.Index {
				delete(ns.ifs, n)
			}
		}
	}
	delete(k.links, name)
	return nil
}

// slavesOf returns the slaves of the parent with index idx.
func (k *fakeKernel) slavesOf(idx int) []*fakeIf {
	var out []*fakeIf
	for _, ns := range k.netns {
		for _, i := range ns.ifs {
			if i.parent == idx {
				out = append(out, i)
			}
		}
	}
	return out
}

func (k *fakeKernel) CreateSlave(h *link.Netns, s link.Slave) error {
	k.await("CreateSlave")
	// The real one calls it once the interface exists and deletes that
	// again on its error: the same outcome as calling it first.
	if s.Addressed != nil {
		if err := s.Addressed(&s); err != nil {
			return err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("CreateSlave"); err != nil {
		return err
	}
	ns, ok := k.netns[h.Inode]
	if !ok {
		return errors.New("container namespace is gone")
	}
	var parent *fakeLink
	for _, l := range k.links {
		if l.info.Index == s.ParentIndex {
			parent = l
		}
	}
	if parent == nil {
		return fmt.Errorf("create %s: parent index %d: %w", s.Kind, s.ParentIndex, syscall.ENODEV)
	}
	if s.MTU > parent.info.MTU {
		return fmt.Errorf("create %s: MTU %d over the parent's %d: %w", s.Kind, s.MTU, parent.info.MTU, syscall.EINVAL)
	}
	mac := parent.info.MAC.String()
	if s.Kind == "macvlan" {
		mac = s.MAC.String()
	}
	for _, o := range k.slavesOf(s.ParentIndex) {
		switch {
		case o.kind != s.Kind:
			return fmt.Errorf("create %s: parent has %s slaves: %w", s.Kind, o.kind, syscall.EBUSY)
		case s.Kind == "macvlan" && (o.mode == "passthru" || s.Mode == "passthru"):
			return fmt.Errorf("create macvlan: passthru parent: %w", syscall.EBUSY)
		case s.Kind == "macvlan" && o.mac == mac:
			return fmt.Errorf("bring %s up: %w", s.Name, syscall.EADDRINUSE)
		case s.Kind == "ipvlan":
			for _, a := range s.Addrs {
				if slices.ContainsFunc(o.addrs, func(b netip.Prefix) bool { return b.Addr() == a.Addr() }) {
					return fmt.Errorf("add address %s: %w", a, syscall.EADDRINUSE)
				}
			}
		}
	}
	if _, ok := ns.ifs[s.Name]; ok {
		return fmt.Errorf("rename to %s: the container already has an interface %s", s.Name, s.Name)
	}
	ns.ifs[s.Name] = &fakeIf{kind: s.Kind, mode: s.Mode, parent: s.ParentIndex, mac: mac, mtu: s.MTU,
		addrs: slices.Clone(s.Addrs), up: true}
	return nil
}

func (k *fakeKernel) Strip(h *link.Netns, name string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("Strip"); err != nil {
		return true, err
	}
	ns, ok := k.netns[h.Inode]
	if !ok {
		return false, nil
	}
	i, ok := ns.ifs[name]
	if ok {
		i.addrs = nil
	}
	return ok, nil
}

func (k *fakeKernel) DeleteSlave(h *link.Netns, names ...string) error {
	k.await("DeleteSlave")
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("DeleteSlave"); err != nil {
		return err
	}
	if ns, ok := k.netns[h.Inode]; ok {
		for _, n := range names {
			delete(ns.ifs, n)
		}
	}
	return nil
}

func (k *fakeKernel) DeleteSlaveMatching(h *link.Netns, name, mac string, addrs []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	ns, ok := k.netns[h.Inode]
	if !ok {
		return nil
	}
	i, ok := ns.ifs[name]
	if !ok || i.mac != mac {
		return nil
	}
	match := len(addrs) == 0 || len(i.addrs) == 0
	for _, a := range i.addrs {
		match = match || slices.Contains(addrs, a.String())
	}
	if match {
		delete(ns.ifs, name)
	}
	return nil
}

// Answering says which of addrs an interface in some namespace holds.
func (k *fakeKernel) Answering(_ string, addrs []netip.Addr, _ time.Duration) (map[netip.Addr]bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[netip.Addr]bool{}
	for _, a := range addrs {
		for _, ns := range k.netns {
			for _, i := range ns.ifs {
				out[a] = out[a] || slices.ContainsFunc(i.addrs, func(p netip.Prefix) bool { return p.Addr() == a })
			}
		}
	}
	return out, nil
}

// Announce records the gratuitous ARPs out of a parent in announced: one
// per IPv4 address, as the real one sends.
func (k *fakeKernel) Announce(parent int, mac net.HardwareAddr, addrs []netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failing("Announce"); err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Is4() {
			k.announced = append(k.announced, fmt.Sprintf("%d %s %s", parent, mac, a))
		}
	}
	return nil
}

var _ Kernel = (*fakeKernel)(nil)

// faultyStore is the real store whose writes can be made to fail by name
// with the kernel's failNext: "BeginIntent", "PutEndpoint",
// "DeleteEndpoints", "CreateNetwork", "PutLink".
type faultyStore struct {
	*store.Store
	k *fakeKernel
}

// write fails with the error op is to fail with, else does it.
func (s faultyStore) write(op string, do func() error) error {
	if err := s.k.take(op); err != nil {
		return err
	}
	return do()
}

func (s faultyStore) BeginIntent(ep api.Endpoint) error {
	return s.write("BeginIntent", func() error { return s.Store.BeginIntent(ep) })
}

func (s faultyStore) PutEndpoint(ep api.Endpoint) error {
	return s.write("PutEndpoint", func() error { return s.Store.PutEndpoint(ep) })
}

func (s faultyStore) DeleteEndpoints(eps []api.Endpoint) error {
	return s.write("DeleteEndpoints", func() error { return s.Store.DeleteEndpoints(eps) })
}

func (s faultyStore) CreateNetwork(n api.Network) error {
	return s.write("CreateNetwork", func() error { return s.Store.CreateNetwork(n) })
}

func (s faultyStore) PutLink(l store.OwnedLink) error {
	return s.write("PutLink", func() error { return s.Store.PutLink(l) })
}

var _ Store = faultyStore{}

// fakeHost is a manager on a fake kernel with a real store in a temporary
// directory: everything but the kernel is what underlayd runs.
type fakeHost struct {
	t   *testing.T
	dir string
	k   *fakeKernel
	s   *store.Store
	m   *Manager
	// opts are given to every manager started (restart).
	opts []Option
	// shims are the host shims and their routes, in memory.
	shims *fakeShims
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	h := &fakeHost{t: t, dir: t.TempDir(), k: newFakeKernel(), shims: newFakeShims()}
	h.opts = []Option{WithShimKernel(h.shims)}
	h.k.addLink("eth1", "device", 1500)
	h.restart()
	t.Cleanup(func() { h.m.Wait(); h.s.Close() })
	return h
}

// restart opens the store and starts a manager on it again, as underlayd
// does after a crash or an upgrade: the kernel keeps its state.
func (h *fakeHost) restart() {
	h.t.Helper()
	if h.m != nil {
		h.m.Wait()
		h.s.Close()
	}
	s, err := store.Open(h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := New(faultyStore{s, h.k}, h.k, slog.New(slog.DiscardHandler), h.opts...)
	if err != nil {
		s.Close()
		h.t.Fatal(err)
	}
	h.s, h.m = s, m
}

func (k *fakeKernel) HasSlave(h *link.Netns, name string, addrs []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	ns, ok := k.netns[h.Inode]
	if !ok {
		return errors.New("container namespace is gone")
	}
	i, ok := ns.ifs[name]
	if !ok {
		return fmt.Errorf("interface %s is missing from the container", name)
	}
	for _, want := range addrs {
		found := false
		for _, a := range i.addrs {
			found = found || a.String() == want
		}
		if !found {
			return fmt.Errorf("interface %s lacks its address %s", name, want)
		}
	}
	return nil
}
