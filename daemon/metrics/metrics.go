// Package metrics is underlayd's Prometheus registry: counters and
// histograms fed by the network manager's events, gauges read from the
// manager when Prometheus scrapes, and the listener's /metrics, /healthz
// and /readyz. Labels name networks, drivers, results and paths, never
// containers, so the number of series grows with the networks only; a
// removed network's series go with it.
package metrics

import (
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/underlay/underlay/daemon/api"
)

// Source is what the gauges read at each scrape: the network manager.
type Source interface {
	Usage() []api.NetworkUsage
	OwnedParents() int
}

// Buckets of the attach and detach durations: a plain attach takes about
// a millisecond, a global one a few, a DHCP one up to its timeout.
var durationBuckets = []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics holds underlayd's collectors. Observe is its network.Observer.
type Metrics struct {
	reg *prometheus.Registry

	attaches, detaches        *prometheus.CounterVec
	attachSeconds, detachSecs *prometheus.HistogramVec
	releases                  *prometheus.CounterVec
	reconciles, reconciled    *prometheus.CounterVec
	parentOps                 *prometheus.CounterVec
	leasesLost                *prometheus.CounterVec
	eventsUp                  prometheus.Gauge
	eventsReconnects          prometheus.Counter
	streamDropped             prometheus.Counter
	storeCommit               *prometheus.HistogramVec
	ready                     atomic.Bool
	perNetwork                []*prometheus.MetricVec
	// seeded are the networks whose attach and detach counters exist at
	// zero for every result (seed).
	seeded sync.Map
}

