package multihost

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// A host cut off from the LAN, and so from etcd, while it attaches: its
// attaches fail naming etcd, its release waits on the host, the other
// host never gets the cut-off host's address, and after healing the
// release goes out and the host attaches again, with nothing leaked.
func TestPrivilegedMultihostPartition(t *testing.T) {
	l, h1, h2 := twoHosts(t)
	before := tl.NewContainer(t, "ulmh-p0")
	if out, err := h2.d.Attach(before, onG); err != nil {
		t.Fatalf("attach: %v %s", err, out)
	}
	addr := eth0(t, before)

	tl.MustRun(t, "ip", "-n", lanNS, "link", "set", "ulmh2a", "down")
	cut := tl.NewContainer(t, "ulmh-p1")
	start := time.Now()
	out, err := h2.d.Attach(cut, onG)
	if took := time.Since(start); err == nil || !strings.Contains(out, "etcd") || took > 5*time.Second {
		t.Fatalf("attach on a cut-off host: %v after %s, want an error naming etcd within the bound:\n%s", err, took, out)
	}
	if out, err := h2.d.Detach(before, onG); err != nil {
		t.Fatalf("detach on a cut-off host: %v %s", err, out)
	}
	for i := range 5 {
		c := tl.NewContainer(t, fmt.Sprintf("ulmh-p1-%d", i))
		if out, err := h1.d.Attach(c, onG); err != nil {
			t.Fatalf("attach on h1 during the cut: %v %s", err, out)
		}
		if got := eth0(t, c); got == addr {
			t.Fatalf("h1 got %s, which cut-off h2 has not released in etcd yet", addr)
		}
	}

	tl.MustRun(t, "ip", "-n", lanNS, "link", "set", "ulmh2a", "up")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := h2.d.CLI("endpoint", "prune"); err == nil && len(l.keys("/ulmh/v1/leases/g/"+addr.String())) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("h2's release of %s did not reach etcd after healing", addr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if out, err := h2.d.Attach(cut, onG); err != nil {
		t.Fatalf("attach after healing: %v %s", err, out)
	}
	if owners := l.keys("/ulmh/v1/owners/h2/"); len(owners) != 1 {
		t.Errorf("h2's owner keys after healing: %v, want only the new container's", owners)
	}
	if leases := l.keys("/ulmh/v1/leases/g/"); len(leases) != 6 {
		t.Errorf("%d leases after healing, want 6 (5 on h1, 1 on h2)", len(leases))
	}
}
