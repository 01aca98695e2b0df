package nerdctl

import (
	"path/filepath"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// TestPrivilegedNerdctlDNS is the ipvlan seed's name check with real
// containers: ipv1 and ipv2 (nerdctl --name, run with --dns 127.0.0.11)
// resolve each other through underlayd's DNS, so `ping -c 1 ipv1` works.
func TestPrivilegedNerdctlDNS(t *testing.T) {
	l := newLab(t, labOpts{prefix: "ulndn", router: "10.79.11.1/24", events: true})
	run := func(name string) container {
		t.Helper()
		args := []string{"run", "-d", "--name", name, "--dns", "127.0.0.11", "--runtime", filepath.Join(tl.BinDir(), "underlay-runc"), "--network", "none",
			"--annotation", "io.underlay.network=" + l.network, imageRef, "sleep", "3600"}
		out, err := l.nd.run(args...)
		if err != nil {
			t.Fatalf("nerdctl run %s: %v", name, err)
		}
		return container{name: name, id: strings.TrimSpace(out)}
	}
	a := run("ipv1")
	b := run("ipv2")
	ipA := l.checkEth0(t, a, "")
	if rc, _ := l.exec(b)("cat", "/etc/resolv.conf"); !strings.Contains(rc, "127.0.0.11") {
		t.Fatalf("nerdctl --dns did not reach the container's resolv.conf:\n%s", rc)
	}
	if out, err := l.exec(b)("ping", "-c", "1", "-W", "2", "ipv1"); err != nil || !strings.Contains(out, ipA) {
		t.Errorf("ping -c 1 ipv1 from ipv2: %v\n%s", err, out)
	}
	l.rm(t, a.name, b.name)
}
