package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
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

// take returns and resets the time spent in store writes.
func (s *timedStore) take() (time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, n := s.spent, s.calls
	s.spent, s.calls = 0, 0
	return d, n
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// inprocResult is the daemon-side cost of attach and detach, without the
// hook process and the HTTP round trip, split into store commits and the
// rest (mostly netlink).
type inprocResult struct {
	attach, attachStore, detach, detachStore []time.Duration
	attachCommits, detachCommits            int
}

// inprocAttach drives network.Manager directly, the code underlayd runs
// behind its socket, with a CPU profile of the attach loop.
func inprocAttach(dir string, n int, profile string) (*inprocResult, error) {
	st, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ts := &timedStore{Store: st}
	m, err := network.New(ts, discardLog())
	if err != nil {
		return nil, err
	}
	if _, err := m.Create(api.NetworkCreate{Name: "ulbinproc", Driver: "macvlan", Subnets: []string{"10.204.0.0/16"},
		Gateways: []string{"10.204.0.1"}, Options: map[string]string{"parent": parentInproc}}); err != nil {
		return nil, err
	}
	conts, err := newContainers("ulb-inproc", n)
	if err != nil {
		return nil, err
	}
	defer killContainers(conts)
	r := &inprocResult{}
	stop, err := startProfile(profile)
	if err != nil {
		return nil, err
	}
	ts.take()
	for _, c := range conts {
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
	for _, c := range conts {
		t0 := time.Now()
		_, err := m.Detach(api.DetachRequest{ContainerID: c.ID, Pid: c.Pid})
		d := time.Since(t0)
		if err != nil {
			stop()
			return nil, fmt.Errorf("in-process detach: %w", err)
		}
		sd, calls := ts.take()
		r.detach, r.detachStore, r.detachCommits = append(r.detach, d), append(r.detachStore, sd), calls
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
	t0 := time.Now()
	st, err := store.Open(dir)
	if err != nil {
		return
	}
	defer st.Close()
	ts := &timedStore{Store: st}
	stop, err := startProfile(profile)
	if err != nil {
		return
	}
	defer stop()
	m, err := network.New(ts, discardLog())
	if err != nil {
		return
	}
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
