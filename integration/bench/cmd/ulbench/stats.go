package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Result is one row of the report: a set of samples summarised, or a
// single value (RSS) with N = 1.
type Result struct {
	Group  string  `json:"group"`
	Name   string  `json:"name"`
	Unit   string  `json:"unit"` // "ms" or "MiB"
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// VsCNI is median / median of the CNI (or host-local) counterpart;
	// 0 when there is none.
	VsCNI float64 `json:"ratio_to_cni,omitempty"`
	// CNIRow names the counterpart row.
	CNIRow string `json:"cni_row,omitempty"`
	Note   string `json:"note,omitempty"`
	// Wall is the wall time of a concurrent batch, in the same unit.
	Wall float64 `json:"batch_wall,omitempty"`

	samples []float64
}

// Target is one goal from the issue, checked against the table.
type Target struct {
	Goal     string  `json:"goal"`
	Measured string  `json:"measured"`
	Met      bool    `json:"met"`
	Value    float64 `json:"value"`
	Limit    float64 `json:"limit"`
	Skipped  bool    `json:"skipped,omitempty"`
}

// Report collects everything a run prints.
type Report struct {
	Meta    map[string]string `json:"meta"`
	Results []*Result         `json:"results"`
	Targets []Target          `json:"targets"`
	Notes   []string          `json:"notes,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile uses the nearest-rank method on sorted xs: p90 of 200 samples
// is the 180th value.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// summarise builds a row from samples (in the row's unit).
func summarise(group, name, unit string, xs []float64) *Result {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	r := &Result{Group: group, Name: name, Unit: unit, N: len(s), samples: s}
	if len(s) > 0 {
		r.Median, r.P90, r.P99 = median(s), percentile(s, 90), percentile(s, 99)
		r.Min, r.Max = s[0], s[len(s)-1]
	}
	return r
}

func durations(group, name string, ds []time.Duration) *Result {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = ms(d)
	}
	return summarise(group, name, "ms", xs)
}

func single(group, name, unit string, v float64) *Result {
	return &Result{Group: group, Name: name, Unit: unit, N: 1, Median: v, P90: v, P99: v, Min: v, Max: v}
}

// add appends a row and returns it, so callers can annotate it.
func (rep *Report) add(r *Result) *Result {
	rep.Results = append(rep.Results, r)
	return r
}

func (rep *Report) find(name string) *Result {
	for _, r := range rep.Results {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// compare sets the ratio of row to its CNI counterpart (both must exist).
func (rep *Report) compare(row, cni string) {
	r, c := rep.find(row), rep.find(cni)
	if r == nil || c == nil || c.Median == 0 {
		return
	}
	r.VsCNI, r.CNIRow = r.Median/c.Median, cni
}

func fmtVal(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch {
	case unit == "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	case v >= 10000:
		return fmt.Sprintf("%.1f s", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 1:
		return fmt.Sprintf("%.2f ms", v)
	default:
		return fmt.Sprintf("%.1f µs", v*1000)
	}
}

// Print writes the table and the target check.
func (rep *Report) Print(w io.Writer) {
	nameW := 10
	for _, r := range rep.Results {
		nameW = max(nameW, len(r.Name))
	}
	line := strings.Repeat("-", nameW+78)
	fmt.Fprintln(w, line)
	fmt.Fprintf(w, "%-9s %-*s %5s %10s %10s %10s %8s  %s\n", "group", nameW, "measurement", "n", "median", "p90", "p99", "vs CNI", "note")
	fmt.Fprintln(w, line)
	last := ""
	for _, r := range rep.Results {
		if last != "" && r.Group != last {
			fmt.Fprintln(w)
		}
		last = r.Group
		ratio := ""
		if r.VsCNI > 0 {
			ratio = fmt.Sprintf("%.2fx", r.VsCNI)
		}
		note := r.Note
		if r.Wall > 0 {
			note = strings.TrimSpace(fmt.Sprintf("batch wall %s; %s", fmtVal(r.Wall, r.Unit), note))
			note = strings.TrimSuffix(note, ";")
		}
		p90, p99 := fmtVal(r.P90, r.Unit), fmtVal(r.P99, r.Unit)
		if r.N <= 1 {
			p90, p99 = "", ""
		}
		fmt.Fprintf(w, "%-9s %-*s %5d %10s %10s %10s %8s  %s\n", r.Group, nameW, r.Name, r.N,
			fmtVal(r.Median, r.Unit), p90, p99, ratio, note)
	}
	fmt.Fprintln(w, line)
	fmt.Fprintln(w, "targets (issue 5; goals to read against, not assertions):")
	for _, t := range rep.Targets {
		mark := "MET   "
		switch {
		case t.Skipped:
			mark = "SKIP  "
		case !t.Met:
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s %-58s %s\n", mark, t.Goal, t.Measured)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// WriteJSON writes the report to path.
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
