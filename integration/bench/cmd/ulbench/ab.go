package main

import (
	"fmt"
	"time"
)

// The -bin-b comparison: a second build's underlayd, hook and underlay-cni
// run beside the first build's, interleaved with every other contender, so
// that a change is measured against its base under the same load (on a
// shared host, absolute times from two runs do not compare).

// sideB is the second build's daemon and contenders.
type sideB struct {
	d  *daemon
	h  *hookRunner
	cs []*contender
}

// Names of the -bin-b rows, beside the first build's.
var namesB = map[string][2]string{
	"underlayB":     {"B: underlay hook createRuntime", "B: underlay hook poststop (netns alive)"},
	"underlay-cniB": {"B: underlay-cni ADD", "B: underlay-cni DEL"},
}

// startB starts the second build's underlayd with the same two networks
// as the first's, on a parent of its own (one for both: their subnets do
// not overlap).
func startB(c *config, tmp string) (*sideB, error) {
	d := newDaemon(c.binB, sub(c.work, "udb"))
	if _, err := d.Start(30 * time.Second); err != nil {
		return nil, fmt.Errorf("-bin-b: %w", err)
	}
	for _, n := range [][2]string{{"10.208", "ulbnet"}, {"10.209", "ulbucni"}} {
		if out, err := d.CLI("network", "create", "-d", "macvlan", "--subnet", n[0]+".0.0/16", "--gateway", n[0]+".0.1",
			"-o", "parent="+parentUnderlayB, n[1]); err != nil {
			d.Stop()
			return nil, fmt.Errorf("-bin-b: %w: %s", err, out)
		}
	}
	h := newHookRunner(tmp, c.binB, d, "ulbnet")
	ucni := underlayCNIContender(tmp, c.binB, d.Socket)
	ucni.Name, ucni.Subnet = "underlay-cniB", "10.209."
	return &sideB{d: d, h: h, cs: []*contender{underlayOn(h, "underlayB", "10.208."), ucni}}, nil
}

// startupRowsB adds the second build's hook start-up rows.
func startupRowsB(rep *Report, su *startup, cpuNote func(int) string) {
	rep.add(durations("startup", "B: underlay-hook, no annotation (exits at once)", su.wall[3])).Note = cpuNote(3)
	rep.add(durations("startup", "B: underlay-hook poststop, unknown container (socket round trip)", su.wall[4])).Note = cpuNote(4)
}
