package nerdctl

import (
	"strings"
	"testing"
	"time"
)

// TestPrivilegedNerdctlConnect is Docker's `network connect` of a running
// nerdctl container by its nerdctl name: a container started with plain
// runc and --network none (no underlay in its spec at all) is looked up
// through containerd by its nerdctl/name label, gets eth0 with the
// network's route, reaches the router, loses eth0 to disconnect, gets it
// back, and `nerdctl rm -f` releases it through containerd's events.
func TestPrivilegedNerdctlConnect(t *testing.T) {
	l := newLab(t, labOpts{prefix: "ulncx", router: "10.79.12.1/24", events: true})
	out, err := l.nd.run("run", "-d", "--name", "web", "--network", "none", imageRef, "sleep", "3600")
	if err != nil {
		t.Fatalf("nerdctl run: %v %s", err, out)
	}
	web := container{name: "web", id: strings.TrimSpace(out)}
	if _, err := l.exec(web)("ip", "link", "show", "eth0"); err == nil {
		t.Fatal("a --network none container has eth0 before any connect")
	}
	// The name, in the lab's containerd namespace.
	out = l.uld.MustCLI(t, "network", "connect", l.network, ns+"/web")
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "eth0" {
		t.Fatalf("connect printed %q, want eth0, its address and MAC", out)
	}
	addr := strings.Split(f[1], "/")[0]
	l.checkEth0(t, web, addr)
	l.checkRouterPing(t, addr)
	rows, err := l.uld.endpoints()
	if err != nil || len(rows) != 1 || rows[0].Container != web.qualified() {
		t.Fatalf("endpoint ls after connect: %+v %v, want %s", rows, err, web.qualified())
	}

	l.uld.MustCLI(t, "network", "disconnect", l.network, ns+"/web")
	if out, err := l.exec(web)("ip", "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 still there after disconnect:\n%s", out)
	}
	l.uld.noEndpoints(t, "after disconnect")

	// By its id this time; removing the container releases it.
	l.uld.MustCLI(t, "network", "connect", "--ip", addr, l.network, ns+"/"+web.id)
	l.checkEth0(t, web, addr)
	l.rm(t, "web")
	t.Logf("released %s", l.uld.waitNoEndpoints(t, 10*time.Second))

	// A name nobody has: one line that names containerd.
	out, err = l.uld.CLI("network", "connect", l.network, ns+"/nosuch")
	if err == nil || !strings.Contains(out, "containerd has no container nosuch in namespace "+ns) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("connect of an unknown name: %v %q", err, out)
	}
}
