package host

import (
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// network connect / disconnect, as Docker's: a running container on one
// network gets eth1 on a second, reaches that network's router over it and
// keeps its one default route; disconnect takes eth1 away and frees the
// address; the container's poststop releases what is left; mistakes get
// one line.
func TestPrivilegedConnect(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh8", "10.98.0.1/24", "10.99.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet", "10.98.0.0/24", "-o", "parent="+lan.Uplink, "front")
	d.MustCLI(t, "network", "create", "--subnet", "10.99.0.0/24", "-o", "parent="+lan.Uplink, "back")
	c := tl.NewContainer(t, "ulh8-c")
	attach(t, d, c, "io.underlay.network", "front")

	out := d.MustCLI(t, "network", "connect", "--ip", "10.99.0.50", "back", c.ID)
	mustContain(t, "connect", out, "eth1 10.99.0.50/24")
	mustContain(t, "eth1", exec(t, c, "ip", "-4", "addr", "show", "dev", "eth1"), "10.99.0.50/24")
	routes := exec(t, c, "ip", "-4", "route")
	if strings.Count(routes, "default") != 1 || !strings.Contains(routes, "default via 10.98.0.1 dev eth0") {
		t.Errorf("routes after connect: want eth0's one default route:\n%s", routes)
	}
	ping(t, c, "10.99.0.1")
	mustContain(t, "endpoint ls", d.MustCLI(t, "endpoint", "ls"), "back", "10.99.0.50/24", "eth1")

	if out, err := d.CLI("network", "connect", "back", c.ID); err == nil || !strings.Contains(out, "already on network back") {
		t.Errorf("connect twice: err %v, output %q", err, out)
	}
	if out, err := d.CLI("network", "connect", "back", "nosuch"); err == nil || !strings.Contains(out, "no underlay endpoint") {
		t.Errorf("connect of an unknown container: err %v, output %q", err, out)
	}

	d.MustCLI(t, "network", "disconnect", "back", c.ID)
	if links := exec(t, c, "ip", "-o", "link"); strings.Contains(links, "eth1") {
		t.Errorf("eth1 left after disconnect:\n%s", links)
	}
	// The address is free again: another container takes it.
	c2 := tl.NewContainer(t, "ulh8-c2")
	attach(t, d, c2, "io.underlay.network", "back", "io.underlay.ip", "10.99.0.50")
	detach(t, d, c2, "io.underlay.network", "back")

	d.MustCLI(t, "network", "connect", "back", c.ID)
	detach(t, d, c, "io.underlay.network", "front")
	if rows := d.Endpoints(t); len(rows) != 0 {
		t.Errorf("poststop left endpoints: %v", rows)
	}
}
