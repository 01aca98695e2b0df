package main

import (
	"fmt"
	"time"

	"github.com/underlay/underlay/daemon/api"
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
	type side struct {
		m              *network.Manager
		cs             []*container
		net, what      string
		attach, detach *[]time.Duration
	}
	sides := [2]side{{off, cOff, "ulbmoff", "metrics off", &r.attachOff, &r.detachOff},
		{on, cOn, "ulbmon", "metrics on", &r.attachOn, &r.detachOn}}
	for _, op := range []string{"attach", "detach"} {
		for i := 0; i < n; i++ {
			// Alternate which goes first, so that neither always
			// follows the other's commit.
			for k := 0; k < 2; k++ {
				s := sides[(i+k)%2]
				c := s.cs[i]
				t0 := time.Now()
				var err error
				if op == "attach" {
					_, err = s.m.Attach(api.AttachRequest{ContainerID: c.ID, Pid: c.Pid, Networks: []api.NetworkAttach{{Name: s.net}}})
					*s.attach = append(*s.attach, time.Since(t0))
				} else {
					_, err = s.m.Detach(api.DetachRequest{ContainerID: c.ID, Pid: c.Pid})
					*s.detach = append(*s.detach, time.Since(t0))
					s.m.Wait() // the link's deletion in the background must not overlap the other side
				}
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", op, s.what, err)
				}
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
