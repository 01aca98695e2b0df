package network

import (
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/metrics"
	"github.com/underlay/underlay/daemon/metrics/metricstest"
)

// recorder keeps the events it is told, as `underlay events` shows them.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Observe(e api.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := e.Type + " " + e.Network + " " + e.Container + " " + e.Path + " " + e.Result
	r.events = append(r.events, strings.Join(strings.Fields(s), " "))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// Every metric moves as an operator reads it across an attach, a failed
// attach, a detach, a reconcile release, an owned parent's life and a
// network's removal; the events say the same, in order.
func TestFakeMetrics(t *testing.T) {
	h := newFakeHost(t)
	mets, rec := metrics.New(), &recorder{}
	h.opts = append(h.opts, WithObserver(mets), WithObserver(rec))
	h.restart()
	mets.AddSource(h.m)
	value := func(name string, labels ...string) float64 {
		t.Helper()
		return metricstest.Value(t, mets.Gatherer(), name, labels...)
	}
	want := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}

	h.create(netReq("lan", "macvlan", "10.1.0.0/24", "parent=eth1.30"))
	// The VLAN parent is made at once, to check it can be.
	same(t, "events of the create", rec.take(), []string{"parent-create lan", "network-create lan"})
	// Every result's counter exists at zero before its first attach, so
	// that an alert on its increase sees the first failure.
	for _, r := range api.Results {
		want("attaches "+r+" before any", value("underlay_attaches_total", "network", "lan", "driver", "macvlan", "result", r), 0)
	}
	c1 := h.start(on("c1", 1, "lan"))
	want("attaches ok", value("underlay_attaches_total", "network", "lan", "driver", "macvlan", "result", "ok"), 1)
	want("attach durations", value("underlay_attach_duration_seconds", "network", "lan"), 1)
	want("in use", value("underlay_addresses_in_use", "network", "lan", "subnet", "10.1.0.0/24"), 1)
	// A /24 less network, broadcast, gateway and c1's address.
	want("free", value("underlay_addresses_free", "network", "lan", "subnet", "10.1.0.0/24"), 252)
	want("endpoints", value("underlay_endpoints", "network", "lan"), 1)
	want("owned parents", value("underlay_owned_parents"), 1)

	taken := api.AttachRequest{ContainerID: "c2", Pid: 2, Networks: []api.NetworkAttach{{Name: "lan", IP: strings.Split(c1[0].Addresses[0], "/")[0]}}}
	if _, err := h.attach(taken); err == nil {
		t.Fatal("attach with a taken address succeeded")
	}
	if _, err := h.attach(on("c3", 3, "nosuch")); err == nil {
		t.Fatal("attach to an unknown network succeeded")
	}
	want("attaches refused: address in use", value("underlay_attaches_total", "network", "lan", "result", "in_use"), 1)
	// An unknown network's name never becomes a label.
	want("attaches refused: no such network", value("underlay_attaches_total", "network", "", "result", "not_found"), 1)
	want("in use after the refusals", value("underlay_addresses_in_use", "network", "lan"), 1)

	h.stop("", "c1")
	want("detaches ok", value("underlay_detaches_total", "network", "lan", "result", "ok"), 1)
	want("released by poststop", value("underlay_releases_total", "network", "lan", "path", "poststop"), 1)
	want("in use after the detach", value("underlay_addresses_in_use", "network", "lan"), 0)
	want("owned parents after the last detach", value("underlay_owned_parents"), 0)
	want("parents created", value("underlay_parent_operations_total", "op", "create"), 1)
	want("parents removed", value("underlay_parent_operations_total", "op", "remove"), 1)

	h.start(on("c4", 4, "lan"))
	h.k.kill(4)
	before := max(0, value("underlay_reconciles_total", "path", "reconcile", "result", "ok"))
	if n, err := h.m.Reconcile(); n != 1 || err != nil {
		t.Fatalf("reconcile released %d, %v; want 1", n, err)
	}
	want("released by reconcile", value("underlay_releases_total", "network", "lan", "path", "reconcile"), 1)
	want("reconcile runs", value("underlay_reconciles_total", "path", "reconcile", "result", "ok"), before+1)
	want("released by reconcile runs", value("underlay_reconcile_released_total", "path", "reconcile"), 1)
	want("endpoints after the reconcile", value("underlay_endpoints", "network", "lan"), 0)

	same(t, "events", rec.take(), []string{
		"attach lan c1 ok",
		"attach lan c2 in_use", "attach c3 not_found",
		"detach lan c1 poststop ok", "parent-remove",
		"parent-create lan", "attach lan c4 ok",
		"detach lan c4 reconcile ok", "parent-remove", "reconcile reconcile ok",
	})

	if err := h.m.Remove("lan"); err != nil {
		t.Fatal(err)
	}
	want("a removed network's attach counts", value("underlay_attaches_total", "network", "lan"), -1)
	want("a removed network's usage", value("underlay_addresses_in_use", "network", "lan"), -1)

	problems, err := testutil.GatherAndLint(mets.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}
