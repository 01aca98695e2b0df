package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	tests := []struct {
		name             string
		xs               []float64
		median, p90, p99 float64
	}{
		{"one", []float64{3}, 3, 3, 3},
		{"even count: mean of the middle two", []float64{4, 1, 3, 2}, 2.5, 4, 4},
		{"nearest rank", seq(200), 100.5, 180, 198},
		{"ten", seq(10), 5.5, 9, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := summarise("g", "n", "ms", tt.xs)
			if r.Median != tt.median || r.P90 != tt.p90 || r.P99 != tt.p99 || r.N != len(tt.xs) {
				t.Errorf("got median %v p90 %v p99 %v n %d; want %v %v %v %d", r.Median, r.P90, r.P99, r.N, tt.median, tt.p90, tt.p99, len(tt.xs))
			}
		})
	}
	if r := summarise("g", "n", "ms", nil); r.N != 0 || r.Median != 0 {
		t.Errorf("empty: %+v", r)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
}

func seq(n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = float64(n - i) // reversed: summarise must sort
	}
	return xs
}

func TestCompareAndTargets(t *testing.T) {
	rep := &Report{}
	rep.add(durations("attach", "underlay hook createRuntime, sequential", []time.Duration{10 * time.Millisecond}))
	rep.add(durations("attach", "CNI macvlan+host-local ADD, sequential", []time.Duration{40 * time.Millisecond}))
	rep.add(durations("attach", "netavark setup (static IP), sequential", []time.Duration{20 * time.Millisecond}))
	rep.compare("underlay hook createRuntime, sequential", "CNI macvlan+host-local ADD, sequential")
	if r := rep.find("underlay hook createRuntime, sequential"); r.VsCNI != 0.25 {
		t.Fatalf("ratio %v, want 0.25", r.VsCNI)
	}
	targets(rep)
	var b strings.Builder
	rep.Print(&b)
	for _, want := range []string{"MET    attach median <= 1/3 of CNI ADD (sequential)", "0.25x", "SKIP   detach (poststop, netns alive)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestLogField(t *testing.T) {
	line := `time=2026-01-01T00:00:00.000Z level=INFO msg=detached network=ulbnet container=ulb/ulb-ev-0001 ifname=eth0`
	if got := logField(line, "container"); got != "ulb/ulb-ev-0001" {
		t.Errorf("container = %q", got)
	}
	if got := logField(line, "nothere"); got != "" {
		t.Errorf("missing key = %q", got)
	}
}

func TestBenchMetrics(t *testing.T) {
	out := "goos: linux\nBenchmarkVMVLANParents-2   \t       1\t12345678901 ns/op\t        6012 create-ms/1000\t         6.012 create-ms/parent\t     20001 remove-ms/1000\t        20.00 remove-ms/parent\nPASS\n"
	m, err := benchMetrics(out, "BenchmarkVMVLANParents")
	if err != nil {
		t.Fatal(err)
	}
	if m["create-ms/1000"] != 6012 || m["remove-ms/parent"] != 20 || m["ns/op"] != 12345678901 {
		t.Errorf("metrics %v", m)
	}
	if _, err := benchMetrics("PASS\n", "BenchmarkVMVLANParents"); err == nil {
		t.Error("no result line: want an error")
	}
}
