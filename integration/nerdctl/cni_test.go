package nerdctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// TestPrivilegedNerdctlCNI is nerdctl with no wrapper and no annotations:
// network create --cni-conf-dir puts the network in nerdctl's conf dir,
// underlay-cni sits in its CNI path as "underlay", and `nerdctl run
// --network NAME [--ip X]` attaches through it. nerdctl lists the network
// and refuses to remove it (it is managed outside nerdctl); nerdctl rm -f
// releases the addresses; underlay network rm takes it out of nerdctl's
// list.
func TestPrivilegedNerdctlCNI(t *testing.T) {
	l := newLab(t, labOpts{prefix: "ulndc", router: "10.79.10.1/24", events: true})
	cniDir, confDir := filepath.Join(l.dir, "nerdctl", "cni"), filepath.Join(l.dir, "nerdctl", "netconf")
	if err := os.Symlink(filepath.Join(tl.BinDir(), "underlay-cni"), filepath.Join(cniDir, "underlay")); err != nil {
		t.Fatal(err)
	}
	// nerdctl makes its default bridge network on first use, and wants
	// the standard plugins for it (Debian's containernetworking-plugins),
	// as any host with nerdctl has them.
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap", "firewall", "tuning"} {
		if err := os.Symlink(filepath.Join("/usr/lib/cni", p), filepath.Join(cniDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	l.uld.MustCLI(t, "network", "rm", l.network) // the lab's, for the hook: same subnet
	l.uld.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", l.lan.Router.Masked().String(),
		"--gateway", l.routerIP(), "--cni-conf-dir", confDir, "-o", "parent="+l.lan.Uplink, "pubcni")
	t.Cleanup(func() { _, _ = l.uld.CLI("network", "rm", "pubcni") })
	if out := l.nd.must(t, "network", "ls"); !strings.Contains(out, "pubcni") {
		t.Fatalf("nerdctl network ls does not list pubcni:\n%s", out)
	}
	static := l.lan.Host(50)
	run := func(name string, args ...string) container {
		t.Helper()
		start := time.Now()
		out, err := l.nd.run(append(append([]string{"run", "-d", "--name", name, "--network", "pubcni"}, args...), imageRef, "sleep", "3600")...)
		if err != nil {
			t.Fatalf("nerdctl run --network pubcni %v: %v", args, err)
		}
		t.Logf("nerdctl run -d --network pubcni %s: %v", name, time.Since(start).Round(time.Millisecond))
		return container{name: name, id: strings.TrimSpace(out)}
	}
	a := run("ulndc-a", "--ip", static)
	b := run("ulndc-b")
	l.checkEth0(t, a, static)
	ipB := l.checkEth0(t, b, "")
	l.checkPing(t, b, static)
	l.checkPing(t, a, ipB)
	l.checkRouterPing(t, static)
	l.uld.checkEndpoint(t, "pubcni", a, static, l.mac(t, a))

	l.rm(t, a.name, b.name)
	l.uld.waitNoEndpoints(t, 5*time.Second)
	// Unused, it is still not nerdctl's to remove.
	if out, err := l.nd.run("network", "rm", "pubcni"); err == nil || !strings.Contains(out+err.Error(), "managed outside nerdctl") {
		t.Errorf("nerdctl network rm of underlay's network: err %v, output %q; want a refusal", err, out)
	}
	// The static address is free again at once.
	c := run("ulndc-c", "--ip", static)
	l.checkEth0(t, c, static)
	l.rm(t, c.name)
	l.uld.waitNoEndpoints(t, 5*time.Second)

	l.uld.MustCLI(t, "network", "rm", "pubcni")
	if out := l.nd.must(t, "network", "ls"); strings.Contains(out, "pubcni") {
		t.Errorf("nerdctl still lists pubcni after underlay network rm:\n%s", out)
	}
}
