package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/underlay/underlay/ipam/etcd"
)

// etcdMetrics are the shared store's (underlayd --store etcd://...).
type etcdMetrics struct {
	seconds   *prometheus.HistogramVec
	failures  *prometheus.CounterVec
	compareNo prometheus.Counter
}

// Buckets of an etcd request: a round trip to a local member takes about a
// millisecond, one that waits for a fsync a few, --etcd-timeout ends it.
var etcdBuckets = []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// TimeEtcd registers the shared store's metrics and returns kv with its
// requests counted and timed, and pending counting the releases etcd has
// not taken yet, read at each scrape.
func (m *Metrics) TimeEtcd(kv etcd.KV, pending func() int) etcd.KV {
	e := &etcdMetrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "underlay_etcd_request_duration_seconds",
			Help: "Time of a request to etcd (get, list, txn) that answered, successful or not.", Buckets: etcdBuckets}, []string{"op"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "underlay_etcd_request_failures_total",
			Help: "Requests to etcd that got no answer: unreachable, no quorum, or --etcd-timeout passed."}, []string{"op"}),
		compareNo: prometheus.NewCounter(prometheus.CounterOpts{Name: "underlay_etcd_compare_failures_total",
			Help: "Transactions whose compare failed: mostly another host taking the address this one picked."}),
	}
	for _, op := range []string{"get", "list", "txn"} {
		e.seconds.WithLabelValues(op)
		e.failures.WithLabelValues(op)
	}
	m.reg.MustRegister(e.seconds, e.failures, e.compareNo,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "underlay_etcd_pending_releases",
			Help: "Released global addresses kept on this host until etcd takes the release."},
			func() float64 { return float64(pending()) }))
	return timedKV{kv, e}
}

// timedKV is a KV whose requests etcdMetrics counts.
type timedKV struct {
	etcd.KV
	m *etcdMetrics
}

func (k timedKV) done(op string, start time.Time, err error) {
	if err != nil {
		k.m.failures.WithLabelValues(op).Inc()
		return
	}
	k.m.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (k timedKV) Get(ctx context.Context, key string) (etcd.Pair, error) {
	start := time.Now()
	p, err := k.KV.Get(ctx, key)
	k.done("get", start, err)
	return p, err
}

func (k timedKV) List(ctx context.Context, prefix string) ([]etcd.Pair, int64, error) {
	start := time.Now()
	ps, rev, err := k.KV.List(ctx, prefix)
	k.done("list", start, err)
	return ps, rev, err
}

func (k timedKV) Txn(ctx context.Context, ifs []etcd.Cmp, then []etcd.Op, reads []string) (bool, int64, []etcd.Pair, error) {
	start := time.Now()
	ok, rev, got, err := k.KV.Txn(ctx, ifs, then, reads)
	k.done("txn", start, err)
	if err == nil && !ok {
		k.m.compareNo.Inc()
	}
	return ok, rev, got, err
}
