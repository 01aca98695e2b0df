package multihost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// Bad cluster flags, an etcd that does not answer, a host name already in
// use and --scope global without a cluster: each is one clear line, and a
// daemon that refuses to start leaves no state behind.
func TestPrivilegedMultihostBadInput(t *testing.T) {
	l := newLab(t, 2)
	l.etcd(1)
	h1, h2 := l.hosts[0], l.hosts[1]
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"scheme", []string{"--store", "http://10.77.0.11:2379"}, `want etcd://HOST:PORT`},
		{"member", []string{"--store", "etcd://10.77.0.11"}, `member "10.77.0.11" is not HOST:PORT`},
		{"unreachable", []string{"--store", "etcd://10.77.0.99:2379", "--etcd-timeout", "1s"}, "did not answer within 1s"},
		{"prefix", []string{"--store", l.store, "--etcd-prefix", "underlay/"}, `--etcd-prefix "underlay/": want an absolute key path`},
		{"parent", []string{"--store", l.store, "--parent", "g"}, `--parent "g": want NETWORK=IFNAME`},
		{"no store", []string{"--parent", "g=eth1"}, "--parent needs --store"},
		{"cooldown", []string{"--store", l.store, "--release-cooldown", "-1s"}, "want 0 or more"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			start := time.Now()
			out, err := underlayd(h2, dir, c.args...)
			if err == nil || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Fatalf("underlayd %v: %v, want one line saying %q:\n%s", c.args, err, c.want, out)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("refused after %s", d)
			}
			if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
				t.Errorf("a refused start left a state directory")
			}
		})
	}

	l.start(h1)
	t.Run("host name taken", func(t *testing.T) {
		out, err := underlayd(h2, t.TempDir(), "--store", l.store, "--host-name", "h1", "--etcd-prefix", "/ulmh")
		if err == nil || !strings.Contains(out, "host name h1 belongs to another host") || !strings.Contains(out, "give this host its own --host-name") {
			t.Fatalf("second underlayd named h1: %v\n%s", err, out)
		}
	})
	t.Run("global without a store", func(t *testing.T) {
		d := tl.NewDaemon(t, t.TempDir())
		d.Wrap = []string{"ip", "netns", "exec", h2.ns}
		d.Start()
		out, err := d.CLI("network", "create", "--scope", "global", "--subnet", "10.77.0.0/24", "-o", "parent=lan0", "g")
		if err == nil || !strings.Contains(out, "--scope global needs underlayd started with --store") {
			t.Fatalf("global network on a daemon without --store: %v\n%s", err, out)
		}
		if out := d.MustCLI(t, "network", "ls"); tl.ContainsWord(out, "g") {
			t.Errorf("refused network listed:\n%s", out)
		}
	})
	t.Run("bad scope", func(t *testing.T) {
		out, err := h1.d.CLI("network", "create", "--scope", "swarm", "--subnet", "10.77.0.0/24", "-o", "parent=lan0", "g")
		if err == nil || !strings.Contains(out, `--scope "swarm": want local or global`) {
			t.Fatalf("--scope swarm: %v\n%s", err, out)
		}
	})
}

// A host whose state holds global networks of one etcd cluster refuses to
// start on another, which holds none of its leases.
func TestPrivilegedMultihostWrongCluster(t *testing.T) {
	l := newLab(t, 2)
	l.etcd(1)
	h2 := l.hosts[1]
	d := l.daemon(h2)
	d.Start()
	d.MustCLI(t, "network", "create", "--scope", "global", "--subnet", "10.77.0.0/24", "-o", "parent=lan0", "g")
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	other := &member{t: t, h: h2, log: filepath.Join(t.TempDir(), "other.log"), args: []string{"--name", "other",
		"--data-dir", filepath.Join(t.TempDir(), "other"),
		"--listen-client-urls", "http://" + h2.addr + ":2379", "--advertise-client-urls", "http://" + h2.addr + ":2379",
		"--listen-peer-urls", "http://" + h2.addr + ":2380", "--initial-advertise-peer-urls", "http://" + h2.addr + ":2380",
		"--initial-cluster", "other=http://" + h2.addr + ":2380", "--initial-cluster-token", "ulmh-other", "--logger", "zap", "--log-level", "warn"}}
	other.start()
	t.Cleanup(other.kill)
	var out string
	var err error
	for range 40 { // until the other cluster answers
		out, err = underlayd(h2, filepath.Dir(d.StateDir), "--store", "etcd://"+h2.addr+":2379", "--host-name", "h2", "--etcd-prefix", "/ulmh")
		if strings.Contains(out, "point --store at that cluster") || !strings.Contains(out, "did not answer") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err == nil || !strings.Contains(out, "this host's global networks (g) are in cluster") {
		t.Fatalf("start on another etcd cluster: %v\n%s", err, out)
	}
}
