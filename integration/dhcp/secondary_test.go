package dhcp

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// A DHCP network attached to a namespace whose default route is another
// interface's (a Multus pod's primary network) leases its address and
// leaves that route alone, as a static network does; the endpoint records
// no gateway.
func TestPrivilegedDHCPSecondaryKeepsDefaultRoute(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "uld8", "10.88.8.1/24")
	tl.StartDnsmasq(t, lan, 100, 150, "2m")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--ipam-driver", "dhcp", "-o", "parent="+lan.Uplink, "uld8")

	c := tl.NewContainer(t, "uld8-pod")
	tl.MustRun(t, "ip", "link", "add", "uld8prim", "type", "veth", "peer", "name", "prim0", "netns", fmt.Sprint(c.Pid))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "uld8prim").Run() })
	for _, args := range [][]string{
		{"ip", "addr", "add", "192.168.78.2/24", "dev", "prim0"}, {"ip", "link", "set", "prim0", "up"},
		{"ip", "route", "add", "default", "via", "192.168.78.1"},
	} {
		if out, err := c.Exec(args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	attach(t, d, c, "uld8", "")
	routes, _ := c.Exec("ip", "-4", "route")
	if !strings.Contains(routes, "default via 192.168.78.1 dev prim0") || strings.Count(routes, "default") != 1 ||
		!strings.Contains(routes, "10.88.8.0/24 dev eth0") {
		t.Errorf("routes in the pod after a DHCP secondary network:\n%s", routes)
	}
	if got := eth0Addr(t, c); !strings.HasPrefix(got, "10.88.8.") {
		t.Errorf("eth0 has %q: want a lease", got)
	}
	if eps := d.MustCLI(t, "endpoint", "ls", "--format", "{{.Gateways}}"); strings.Contains(eps, "10.88.8.1") {
		t.Errorf("the endpoint records a gateway it did not route: %s", eps)
	}
	detach(t, d, c, "uld8")
}