// New makes the registry and registers every collector but the gauges
// of the networks (AddSource).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(v)
		return v
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: durationBuckets}, labels)
		m.reg.MustRegister(v)
		return v
	}
	m.attaches = counter("underlay_attaches_total", "Attaches of a container to a network, by result: ok or the error's class.", "network", "driver", "result")
	m.attachSeconds = histogram("underlay_attach_duration_seconds", "Time underlayd took to attach a container to one network.", "network", "driver")
	m.detaches = counter("underlay_detaches_total", "Endpoints released (every path), by result: ok or the error's class.", "network", "driver", "result")
	m.detachSecs = histogram("underlay_detach_duration_seconds", "Time underlayd took to release one endpoint, from the request or the reconcile that asked.", "network", "driver")
	m.releases = counter("underlay_releases_total", "Endpoints released, by what released them: poststop, event, reconcile, prune, cni-del, cni-gc, disconnect, rollback, replaced.", "network", "path")
	m.reconciles = counter("underlay_reconciles_total", "Reconcile runs, by what ran them (reconcile, prune, containerd) and result.", "path", "result")
	m.reconciled = counter("underlay_reconcile_released_total", "Endpoints released by reconcile runs, by what ran them.", "path")
	m.parentOps = counter("underlay_parent_operations_total", "Owned parents (VLAN sub-interfaces, dummies) created and removed.", "op")
	m.leasesLost = counter("underlay_dhcp_leases_lost_total", "DHCP leases the LAN's server stopped granting (the address was taken off the container).", "network")
	m.perNetwork = []*prometheus.MetricVec{m.attaches.MetricVec, m.attachSeconds.MetricVec, m.detaches.MetricVec,
		m.detachSecs.MetricVec, m.releases.MetricVec, m.leasesLost.MetricVec}

	m.eventsUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "underlay_containerd_events_connected",
		Help: "1 while underlayd follows containerd's event stream, 0 while it is cut off (only with --containerd-address)."})
	m.eventsReconnects = prometheus.NewCounter(prometheus.CounterOpts{Name: "underlay_containerd_events_reconnects_total",
		Help: "Times containerd's event stream broke and underlayd reconnected."})
	m.streamDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "underlay_event_stream_dropped_total",
		Help: "Events that `underlay events` readers missed because they read too slowly."})
	m.reg.MustRegister(m.streamDropped)
	m.storeCommit = histogram("underlay_store_commit_duration_seconds", "Time of a write transaction of the local state database, by operation.", "op")

	m.reg.MustRegister(buildInfo(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// AddSource registers the gauges that src feeds at each scrape (the
// manager, once it has loaded the state).
func (m *Metrics) AddSource(src Source) { m.reg.MustRegister(usageCollector{src, m}) }

// seed makes network's attach and detach counters exist at zero for every
// result, once: a counter that first appears at 1 has no increase in
// Prometheus' eyes, and an alert on increase(...{result!="ok"}) would
// miss a network's first failure. Every scrape seeds the networks it
// lists, so that a global network made on another host is seeded too.
func (m *Metrics) seed(network, driver string) {
	if _, done := m.seeded.LoadOrStore(network, true); done {
		return
	}
	for _, r := range api.Results {
		m.attaches.WithLabelValues(network, driver, r)
		m.detaches.WithLabelValues(network, driver, r)
	}
}

// FollowsContainerd registers the event stream's gauge and counter: a
// daemon without --containerd-address has no stream to report on.
func (m *Metrics) FollowsContainerd() {
	m.reg.MustRegister(m.eventsUp, m.eventsReconnects)
}

// ContainerdStream is told when containerd's event stream comes up or
// breaks.
func (m *Metrics) ContainerdStream(up bool) {
	if up {
		m.eventsUp.Set(1)
		return
	}
	m.eventsUp.Set(0)
	m.eventsReconnects.Inc()
}

// StreamDropped counts events a slow `underlay events` reader missed.
func (m *Metrics) StreamDropped(n int) { m.streamDropped.Add(float64(n)) }

// Commit is told the duration of one store write of kind op.
func (m *Metrics) Commit(op string, d time.Duration) {
	m.storeCommit.WithLabelValues(op).Observe(d.Seconds())
}

// Gatherer reads the registry, as /metrics does.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Registerer is where other parts of underlayd (the shared store, the
// DHCP client) add their own collectors.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Observe counts one event of the network manager. It never blocks.
func (m *Metrics) Observe(e api.Event) {
	switch e.Type {
	case api.EventAttach:
		if e.Network != "" {
			m.seed(e.Network, e.Driver)
		}
		m.attaches.WithLabelValues(e.Network, e.Driver, e.Result).Inc()
		if e.Result == api.ResultOK {
			m.attachSeconds.WithLabelValues(e.Network, e.Driver).Observe(e.Seconds)
		}
	case api.EventDetach:
		m.seed(e.Network, e.Driver)
		m.detaches.WithLabelValues(e.Network, e.Driver, e.Result).Inc()
		if e.Result == api.ResultOK {
			m.detachSecs.WithLabelValues(e.Network, e.Driver).Observe(e.Seconds)
			m.releases.WithLabelValues(e.Network, e.Path).Inc()
		}
	case api.EventReconcile:
		m.reconciles.WithLabelValues(e.Path, e.Result).Inc()
		m.reconciled.WithLabelValues(e.Path).Add(float64(e.Released))
	case api.EventParentCreate:
		m.parentOps.WithLabelValues("create").Inc()
	case api.EventParentRemove:
		m.parentOps.WithLabelValues("remove").Inc()
	case api.EventLeaseLost:
		m.leasesLost.WithLabelValues(e.Network).Inc()
	case api.EventNetworkCreate:
		m.seed(e.Network, e.Driver)
	case api.EventNetworkRemove:
		m.seeded.Delete(e.Network)
		for _, v := range m.perNetwork {
			v.DeletePartialMatch(prometheus.Labels{"network": e.Network})
		}
	}
}

// SetReady marks underlayd ready: its state is loaded, the first
// reconcile is done and the API socket answers.
func (m *Metrics) SetReady() { m.ready.Store(true) }

// Handler serves /metrics, /healthz (the process answers) and /readyz
// (SetReady was called; 503 before).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !m.ready.Load() {
			http.Error(w, "starting: loading state and reconciling", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// usageCollector reads the manager's networks at each scrape.
type usageCollector struct {
	src Source
	m   *Metrics
}

var (
	inUseDesc = prometheus.NewDesc("underlay_addresses_in_use",
		"Addresses held in a subnet: this host's and, on a global network, every host's; static ones included.", []string{"network", "subnet"}, nil)
	freeDesc = prometheus.NewDesc("underlay_addresses_free",
		"Addresses left to hand out in a subnet (its --ip-range, or the whole subnet, less those held and reserved); absent where a DHCP server decides.", []string{"network", "subnet"}, nil)
	endpointsDesc = prometheus.NewDesc("underlay_endpoints",
		"Containers' interfaces attached on this host.", []string{"network", "driver"}, nil)
	ownedDesc = prometheus.NewDesc("underlay_owned_parents",
		"Parents underlayd created (VLAN sub-interfaces, dummies) and still holds.", nil, nil)
)

func (usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inUseDesc
	ch <- freeDesc
	ch <- endpointsDesc
	ch <- ownedDesc
}

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range c.src.Usage() {
		c.m.seed(n.Name, n.Driver)
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(n.Endpoints), n.Name, n.Driver)
		for _, s := range n.Subnets {
			ch <- prometheus.MustNewConstMetric(inUseDesc, prometheus.GaugeValue, float64(s.InUse), n.Name, s.Subnet)
			if s.Free != nil {
				ch <- prometheus.MustNewConstMetric(freeDesc, prometheus.GaugeValue, *s.Free, n.Name, s.Subnet)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, float64(c.src.OwnedParents()))
}

// Version and Revision are set by the Makefile (-ldflags -X), from git;
// without them the Go build info's are used.
var Version, Revision string

// buildInfo is underlay_build_info: 1, with the version, the commit and
// the Go that built it.
func buildInfo() prometheus.Collector {
	version, revision := "(devel)", "unknown"
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	if Version != "" {
		version = Version
	}
	if Revision != "" {
		revision = Revision
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "underlay_build_info",
		Help:        "1, labelled with underlayd's version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion}})
	g.Set(1)
	return g
}
