package main

import (
	"fmt"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/metrics"
	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/daemon/server"
	"github.com/underlay/underlay/daemon/store"
)

// The cost of observability: two network.Managers in this process, one
// as underlayd runs without --metrics-address and one as it runs with it
// (Prometheus' observer, the store's commits timed, the event broker with
// an `underlay events` reader, a scrape every second), attach and detach
// alternately, each on its own network on the same parent. The difference
// of their medians is what the metrics cost an attach.

// metricsResult is the interleaved run's samples.
type metricsResult struct {
	attachOff, attachOn, detachOff, detachOn []time.Duration
	// observe is the time of one event through the metrics and the
	// broker (with a reader), in a tight loop.
	observe time.Duration
}

// openManagerWith opens a state dir as openManager does, with opts and
// the store wrapped by wrap.
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
	return m, func() { m.Wait(); st.Close() }, nil
}

func inprocMetrics(work string, n int) (*metricsResult, error) {
	off, closeOff, err := openManagerWith(sub(work, "off"), func(s *store.Store) network.Store { return s })
	if err != nil {
		return nil, err
	}
	defer closeOff()
	mets, broker := metrics.New(), &server.Broker{}
	broker.Dropped = mets.StreamDropped
	on, closeOn, err := openManagerWith(sub(work, "on"),
		func(s *store.Store) network.Store { return metrics.TimedStore{Store: s, M: mets} },
		network.WithObserver(broker), network.WithObserver(mets))
	if err != nil {
		return nil, err
	}
	defer closeOn()
	mets.AddSource(on)
	events, unsubscribe := broker.Subscribe()
	defer unsubscribe()
	go func() {
		for range events { // an `underlay events` reader
		}
	}()
	stopScrape := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopScrape:
				scraped <- nil
				return
			case <-t.C:
				if _, err := mets.Gatherer().Gather(); err != nil {
					scraped <- err
					return
				}
			}
		}
	}()
	defer func() { close(stopScrape); <-scraped }()

	for _, x := range []struct {
		m      *network.Manager
		name   string
		subnet string
	}{{off, "ulbmoff", "10.210"}, {on, "ulbmon", "10.211"}} {
		if _, err := x.m.Create(api.NetworkCreate{Name: x.name, Driver: "macvlan", Subnets: []string{x.subnet + ".0.0/16"},
			Gateways: []string{x.subnet + ".0.1"}, Options: map[string]string{"parent": parentInproc}}); err != nil {
			return nil, err
		}
	}
	cOff, err := newContainers("ulb-moff", n)
	if err != nil {
		return nil, err
	}
	defer killContainers(cOff)
	cOn, err := newContainers("ulb-mon", n)
	if err != nil {
		return nil, err
	}
	defer killContainers(cOn)

	r := &metricsResult{}
	attach := func(m *network.Manager, c *container, net string) (time.Duration, error) {
		t0 := time.Now()
		_, err := m.Attach(api.AttachRequest{ContainerID: c.ID, Pid: c.Pid, Networks: []api.NetworkAttach{{Name: net}}})
		return time.Since(t0), err
	}
	detach := func(m *network.Manager, c *container) (time.Duration, error) {
		t0 := time.Now()
		_, err := m.Detach(api.DetachRequest{ContainerID: c.ID, Pid: c.Pid})
		d := time.Since(t0)
		m.Wait() // the link's deletion in the background must not overlap the other side
		return d, err
	}
	for i := 0; i < n; i++ {
		// Alternate which goes first, so that neither always follows the
		// other's fsync.
		for k := 0; k < 2; k++ {
			if (i+k)%2 == 0 {
				d, err := attach(off, cOff[i], "ulbmoff")
				if err != nil {
					return nil, fmt.Errorf("attach, metrics off: %w", err)
				}
				r.attachOff = append(r.attachOff, d)
			} else {
				d, err := attach(on, cOn[i], "ulbmon")
				if err != nil {
					return nil, fmt.Errorf("attach, metrics on: %w", err)
				}
				r.attachOn = append(r.attachOn, d)
			}
		}
	}
	for i := 0; i < n; i++ {
		for k := 0; k < 2; k++ {
			if (i+k)%2 == 0 {
				d, err := detach(off, cOff[i])
				if err != nil {
					return nil, fmt.Errorf("detach, metrics off: %w", err)
				}
				r.detachOff = append(r.detachOff, d)
			} else {
				d, err := detach(on, cOn[i])
				if err != nil {
					return nil, fmt.Errorf("detach, metrics on: %w", err)
				}
				r.detachOn = append(r.detachOn, d)
			}
		}
	}
	if got := len(on.Endpoints()); got != 0 {
		return nil, fmt.Errorf("%d endpoints left after the metrics run", got)
	}

	// One event's way through both observers.
	e := api.Event{Type: api.EventAttach, Network: "ulbmon", Driver: "macvlan", Container: "x", IfName: "eth0",
		Addresses: []string{"10.211.0.2/16"}, Result: api.ResultOK, Seconds: 0.001}
	const loops = 100000
	t0 := time.Now()
	for i := 0; i < loops; i++ {
		mets.Observe(e)
		broker.Observe(e)
	}
	r.observe = time.Since(t0) / loops
	return r, nil
}

// metricsRows adds the run's rows, and the paired differences: each
// attach with metrics on minus the one without it next to it, whose median
// is steadier than the difference of two medians.
func metricsRows(rep *Report, r *metricsResult) {
	note := "interleaved with the other side; on = Prometheus observer, timed store, event broker with a reader, a scrape every second"
	off := rep.add(durations("daemon", "Manager.Attach, metrics off", r.attachOff))
	off.Note = note
	onr := rep.add(durations("daemon", "Manager.Attach, metrics on", r.attachOn))
	onr.Note = fmt.Sprintf("%+.3f ms at the median", onr.Median-off.Median)
	rep.add(durations("daemon", "Manager.Attach, metrics on minus off (paired)", paired(r.attachOff, r.attachOn)))
	doff := rep.add(durations("daemon", "Manager.Detach, metrics off", r.detachOff))
	don := rep.add(durations("daemon", "Manager.Detach, metrics on", r.detachOn))
	don.Note = fmt.Sprintf("%+.3f ms at the median", don.Median-doff.Median)
	rep.add(durations("daemon", "Manager.Detach, metrics on minus off (paired)", paired(r.detachOff, r.detachOn)))
	rep.add(single("daemon", "one event through the metrics and the event broker", "ms", ms(r.observe)))
}
