package host

import (
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

func ann(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// attach runs the createRuntime hook and fails the test on error.
func attach(t *testing.T, d *tl.Daemon, c *tl.Container, kv ...string) {
	t.Helper()
	if out, err := d.Attach(c, ann(kv...)); err != nil {
		t.Fatalf("attach %s: %v: %s", c.ID, err, out)
	}
}

func mustContain(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("%s: want %q in:\n%s", what, w, got)
		}
	}
}

func exec(t *testing.T, c *tl.Container, args ...string) string {
	t.Helper()
	out, err := c.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ping(t *testing.T, c *tl.Container, addr string) {
	t.Helper()
	args := []string{"ping", "-c", "1", "-W", "2", addr}
	if strings.Contains(addr, ":") {
		args = []string{"ping", "-6", "-c", "1", "-W", "2", addr}
	}
	if out, err := c.Exec(args...); err != nil {
		t.Fatalf("%s cannot reach %s: %v\n%s", c.ID, addr, err, out)
	}
}

// The seed's first example: pub_net with a static address, and a second
// container with the next free one; they reach each other and the router.
func TestPrivilegedSeedPubNet(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh1", "172.16.86.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent="+lan.Uplink, "pub_net")

	c1 := tl.NewContainer(t, "ulh1-c1")
	c2 := tl.NewContainer(t, "ulh1-c2")
	attach(t, d, c1, "io.underlay.network", "pub_net", "io.underlay.ip", "172.16.86.10")
	attach(t, d, c2, "io.underlay.network", "pub_net")

	mustContain(t, "c1 addr", exec(t, c1, "ip", "-4", "addr", "show", "eth0"), "inet 172.16.86.10/24")
	mustContain(t, "c1 route", exec(t, c1, "ip", "-4", "route"), "default via 172.16.86.1 dev eth0")
	mustContain(t, "c2 addr", exec(t, c2, "ip", "-4", "addr", "show", "eth0"), "inet 172.16.86.2/24")
	mustContain(t, "c2 route", exec(t, c2, "ip", "-4", "route"), "default via 172.16.86.1 dev eth0")
	ping(t, c1, "172.16.86.1")
	ping(t, c2, "172.16.86.10")
	if err := lan.Ping("172.16.86.2"); err != nil {
		t.Fatalf("router cannot reach c2: %v", err)
	}
	eps := d.Endpoints(t)
	if len(eps) != 2 || eps[0][1] != "ulh1-c1" || eps[0][3] != "172.16.86.10/24" || eps[1][3] != "172.16.86.2/24" {
		t.Fatalf("endpoint ls: %v", eps)
	}
	// The MAC the store reports is the one inside the container.
	mustContain(t, "c1 mac", exec(t, c1, "ip", "link", "show", "eth0"), eps[0][4])

	// Detach frees the static address at once for another container.
	if out, err := d.Detach(c1, ann("io.underlay.network", "pub_net")); err != nil {
		t.Fatalf("detach: %v %s", err, out)
	}
	if got := exec(t, c1, "ip", "-br", "link"); strings.Contains(got, "eth0") {
		t.Fatalf("eth0 still in c1 after detach:\n%s", got)
	}
	// The router knew .10 at c1's MAC. c3 takes .10 with a new MAC, and its
	// gratuitous ARP (sent just after the attach answers) updates the
	// router's neighbour entry without any traffic.
	if err := lan.Ping("172.16.86.10"); err == nil {
		t.Fatal("router still reaches the released address")
	}
	c3 := tl.NewContainer(t, "ulh1-c3")
	attach(t, d, c3, "io.underlay.network", "pub_net", "io.underlay.ip", "172.16.86.10")
	mac3 := macOf(t, exec(t, c3, "ip", "link", "show", "eth0"))
	neigh := waitFor(t, func() string { return tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "show", "172.16.86.10") }, "lladdr "+mac3)
	if !strings.Contains(neigh, "lladdr "+mac3) {
		t.Fatalf("router's neighbour entry not updated to %s by gratuitous ARP: %s", mac3, neigh)
	}
	ping(t, c3, "172.16.86.2")

	// rm refuses while endpoints remain and names them.
	out, err := d.CLI("network", "rm", "pub_net")
	if err == nil {
		t.Fatal("network rm succeeded with endpoints attached")
	}
	mustContain(t, "rm error", out, "ulh1-c2 (eth0)", "ulh1-c3 (eth0)")
}

