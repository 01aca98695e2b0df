package metrics

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/underlay/underlay/daemon/metrics/metricstest"
	"github.com/underlay/underlay/ipam/etcd"
)

// scriptKV answers Txn with ok, or err, and Get with err.
type scriptKV struct {
	etcd.KV
	ok  bool
	err error
}

func (k *scriptKV) Get(context.Context, string) (etcd.Pair, error) { return etcd.Pair{}, k.err }
func (k *scriptKV) Txn(context.Context, []etcd.Cmp, []etcd.Op, []string) (bool, int64, []etcd.Pair, error) {
	return k.ok, 7, nil, k.err
}

// The shared store's metrics: answered requests timed by op, lost
// compares counted, requests without an answer counted apart, pending
// releases read at the scrape.
func TestTimeEtcd(t *testing.T) {
	m := New()
	pending := 0
	fake := &scriptKV{ok: true}
	kv := m.TimeEtcd(fake, func() int { return pending })
	ctx := context.Background()
	_, _, _, _ = kv.Txn(ctx, nil, nil, nil)
	fake.ok = false
	_, _, _, _ = kv.Txn(ctx, nil, nil, nil)
	fake.err = errors.New("context deadline exceeded")
	_, _, _, _ = kv.Txn(ctx, nil, nil, nil)
	_, _ = kv.Get(ctx, "k")
	pending = 3

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"underlay_etcd_request_duration_seconds", []string{"op", "txn"}, 2},
		{"underlay_etcd_request_duration_seconds", []string{"op", "get"}, 0},
		{"underlay_etcd_request_failures_total", []string{"op", "txn"}, 1},
		{"underlay_etcd_request_failures_total", []string{"op", "get"}, 1},
		{"underlay_etcd_request_failures_total", []string{"op", "list"}, 0},
		{"underlay_etcd_compare_failures_total", nil, 1},
		{"underlay_etcd_pending_releases", nil, 3},
	} {
		if got := metricstest.Value(t, m.Gatherer(), c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}
