package main

import (
	"path/filepath"
	"time"
)

// hookStartup execs, interleaved, the bare Go binary (the floor), the hook
// with a state that has no annotation (it must exit at once), and the hook
// at poststop for a container underlayd does not know (a full socket round
// trip with no kernel or store work).
func hookStartup(tmp, bin, floor, socket string, n int) (fl, noop, rt []time.Duration, err error) {
	hook := filepath.Join(bin, "underlay-hook")
	env := []string{basePath, "UNDERLAY_SOCKET=" + socket}
	plain := ociState("ulb-noop", 1, "creating", "/x", nil)
	unknown := ociState("ulb-unknown", 1, "stopped", "/x", map[string]string{"io.underlay.network": "ulbnet"})
	for i := 0; i < n; i++ {
		d, _, err := timedExec(tmp, floor, nil, env, plain)
		if err != nil {
			return nil, nil, nil, err
		}
		fl = append(fl, d)
		if d, _, err = timedExec(tmp, hook, []string{"createRuntime"}, env, plain); err != nil {
			return nil, nil, nil, err
		}
		noop = append(noop, d)
		if d, _, err = timedExec(tmp, hook, []string{"poststop"}, env, unknown); err != nil {
			return nil, nil, nil, err
		}
		rt = append(rt, d)
	}
	return fl, noop, rt, nil
}