func TestPrivilegedSeedInferredGateway(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh2", "10.1.100.129/25")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=10.1.100.128/25", "-o", "parent="+lan.Uplink, "macnet25")
	c := tl.NewContainer(t, "ulh2-c1")
	attach(t, d, c, "io.underlay.network", "macnet25")
	mustContain(t, "addr", exec(t, c, "ip", "-4", "addr", "show", "eth0"), "inet 10.1.100.130/25")
	mustContain(t, "route", exec(t, c, "ip", "-4", "route"), "default via 10.1.100.129 dev eth0")
	ping(t, c, "10.1.100.129")
	mustContain(t, "inspect", d.MustCLI(t, "network", "inspect", "macnet25"), `"gateway": "10.1.100.129"`)
}

func TestPrivilegedSeedIPRangeAndAux(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh3", "192.168.32.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=192.168.32.0/24", "--ip-range=192.168.32.128/25",
		"--gateway=192.168.32.1", "--aux-address", "printer=192.168.32.129", "-o", "parent="+lan.Uplink, "macnet32")
	c1 := tl.NewContainer(t, "ulh3-c1")
	c2 := tl.NewContainer(t, "ulh3-c2")
	attach(t, d, c1, "io.underlay.network", "macnet32")
	attach(t, d, c2, "io.underlay.network", "macnet32")
	mustContain(t, "c1", exec(t, c1, "ip", "-4", "addr", "show", "eth0"), "inet 192.168.32.128/24")
	mustContain(t, "c2 skips the aux address", exec(t, c2, "ip", "-4", "addr", "show", "eth0"), "inet 192.168.32.130/24")
	ping(t, c2, "192.168.32.128")
}

func TestPrivilegedSeedTwoSubnets(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh4", "192.168.216.1/24", "192.168.218.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=192.168.216.0/24", "--subnet=192.168.218.0/24",
		"--gateway=192.168.216.1", "--gateway=192.168.218.1", "-o", "parent="+lan.Uplink, "macvlan216")
	c1 := tl.NewContainer(t, "ulh4-c1")
	c2 := tl.NewContainer(t, "ulh4-c2")
	attach(t, d, c1, "io.underlay.network", "macvlan216", "io.underlay.ip", "192.168.216.10")
	attach(t, d, c2, "io.underlay.network", "macvlan216", "io.underlay.ip", "192.168.218.10")
	mustContain(t, "c1 route", exec(t, c1, "ip", "-4", "route"), "default via 192.168.216.1 dev eth0")
	mustContain(t, "c2 route", exec(t, c2, "ip", "-4", "route"), "default via 192.168.218.1 dev eth0")
	ping(t, c1, "192.168.216.1")
	ping(t, c2, "192.168.218.1")
	// Across subnets the containers go through the router: the lab's
	// router does not forward, so only same-subnet reachability is checked.
}

func TestPrivilegedSeedDualStack(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh5", "192.168.216.1/24", "2001:db8:abc8::10/64")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--ipv6", "--subnet=192.168.216.0/24", "--gateway=192.168.216.1",
		"--subnet=2001:db8:abc8::/64", "--gateway=2001:db8:abc8::10", "-o", "parent="+lan.Uplink, "macvlan216")
	c1 := tl.NewContainer(t, "ulh5-c1")
	c2 := tl.NewContainer(t, "ulh5-c2")
	attach(t, d, c1, "io.underlay.network", "macvlan216", "io.underlay.ip6", "2001:db8:abc8::20")
	attach(t, d, c2, "io.underlay.network", "macvlan216")
	mustContain(t, "c1 v6 addr", exec(t, c1, "ip", "-6", "addr", "show", "eth0"), "inet6 2001:db8:abc8::20/64")
	mustContain(t, "c1 v6 route", exec(t, c1, "ip", "-6", "route"), "default via 2001:db8:abc8::10 dev eth0")
	mustContain(t, "c1 v4 route", exec(t, c1, "ip", "-4", "route"), "default via 192.168.216.1 dev eth0")
	mustContain(t, "c2 v6 addr", exec(t, c2, "ip", "-6", "addr", "show", "eth0"), "inet6 2001:db8:abc8::1/64")
	ping(t, c1, "2001:db8:abc8::10")
	ping(t, c2, "2001:db8:abc8::20")
	ping(t, c2, "192.168.216.2")
}
