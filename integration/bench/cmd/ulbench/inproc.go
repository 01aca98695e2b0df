package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/daemon/store"
)

// timedStore is the bbolt store with its writes timed: it tells how much of
// an attach, a detach or a reconcile is spent committing to disk.
type timedStore struct {
	*store.Store
	mu    sync.Mutex
	spent time.Duration
	calls int
}

var _ network.Store = (*timedStore)(nil)

func (s *timedStore) time(f func() error) error {
	t0 := time.Now()
	err := f()
	d := time.Since(t0)
	s.mu.Lock()
	s.spent += d
	s.calls++
	s.mu.Unlock()
	return err
}

func (s *timedStore) PutEndpoint(ep api.Endpoint) error {
	return s.time(func() error { return s.Store.PutEndpoint(ep) })
}

func (s *timedStore) DeleteEndpoint(ep api.Endpoint) error {
	return s.time(func() error { return s.Store.DeleteEndpoint(ep) })
}

func (s *timedStore) DeleteEndpoints(eps []api.Endpoint) error {
	return s.time(func() error { return s.Store.DeleteEndpoints(eps) })
}

// take returns and resets the time spent in store writes.
func (s *timedStore) take() (time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, n := s.spent, s.calls
	s.spent, s.calls = 0, 0
	return d, n
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openManager opens the state in dir as underlayd does at start: the store
// (with its writes timed) and the manager loaded from it. close closes the
// store once the manager's background work is done.
func openManager(dir string) (m *network.Manager, ts *timedStore, close func(), err error) {
	m, close, err = openManagerWith(dir, func(s *store.Store) network.Store {
		ts = &timedStore{Store: s}
		return ts
	})
	return m, ts, close, err
}

// openManagerWith is openManager with opts, and the store wrapped by wrap.
func openManagerWith(dir string, wrap func(*store.Store) network.Store, opts ...network.Option) (*network.Manager, func(), error) {
	st, err := store.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	m, err := network.New(wrap(st), link.Host{}, discardLog(), opts...)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return m, func() { m.StopAnnouncements(); m.Wait(); st.Close() }, nil
}

// inprocResult is the daemon-side cost of attach and detach, without the
// hook process and the HTTP round trip, split into store commits and the
// rest (mostly netlink).
type inprocResult struct {
	attach, attachStore, detach, detachStore []time.Duration
	attachCommits, detachCommits             int
	// attachSteps and detachSteps are the wall time of each step that
	// network.Manager reports (Manager.Steps), in the order first seen.
	attachSteps, detachSteps stepLog
}

// stepLog collects the step timings Manager.Steps reports.
type stepLog struct {
	mu    sync.Mutex
	order []string
	ds    map[string][]time.Duration
}

func (l *stepLog) record(step string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ds == nil {
		l.ds = map[string][]time.Duration{}
	}
	if _, ok := l.ds[step]; !ok {
		l.order = append(l.order, step)
	}
	l.ds[step] = append(l.ds[step], d)
}

// inprocAttach drives network.Manager directly, the code underlayd runs
// behind its socket, with a CPU profile of the attach loop. Each attach
// (and detach) is followed, outside the timing, by the same operation of
// each of others on its own container, as in the sequential run, so the
// disk and the kernel see the same pattern (fsync after idle, other links
// being made).
func inprocAttach(dir string, n int, profile string, others []*contender) (*inprocResult, error) {
	m, ts, closeStore, err := openManager(dir)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	if _, err := m.Create(api.NetworkCreate{Name: "ulbinproc", Driver: "macvlan", Subnets: []string{"10.204.0.0/16"},
		Gateways: []string{"10.204.0.1"}, Options: map[string]string{"parent": parentInproc}}); err != nil {
		return nil, err
	}
	conts, err := newContainers("ulb-inproc", n)
	if err != nil {
		return nil, err
	}
	defer killContainers(conts)
	oc := make([][]*container, len(others))
	for k, o := range others {
		if oc[k], err = newContainers("ulb-inproc-"+o.Name, n); err != nil {
			return nil, err
		}
		defer killContainers(oc[k])
	}
	interleave := func(i int, attach bool) error {
		for k, o := range others {
			op := o.Detach
			if attach {
				op = o.Attach
			}
			if _, err := op(oc[k][i], 3000+i); err != nil {
				return fmt.Errorf("%s beside the in-process run: %w", o.Name, err)
			}
		}
		return nil
	}
	r := &inprocResult{}
	steps := &r.attachSteps
	m.Steps = func(step string, d time.Duration) { steps.record(step, d) }
	stop, err := startProfile(profile)
	if err != nil {
		return nil, err
	}
	ts.take()
	for i, c := range conts {
		if err := interleave(i, true); err != nil {
			stop()
			return nil, err
		}
		ts.take()
		t0 := time.Now()
		_, err := m.Attach(api.AttachRequest{ContainerID: c.ID, Pid: c.Pid, Networks: []api.NetworkAttach{{Name: "ulbinproc"}}})
		d := time.Since(t0)
		if err != nil {
			stop()
			return nil, fmt.Errorf("in-process attach: %w", err)
		}
		sd, calls := ts.take()
		r.attach, r.attachStore, r.attachCommits = append(r.attach, d), append(r.attachStore, sd), calls
	}
	steps = &r.detachSteps
	for i, c := range conts {
		if err := interleave(i, false); err != nil {
			stop()
			return nil, err
		}
		ts.take()
		t0 := time.Now()
		_, err := m.Detach(api.DetachRequest{ContainerID: c.ID, Pid: c.Pid})
		d := time.Since(t0)
		if err != nil {
			stop()
			return nil, fmt.Errorf("in-process detach: %w", err)
		}
		sd, calls := ts.take()
		r.detach, r.detachStore, r.detachCommits = append(r.detach, d), append(r.detachStore, sd), calls
		m.Wait() // the interface's deletion, in the background, must not overlap the next contender
	}
	stop()
	for _, c := range conts[:min(3, len(conts))] {
		if err := checkDetached(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// inprocReconcile loads a state directory into network.Manager and runs
// the reconcile underlayd runs at start, timing its store commits, with a
// CPU profile.
func inprocReconcile(dir, profile string) (total, load, storeTime time.Duration, commits, released int, err error) {
	stop, err := startProfile(profile)
	if err != nil {
		return
	}
	defer stop()
	t0 := time.Now()
	m, ts, closeStore, err := openManager(dir)
	if err != nil {
		return
	}
	defer closeStore()
	load = time.Since(t0)
	ts.take()
	released, err = m.Reconcile()
	total = time.Since(t0)
	storeTime, commits = ts.take()
	return
}

// startProfile starts a CPU profile to path ("" = none).
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}, nil
}

// linkFloor times underlayd's own netlink package alone: CreateSlave (make
// the macvlan inside the netns under its final name, its sysctls, address,
// up, default route; its announcement is sent in the background, as
// underlayd does) and DeleteSlave, with no store and no locks.
func linkFloor(n int) (create, del []time.Duration, err error) {
	conts, err := newContainers("ulb-link", n)
	if err != nil {
		return nil, nil, err
	}
	defer killContainers(conts)
	parent, err := link.Lookup(parentInproc)
	if err != nil {
		return nil, nil, err
	}
	var sends sync.WaitGroup
	defer sends.Wait()
	for i, c := range conts {
		ns, err := link.OpenPid(c.Pid)
		if err != nil {
			return nil, nil, err
		}
		mac, _ := link.RandomMAC()
		s := link.Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "eth0", MTU: parent.MTU, MAC: mac,
			Addrs:    []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 205, byte((i + 2) >> 8), byte(i + 2)}), 16)},
			Gateways: []netip.Addr{netip.MustParseAddr("10.205.0.1")},
			Announce: func(a *link.Announcement) { sends.Go(func() { _ = a.Send() }) }}
		t0 := time.Now()
		err = link.CreateSlave(ns, s)
		d1 := time.Since(t0)
		if err == nil {
			err = checkAttached(c, "10.205.")
		}
		if err != nil {
			ns.Close()
			return nil, nil, fmt.Errorf("link.CreateSlave: %w", err)
		}
		t0 = time.Now()
		err = link.DeleteSlave(ns, "eth0")
		d2 := time.Since(t0)
		ns.Close()
		if err != nil {
			return nil, nil, err
		}
		create, del = append(create, d1), append(del, d2)
	}
	return create, del, nil
}

