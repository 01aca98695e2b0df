package main

import (
	"path/filepath"
	"time"
)

// startup holds, per binary, wall and CPU times of each exec, in run order.
type startup struct {
	wall, cpu [5][]time.Duration // floor, no-op hook, round-trip hook; -bin-b's no-op and round-trip hooks
}

// hookStartup execs, interleaved, the bare Go binary (the floor, in the
// hook's environment, so that both start the same number of threads), the hook
// with a state that has no annotation (it must exit at once), and the hook
// at poststop for a container underlayd does not know (a full socket round
// trip with no kernel or store work). With binB set, that build's two
// hooks follow, against socketB.
func hookStartup(tmp, bin, floor, socket string, n int, binB, socketB string) (*startup, error) {
	hook := filepath.Join(bin, "underlay-hook")
	env := hookEnv(socket)
	plain := ociState("ulb-noop", 1, "creating", "/x", nil)
	unknown := ociState("ulb-unknown", 1, "stopped", "/x", map[string]string{"io.underlay.network": "ulbnet"})
	runs := []struct {
		path  string
		args  []string
		env   []string
		stdin []byte
	}{{floor, nil, env, plain}, {hook, []string{"createRuntime"}, env, plain}, {hook, []string{"poststop"}, env, unknown}}
	if binB != "" {
		hookB, envB := filepath.Join(binB, "underlay-hook"), hookEnv(socketB)
		runs = append(runs, runs[1], runs[2])
		runs[3].path, runs[3].env = hookB, envB
		runs[4].path, runs[4].env = hookB, envB
	}
	s := &startup{}
	for i := 0; i < n; i++ {
		for k, r := range runs {
			w, c, _, err := timedExecCPU(tmp, r.path, r.args, r.env, r.stdin)
			if err != nil {
				return nil, err
			}
			s.wall[k], s.cpu[k] = append(s.wall[k], w), append(s.cpu[k], c)
		}
	}
	return s, nil
}

// paired is the per-run difference b[i] - a[i]: runs taken next to each
// other see the same load, so their difference is steadier than the
// difference of two medians.
func paired(a, b []time.Duration) []time.Duration {
	out := make([]time.Duration, min(len(a), len(b)))
	for i := range out {
		out[i] = b[i] - a[i]
	}
	return out
}
