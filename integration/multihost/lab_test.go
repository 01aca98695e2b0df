package multihost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// lab is one VLAN shared by several hosts. The LAN is a bridge in netns
// ulmh-lan holding the router's address 10.77.0.1; each host is a netns
// ulmhN with a veth onto that bridge (its parent, named as the host
// likes) and the address 10.77.0.1N, an underlayd of its own, and maybe
// an etcd member.
//
//	ulmh-lan: br0 10.77.0.1/20
//	  |-- ulmh1: lan0 10.77.0.11  underlayd h1, etcd m1
//	  |-- ulmh2: lan0 10.77.0.12  underlayd h2
//	  '-- ulmh3: ens3 10.77.0.13  underlayd h3 (--parent g=ens3)
type lab struct {
	t       *testing.T
	hosts   []*mhost
	members []*member
	store   string // etcd://... of the members
}

type mhost struct {
	name, ns, parent, addr string
	d                      *tl.Daemon
}

const lanNS = "ulmh-lan"

// newLab builds the LAN and n hosts, host i's parent named parents[i]
// (lan0 when missing).
func newLab(t *testing.T, n int, parents ...string) *lab {
	t.Helper()
	tl.Require(t, "etcd", "etcdctl")
	l := &lab{t: t}
	remove := func() {
		for i := 1; i <= 9; i++ {
			_ = exec.Command("ip", "netns", "del", fmt.Sprintf("ulmh%d", i)).Run()
		}
		_ = exec.Command("ip", "netns", "del", lanNS).Run()
	}
	remove()
	t.Cleanup(remove)
	run := func(args ...string) { tl.MustRun(t, "ip", args...) }
	run("netns", "add", lanNS)
	run("-n", lanNS, "link", "add", "br0", "type", "bridge")
	run("-n", lanNS, "addr", "add", "10.77.0.1/20", "dev", "br0")
	run("-n", lanNS, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		h := &mhost{name: fmt.Sprintf("h%d", i), ns: fmt.Sprintf("ulmh%d", i), parent: "lan0", addr: fmt.Sprintf("10.77.0.1%d", i)}
		if i <= len(parents) && parents[i-1] != "" {
			h.parent = parents[i-1]
		}
		a, b := fmt.Sprintf("ulmh%da", i), fmt.Sprintf("ulmh%db", i)
		run("netns", "add", h.ns)
		run("link", "add", a, "type", "veth", "peer", "name", b)
		run("link", "set", a, "netns", lanNS)
		run("-n", lanNS, "link", "set", a, "master", "br0", "up")
		run("link", "set", b, "netns", h.ns)
		run("-n", h.ns, "link", "set", b, "name", h.parent)
		run("-n", h.ns, "addr", "add", h.addr+"/24", "dev", h.parent)
		run("-n", h.ns, "link", "set", h.parent, "up")
		run("-n", h.ns, "link", "set", "lo", "up")
		l.hosts = append(l.hosts, h)
	}
	return l
}

// member is one etcd member on a host, which a test may kill and start
// again on the same data.
type member struct {
	t    *testing.T
	h    *mhost
	args []string
	log  string
	cmd  *exec.Cmd
}

func (m *member) start() {
	m.t.Helper()
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	m.cmd = exec.Command("ip", append([]string{"netns", "exec", m.h.ns, "etcd"}, m.args...)...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start etcd on %s: %v", m.h.name, err)
	}
	go func() { _ = m.cmd.Wait(); logf.Close() }()
}

// kill SIGKILLs the member.
func (m *member) kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Kill()
		for m.cmd.ProcessState == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// etcd starts one member on each of the first n hosts and waits until the
// cluster answers. The root namespace reaches the members through ulmh0
// (10.77.0.2), so that tests can drive the address driver directly.
func (l *lab) etcd(n int) {
	l.t.Helper()
	var peers, clients []string
	for _, h := range l.hosts[:n] {
		peers = append(peers, fmt.Sprintf("m%s=http://%s:2380", h.name, h.addr))
		clients = append(clients, h.addr+":2379")
	}
	for _, h := range l.hosts[:n] {
		dir := filepath.Join(l.t.TempDir(), "etcd")
		m := &member{t: l.t, h: h, log: dir + ".log", args: []string{"--name", "m" + h.name, "--data-dir", dir,
			"--listen-client-urls", "http://" + h.addr + ":2379", "--advertise-client-urls", "http://" + h.addr + ":2379",
			"--listen-peer-urls", "http://" + h.addr + ":2380", "--initial-advertise-peer-urls", "http://" + h.addr + ":2380",
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "ulmh", "--log-level", "warn", "--logger", "zap"}}
		m.start()
		l.members = append(l.members, m)
		l.t.Cleanup(func() {
			m.kill()
			if l.t.Failed() {
				l.t.Logf("etcd on %s, last lines:\n%s", h.name, tl.TailFile(m.log, 20))
			}
		})
	}
	l.store = "etcd://" + strings.Join(clients, ",")
	l.healthy()
}

// healthy waits until every running member answers.
func (l *lab) healthy() {
	l.t.Helper()
	var eps []string
	for _, m := range l.members {
		if m.cmd.ProcessState == nil {
			eps = append(eps, m.h.addr+":2379")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := l.etcdctl(append([]string{"--endpoints", strings.Join(eps, ",")}, "endpoint", "health")...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("etcd did not become healthy: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// etcdctl runs etcdctl on host 1 against the members unless args say
// otherwise.
func (l *lab) etcdctl(args ...string) (string, error) {
	if len(args) == 0 || args[0] != "--endpoints" {
		args = append([]string{"--endpoints", strings.TrimPrefix(l.store, "etcd://")}, args...)
	}
	return tl.RunCombined(10*time.Second, nil, "ip", append([]string{"netns", "exec", l.hosts[0].ns, "etcdctl"}, args...)...)
}

// keys lists the keys under prefix.
func (l *lab) keys(prefix string) []string {
	l.t.Helper()
	out, err := l.etcdctl("get", "--prefix", "--keys-only", prefix)
	if err != nil {
		l.t.Fatalf("etcdctl get %s: %v\n%s", prefix, err, out)
	}
	return strings.Fields(out)
}

// start starts underlayd on host h with args after the cluster's own.
func (l *lab) start(h *mhost, args ...string) {
	l.t.Helper()
	h.d = l.daemon(h, args...)
	h.d.Start()
}

// daemon prepares underlayd on host h, joined to the lab's cluster.
func (l *lab) daemon(h *mhost, args ...string) *tl.Daemon {
	base := []string{"--store", l.store, "--host-name", h.name, "--etcd-prefix", "/ulmh", "--etcd-timeout", "2s"}
	d := tl.NewDaemon(l.t, l.t.TempDir(), append(base, args...)...)
	d.Wrap = []string{"ip", "netns", "exec", h.ns}
	return d
}

// underlayd runs underlayd on host h to its end, for flags it must refuse.
func underlayd(h *mhost, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"netns", "exec", h.ns, filepath.Join(tl.BinDir(), "underlayd"),
		"--socket", filepath.Join(dir, "s.sock"), "--state-dir", filepath.Join(dir, "state")}, args...)
	out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput()
	return string(out), err
}