// findVanished times link.FindNetns for a namespace that no longer exists,
// which is what detach does after a container exited: it looks through
// every process's namespace before giving up.
func findVanished(n int) ([]time.Duration, int, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if ns := link.FindNetns(1, 0, 0); ns != nil {
			ns.Close()
			return nil, 0, fmt.Errorf("found a namespace with inode 1")
		}
		ds = append(ds, time.Since(t0))
	}
	ents, _ := os.ReadDir("/proc")
	procs := 0
	for _, e := range ents {
		if c := e.Name()[0]; c >= '0' && c <= '9' {
			procs++
		}
	}
	return ds, procs, nil
}

// detachUnknown loads a copy of t into network.Manager and times Detach of
// containers it has no endpoint for: the fixed cost of every detach at that
// many endpoints (the containerd event path and poststop both call it).
func detachUnknown(t *template, dir string, n int, profile string) ([]time.Duration, error) {
	if err := t.copyTo(dir); err != nil {
		return nil, err
	}
	m, _, closeStore, err := openManager(dir)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	if got := len(m.Endpoints()); got != len(t.Leases) {
		return nil, fmt.Errorf("loaded %d endpoints, want %d", got, len(t.Leases))
	}
	stop, err := startProfile(profile)
	if err != nil {
		return nil, err
	}
	defer stop()
	var ds []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := m.Detach(api.DetachRequest{Namespace: "ulb", ContainerID: fmt.Sprintf("ulb-nobody-%d", i)}); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}
