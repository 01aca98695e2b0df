package multihost

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// twoHosts starts a lab of two hosts, one etcd member, an underlayd on
// each with no release cooldown, and global network g (10.77.0.0/24,
// handing out 10.77.0.128/25) made on the first.
func twoHosts(t *testing.T) (*lab, *mhost, *mhost) {
	t.Helper()
	l := newLab(t, 2)
	l.etcd(1)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.start(h1, "--release-cooldown", "0s")
	l.start(h2, "--release-cooldown", "0s")
	h1.d.MustCLI(t, "network", "create", "--scope", "global", "--subnet", "10.77.0.0/24",
		"--gateway", "10.77.0.1", "--ip-range", "10.77.0.128/25", "-o", "parent=lan0", "g")
	return l, h1, h2
}

// With etcd down, an attach to a global network fails within the bound,
// naming etcd, and leaves nothing; a local network is not affected; a
// running container keeps its address; and its release, kept on the host,
// reaches etcd once etcd is back.
func TestPrivilegedMultihostEtcdDown(t *testing.T) {
	l, _, h2 := twoHosts(t)
	h2.d.MustCLI(t, "network", "create", "--subnet", "10.78.0.0/24", "-o", "parent=lan0", "loc")
	running := tl.NewContainer(t, "ulmh-run")
	if out, err := h2.d.Attach(running, onG); err != nil {
		t.Fatalf("attach: %v %s", err, out)
	}
	addr := eth0(t, running)

	l.members[0].kill()
	late := tl.NewContainer(t, "ulmh-late")
	start := time.Now()
	out, err := h2.d.Attach(late, onG)
	if took := time.Since(start); err == nil || !strings.Contains(out, "etcd") || took > 5*time.Second {
		t.Fatalf("attach with etcd down: %v after %s, want an error naming etcd within the 2 s bound:\n%s", err, took, out)
	}
	if out, _ := late.Exec("ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("failed attach left eth0:\n%s", out)
	}
	local := tl.NewContainer(t, "ulmh-local")
	if out, err := h2.d.Attach(local, map[string]string{"io.underlay.network": "loc"}); err != nil {
		t.Fatalf("attach to a local network with etcd down: %v %s", err, out)
	}
	if got := eth0(t, running); got != addr {
		t.Fatalf("running container's address changed: %s, was %s", got, addr)
	}
	if out, err := running.Exec("ping", "-c", "1", "-W", "2", "10.77.0.1"); err != nil {
		t.Errorf("running container lost the LAN with etcd down: %v %s", err, out)
	}
	if out, err := h2.d.Detach(running, onG); err != nil {
		t.Fatalf("detach with etcd down: %v %s", err, out)
	}

	l.members[0].start()
	l.healthy()
	if lease := l.keys("/ulmh/v1/leases/g/" + addr.String()); len(lease) != 1 {
		t.Fatalf("lease of %s: %v, want it still held while its release waits", addr, lease)
	}
	h2.d.MustCLI(t, "endpoint", "prune") // a reconciliation: pending releases go out
	if lease := l.keys("/ulmh/v1/leases/g/" + addr.String()); len(lease) != 0 {
		t.Fatalf("lease of %s after etcd came back: %v, want released", addr, lease)
	}
	if out, err := h2.d.Attach(late, onG); err != nil {
		t.Fatalf("attach once etcd is back: %v %s", err, out)
	}
}

// underlayd killed in the middle of attaches to a global network and
// started again: every lease of the host in etcd belongs to one of its
// endpoints, and every endpoint has its lease; nobody holds two.
func TestPrivilegedMultihostCrash(t *testing.T) {
	l, _, h2 := twoHosts(t)
	var wg sync.WaitGroup
	for i := range 30 {
		c := tl.NewContainer(t, fmt.Sprintf("ulmh-k%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = h2.d.Attach(c, onG)
		}()
		if i == 15 {
			h2.d.Kill()
		}
	}
	wg.Wait()
	h2.d.Start()
	h2.d.MustCLI(t, "endpoint", "prune")
	eps := map[string]bool{}
	for _, row := range h2.d.Endpoints(t) {
		for _, f := range row {
			if strings.HasPrefix(f, "10.77.0.") {
				eps[strings.Split(f, "/")[0]] = true
			}
		}
	}
	owned := map[string]bool{}
	for _, k := range l.keys("/ulmh/v1/owners/h2/") {
		out, err := l.etcdctl("get", "--print-value-only", k)
		if err != nil {
			t.Fatal(err)
		}
		a := strings.TrimSpace(out)
		if owned[a] {
			t.Errorf("%s owned twice", a)
		}
		owned[a] = true
	}
	leases := 0
	for _, k := range l.keys("/ulmh/v1/leases/g/") {
		leases++
		if a := k[strings.LastIndexByte(k, '/')+1:]; !eps[a] {
			t.Errorf("lease %s without an endpoint on h2", a)
		}
	}
	if len(eps) == 0 || leases != len(eps) || len(owned) != len(eps) {
		t.Errorf("after the crash: %d endpoints, %d leases, %d owner keys; want equal, and some", len(eps), leases, len(owned))
	}
	for a := range eps {
		if !owned[a] {
			t.Errorf("endpoint address %s has no owner key", a)
		}
	}
}
