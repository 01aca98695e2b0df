package multihost

import (
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// A host that dies for good (its underlayd killed, its liveness lease run
// out): its addresses are reclaimed, by hand or after --reclaim-after,
// but never one that a container of it still answers ARP for.
func TestPrivilegedMultihostReclaim(t *testing.T) {
	l := newLab(t, 2)
	l.etcd(1)
	h1, h2 := l.hosts[0], l.hosts[1]
	l.start(h1, "--release-cooldown", "0s", "--reclaim-after", "1s")
	l.start(h2, "--release-cooldown", "0s")
	h1.d.MustCLI(t, "network", "create", "--scope", "global", "--subnet", "10.77.0.0/24",
		"--gateway", "10.77.0.1", "--ip-range", "10.77.0.128/25", "-o", "parent=lan0", "g")
	a, b := tl.NewContainer(t, "ulmh-ra"), tl.NewContainer(t, "ulmh-rb")
	for _, c := range []*tl.Container{a, b} {
		if out, err := h2.d.Attach(c, onG); err != nil {
			t.Fatalf("attach %s: %v %s", c.ID, err, out)
		}
	}
	addrA, addrB := eth0(t, a), eth0(t, b)
	h2.d.Kill()
	if out, err := h1.d.CLI("host", "reclaim", "h2"); err == nil || !strings.Contains(out, "host is up") {
		t.Fatalf("reclaim while h2's liveness key lives: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(h1.d.MustCLI(t, "host", "ls"), "gone") {
		if time.Now().After(deadline) {
			t.Fatalf("h2 not gone 20 s after its underlayd was killed:\n%s", h1.d.MustCLI(t, "host", "ls"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Both containers still run, and answer on the wire: nothing is freed.
	if out := h1.d.MustCLI(t, "host", "reclaim", "h2"); !strings.Contains(out, "0 address(es) freed, 2 kept") {
		t.Fatalf("reclaim while h2's containers answer:\n%s", out)
	}
	a.Kill()
	h1.d.MustCLI(t, "endpoint", "prune") // a reconciliation: h2 has been gone over 1 s
	if k := l.keys("/ulmh/v1/leases/g/" + addrA.String()); len(k) != 0 {
		t.Errorf("%s of a dead container on a gone host not reclaimed: %v", addrA, k)
	}
	if k := l.keys("/ulmh/v1/leases/g/" + addrB.String()); len(k) != 1 {
		t.Errorf("%s, still answering, was reclaimed", addrB)
	}
	if out := h1.d.MustCLI(t, "host", "ls"); !strings.Contains(out, "gone") || !strings.Contains(out, "   1\n") {
		t.Errorf("host ls after the reclaim: want h2 gone holding 1:\n%s", out)
	}
	// h2 comes back: b keeps its address, a's endpoint is released.
	h2.d.Start()
	h2.d.MustCLI(t, "endpoint", "prune")
	if got := eth0(t, b); got != addrB {
		t.Errorf("b's address changed to %s", got)
	}
	if out := h2.d.MustCLI(t, "endpoint", "ls"); strings.Contains(out, "ulmh-ra") || !strings.Contains(out, "ulmh-rb") {
		t.Errorf("h2's endpoints after its return:\n%s", out)
	}
}
