package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/underlay/underlay/ipam"
	"github.com/underlay/underlay/ipam/etcd"
)

// The global stage: etcd members, each in a netns (ulbe1..3) on a bridge
// in ulbe-lan that the bench's own namespace reaches through ulbe0
// (10.79.0.2). underlayd joins them with --store and attaches to a local
// and a global network on the same parent, interleaved; then the bare
// compare-and-swap round trip, and three hosts' drivers allocating at once.
const etcdLanNS = "ulbe-lan"

func memberAddr(i int) string { return fmt.Sprintf("10.79.0.1%d", i) }

func setupEtcdLab() error {
	teardownEtcdLab()
	cmds := [][]string{
		{"netns", "add", etcdLanNS},
		{"-n", etcdLanNS, "link", "add", "br0", "type", "bridge"},
		{"-n", etcdLanNS, "link", "set", "br0", "up"},
		{"link", "add", "ulbe0", "type", "veth", "peer", "name", "ulbe0b"},
		{"link", "set", "ulbe0b", "netns", etcdLanNS},
		{"-n", etcdLanNS, "link", "set", "ulbe0b", "master", "br0", "up"},
		{"addr", "add", "10.79.0.2/24", "dev", "ulbe0"},
		{"link", "set", "ulbe0", "up"},
	}
	for i := 1; i <= 3; i++ {
		ns, a, b := fmt.Sprintf("ulbe%d", i), fmt.Sprintf("ulbe%da", i), fmt.Sprintf("ulbe%db", i)
		cmds = append(cmds, [][]string{
			{"netns", "add", ns},
			{"link", "add", a, "type", "veth", "peer", "name", b},
			{"link", "set", a, "netns", etcdLanNS},
			{"-n", etcdLanNS, "link", "set", a, "master", "br0", "up"},
			{"link", "set", b, "netns", ns},
			{"-n", ns, "addr", "add", memberAddr(i) + "/24", "dev", b},
			{"-n", ns, "link", "set", b, "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		}...)
	}
	for _, c := range cmds {
		if _, err := run("ip", c...); err != nil {
			return err
		}
	}
	return nil
}

func teardownEtcdLab() {
	_ = exec.Command("ip", "link", "del", "ulbe0").Run()
	for i := 1; i <= 3; i++ {
		_ = exec.Command("ip", "netns", "del", fmt.Sprintf("ulbe%d", i)).Run()
	}
	_ = exec.Command("ip", "netns", "del", etcdLanNS).Run()
}

// startMembers starts an n-member cluster with fresh data in dir and waits
// until it answers; it returns the --store value and a stop function.
func startMembers(dir string, n int) (string, func(), error) {
	var peers, clients []string
	for i := 1; i <= n; i++ {
		peers = append(peers, fmt.Sprintf("m%d=http://%s:2380", i, memberAddr(i)))
		clients = append(clients, memberAddr(i)+":2379")
	}
	var cmds []*exec.Cmd
	stop := func() {
		for _, c := range cmds {
			started.kill(c)
		}
	}
	for i := 1; i <= n; i++ {
		a := memberAddr(i)
		cmd := exec.Command("ip", "netns", "exec", fmt.Sprintf("ulbe%d", i), "etcd", "--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", "http://"+a+":2379", "--advertise-client-urls", "http://"+a+":2379",
			"--listen-peer-urls", "http://"+a+":2380", "--initial-advertise-peer-urls", "http://"+a+":2380",
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", fmt.Sprintf("ulbench%d", n), "--log-level", "error", "--logger", "zap")
		if err := startTracked(cmd); err != nil {
			stop()
			return "", nil, fmt.Errorf("start etcd: %w", err)
		}
		cmds = append(cmds, cmd)
	}
	store := "etcd://" + strings.Join(clients, ",")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := etcd.Dial(store, etcd.TLSFiles{}, 2*time.Second)
		if err == nil {
			c.Close()
			return store, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("etcd (%d members) did not answer: %w", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// global runs the global stage on a 1-member and then a 3-member cluster.
func global(c *config, rep *Report) error {
	if _, err := exec.LookPath("etcd"); err != nil {
		rep.Notes = append(rep.Notes, "global stage skipped: etcd not installed")
		return nil
	}
	if err := setupEtcdLab(); err != nil {
		return err
	}
	defer teardownEtcdLab()
	for _, n := range []int{1, 3} {
		if err := globalPhase(c, rep, n); err != nil {
			return fmt.Errorf("global stage, %d member(s): %w", n, err)
		}
	}
	return nil
}

func globalPhase(c *config, rep *Report, members int) error {
	dir := sub(c.work, fmt.Sprintf("etcd%d", members))
	store, stop, err := startMembers(dir, members)
	if err != nil {
		return err
	}
	defer stop()
	label := fmt.Sprintf("%d member", members)
	if members > 1 {
		label += "s"
	}
	logf("global: underlayd on etcd (%s): %d attaches each to a local and a global network, interleaved", label, c.n/2)
	d := newDaemon(c.bin, sub(c.work, fmt.Sprintf("udg%d", members)), "--store", store, "--etcd-prefix", "/ulbench",
		"--host-name", "bench", "--release-cooldown", "0s")
	if _, err := d.Start(30 * time.Second); err != nil {
		return err
	}
	defer d.Stop()
	for _, args := range [][]string{
		{"--subnet", "10.202.0.0/16", "ulbl"},
		{"--scope", "global", "--subnet", "10.203.0.0/16", "ulbg"},
	} {
		full := append([]string{"network", "create", "-d", "macvlan", "-o", "parent=" + parentUnderlay}, args...)
		if out, err := d.CLI(full...); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
	}
	tmp := sub(c.work, "tmp")
	local := underlayOn(newHookRunner(tmp, c.bin, d, "ulbl"), "ulbl", "10.202.")
	glob := underlayOn(newHookRunner(tmp, c.bin, d, "ulbg"), "ulbg", "10.203.")
	times, err := sequential([]*contender{local, glob}, c.n/2, 0)
	if err != nil {
		return fmt.Errorf("%w\nunderlayd log:\n%s", err, d.Tail())
	}
	lr := rep.add(durations("global", "attach, local network, underlayd on etcd ("+label+")", times[0].attach))
	gr := rep.add(durations("global", "attach, global network ("+label+")", times[1].attach))
	gr.Note = fmt.Sprintf("median %s over the local network's, interleaved with it", fmtVal(gr.Median-lr.Median, "ms"))
	rep.add(durations("global", "detach, global network ("+label+")", times[1].detach))

	cas, err := casTimes(store, 1, 200)
	if err != nil {
		return err
	}
	rep.add(durations("global", "bare etcd compare-and-swap round trip ("+label+")", cas)).Note = "the floor: one put-if-absent transaction from the bench's namespace"
	if members < 3 {
		return nil
	}
	per, wall, err := contention(store, 3, 1000, filepath.Join(c.profiles, "allocation-3-hosts.pprof"))
	if err != nil {
		return err
	}
	r := rep.add(durations("global", "allocation, 3 hosts at once (drivers in process, 3 members)", per))
	r.Note = fmt.Sprintf("%.0f allocations/s in all, one at a time per host as a network's lock has them", float64(len(per))/wall.Seconds())
	floor3, err := casTimes(store, 3, 1000)
	if err != nil {
		return err
	}
	f3 := rep.add(durations("global", "bare etcd compare-and-swap, 3 clients at once (3 members)", floor3))
	f3.Note = fmt.Sprintf("the allocation's load with nothing of underlay's: allocation p99 is %.2fx this p99", r.P99/f3.P99)
	return nil
}

// underlayOn is underlayContender on another network.
func underlayOn(h *hookRunner, name, subnet string) *contender {
	u := underlayContender(h)
	u.Name, u.Subnet = name, subnet
	return u
}

// contention has hosts drivers, each on its own connection, allocate
// perHost addresses of one /16 at once, one at a time each (a host's
// manager allocates under the network's lock), and returns each
// allocation's time and the wall time of the whole.
func contention(store string, hosts, perHost int, profile string) ([]time.Duration, time.Duration, error) {
	pools, err := ipam.BuildPools(ipam.Spec{Subnets: []string{"10.204.0.0/16"}})
	if err != nil {
		return nil, 0, err
	}
	rec := []byte(`{"name":"ulballoc"}`)
	var drivers []*etcd.Addresses
	for h := range hosts {
		kv, err := etcd.Dial(store, etcd.TLSFiles{}, 2*time.Second)
		if err != nil {
			return nil, 0, err
		}
		defer kv.Close()
		cl, err := etcd.New(kv, etcd.Config{Prefix: "/ulbench", Host: fmt.Sprintf("bench%d", h), Timeout: 2 * time.Second})
		if err != nil {
			return nil, 0, err
		}
		defer cl.Close()
		if err := cl.CreateNetwork("ulballoc", rec); err != nil && !errors.Is(err, etcd.ErrNetworkExists) {
			return nil, 0, err
		}
		d, err := cl.Addresses("ulballoc", rec, pools)
		if err != nil {
			return nil, 0, err
		}
		drivers = append(drivers, d)
	}
	stopProfile, err := startProfile(profile)
	if err != nil {
		return nil, 0, err
	}
	defer stopProfile()
	return atOnce(len(drivers), perHost, func(h, i int) error {
		o := ipam.Owner{Network: "ulballoc", Container: fmt.Sprintf("b%d-%d", h, i), IfName: "eth0"}
		_, _, err := drivers[h].Allocate(o, 4)
		return err
	})
}

// casTimes times put-if-absent transactions on fresh keys from clients
// clients at once, each on its own connection and one at a time: with one
// client the floor of an allocation, with three its load with nothing of
// underlay's in it.
func casTimes(store string, clients, per int) ([]time.Duration, error) {
	var kvs []*etcd.Client
	for range clients {
		kv, err := etcd.Dial(store, etcd.TLSFiles{}, 2*time.Second)
		if err != nil {
			return nil, err
		}
		defer kv.Close()
		kvs = append(kvs, kv)
	}
	run := time.Now().UnixNano()
	times, _, err := atOnce(clients, per, func(c, i int) error {
		key := fmt.Sprintf("/ulbench/floor/%d-%d-%d", run, c, i)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ok, _, _, err := kvs[c].Txn(ctx, []etcd.Cmp{etcd.Absent(key)}, []etcd.Op{etcd.Put(key, []byte("x"))}, nil)
		if err == nil && !ok {
			err = fmt.Errorf("compare-and-swap %s: key taken", key)
		}
		return err
	})
	return times, err
}

// atOnce runs workers goroutines that each call op n times, one after
// another, and returns every call's time, the wall time of the whole and
// the first error.
func atOnce(workers, n int, op func(w, i int) error) ([]time.Duration, time.Duration, error) {
	var mu sync.Mutex
	var per []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				s := time.Now()
				err := op(w, i)
				el := time.Since(s)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				per = append(per, el)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return per, time.Since(t0), firstErr
}
