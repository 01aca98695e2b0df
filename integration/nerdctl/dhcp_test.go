package nerdctl

import (
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// TestPrivilegedNerdctlDHCP runs real containers on a --ipam-driver dhcp
// network with dnsmasq on the LAN: the lease carries the container's OCI
// hostname (nerdctl's --hostname), the container reaches the router at its
// leased address, nerdctl rm -f gives the lease back to the server, and a
// container run again under the same name gets the same address.
func TestPrivilegedNerdctlDHCP(t *testing.T) {
	l := newLab(t, labOpts{prefix: "ulndh", router: "10.79.9.1/24", events: true})
	srv := tl.StartDnsmasq(t, l.lan, 100, 150, "2m", "--no-ping")
	l.uld.MustCLI(t, "network", "create", "--ipam-driver", "dhcp", "-o", "parent="+l.lan.Uplink, "ulndh-dhcp")
	t.Cleanup(func() { _, _ = l.uld.CLI("network", "rm", "ulndh-dhcp") })

	run := func() (container, string) {
		t.Helper()
		args := []string{"run", "-d", "--name", "ulndh-web", "--hostname", "webhost",
			"--runtime", tl.BinDir() + "/underlay-runc", "--network", "none",
			"--annotation", "io.underlay.network=ulndh-dhcp", imageRef, "sleep", "3600"}
		out, err := l.nd.run(args...)
		if err != nil {
			t.Fatalf("nerdctl run on the DHCP network: %v: %s", err, out)
		}
		c := container{name: "ulndh-web", id: strings.TrimSpace(out)}
		return c, l.checkEth0(t, c, "")
	}
	c, addr := run()
	l.checkPing(t, c, l.routerIP())
	l.checkRouterPing(t, addr)
	lease := srv.WaitLive(func(m map[string]tl.Lease) bool { return m[addr].Address != "" })[addr]
	if lease.Hostname != "webhost" {
		t.Errorf("dnsmasq's lease of %s: %+v, want hostname webhost (the OCI hostname)", addr, lease)
	}
	l.rm(t, c.name)
	l.uld.waitNoEndpoints(t, 5*time.Second)
	if live := srv.WaitLive(func(m map[string]tl.Lease) bool { return len(m) == 0 }); len(live) != 0 {
		t.Errorf("leases left on the server after nerdctl rm -f: %v", live)
	}
	c, again := run()
	if again != addr {
		t.Errorf("%s run again got %s, want its old %s (same name, same client)", c.name, again, addr)
	}
	l.rm(t, c.name)
	l.uld.waitNoEndpoints(t, 5*time.Second)
}
