package host

import (
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// waitFor polls what until it contains want or 3 s pass, and returns the
// last output. It waits for the kernel's asynchronous work (DAD, SLAAC,
// a neighbour advertisement sent from a workqueue), not for a deadline of
// ours: nothing here is timed.
func waitFor(t *testing.T, what func() string, want string) string {
	t.Helper()
	var got string
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got = what(); strings.Contains(got, want) {
			break
		}
	}
	return got
}

// A router advertisement on the LAN gives no IPv6 to a container on an
// IPv4-only network (IPv6 is off on its interface, as Docker does), while
// a container on a dual-stack network on the same parent does take the
// SLAAC address: the advertisement did arrive.
func TestPrivilegedIPv4OnlyHasNoIPv6(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh7", "10.77.0.1/24", "10.78.0.1/24", "2001:db8:78::1/64")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=10.77.0.0/24", "-o", "parent="+lan.Uplink, "v4only")
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=10.78.0.0/24", "--subnet=2001:db8:78::/64",
		"-o", "parent="+lan.Uplink, "dual")
	c4 := tl.NewContainer(t, "ulh7-c4")
	c6 := tl.NewContainer(t, "ulh7-c6")
	attach(t, d, c4, "io.underlay.network", "v4only")
	attach(t, d, c6, "io.underlay.network", "dual")
	mustContain(t, "disable_ipv6 of eth0 on v4only", exec(t, c4, "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"), "1")
	mustContain(t, "disable_ipv6 of eth0 on dual", exec(t, c6, "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"), "0")

	lan.SendRA(t, "2001:db8:5ac::/64")
	got := waitFor(t, func() string { return exec(t, c6, "ip", "-6", "addr", "show", "dev", "eth0") }, "inet6 2001:db8:5ac:")
	mustContain(t, "dual-stack container after a router advertisement", got, "inet6 2001:db8:5ac:", "inet6 2001:db8:78::2/64")

	if got := exec(t, c4, "ip", "-6", "addr", "show", "dev", "eth0"); strings.Contains(got, "inet6") {
		t.Fatalf("IPv4-only container has IPv6 addresses after a router advertisement:\n%s", got)
	}
	if got := exec(t, c4, "ip", "-6", "route", "show"); strings.TrimSpace(got) != "" {
		t.Fatalf("IPv4-only container has IPv6 routes after a router advertisement:\n%s", got)
	}
	ping(t, c4, "10.77.0.1")
}

// A container's addresses are announced once its interface is up: a
// router that knew both addresses at another MAC (a container that had
// them before) updates its neighbour entries, for IPv4 (underlayd's
// gratuitous ARP) and IPv6 (the kernel's unsolicited neighbour
// advertisement), without any traffic.
func TestPrivilegedAnnounceUpdatesRouter(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh8", "10.79.0.1/24", "2001:db8:79::1/64")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=10.79.0.0/24", "--subnet=2001:db8:79::/64",
		"-o", "parent="+lan.Uplink, "ann")
	const old = "02:00:5e:00:00:01"
	for _, a := range []string{"10.79.0.10", "2001:db8:79::10"} {
		tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "replace", a, "lladdr", old, "dev", "lan0", "nud", "stale")
	}
	c := tl.NewContainer(t, "ulh8-c1")
	attach(t, d, c, "io.underlay.network", "ann", "io.underlay.ip", "10.79.0.10", "io.underlay.ip6", "2001:db8:79::10")
	mac := macOf(t, exec(t, c, "ip", "link", "show", "eth0"))
	for _, a := range []string{"10.79.0.10", "2001:db8:79::10"} {
		got := waitFor(t, func() string { return tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "show", a) }, "lladdr "+mac)
		if !strings.Contains(got, "lladdr "+mac) {
			t.Fatalf("router's neighbour entry for %s not updated from %s to %s: %s", a, old, mac, got)
		}
	}
}

// The first announcement goes out of the parent before the attach answers;
// the second, two seconds later from inside the container, reaches the
// other containers on the parent too. A container released before its
// second announcement sends none: its address may already be another's.
func TestPrivilegedAnnounceReachesContainers(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh9", "10.80.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=10.80.0.0/24", "-o", "parent="+lan.Uplink, "ann2")
	const old = "02:00:5e:00:00:02"
	peer := tl.NewContainer(t, "ulh9-peer")
	attach(t, d, peer, "io.underlay.network", "ann2", "io.underlay.ip", "10.80.0.2")
	for _, a := range []string{"10.80.0.10", "10.80.0.20"} {
		tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "replace", a, "lladdr", old, "dev", "lan0", "nud", "stale")
		exec(t, peer, "ip", "neigh", "replace", a, "lladdr", old, "dev", "eth0", "nud", "stale")
	}
	router := func(a string) string { return tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "show", a) }
	sees := func(a string) string { return exec(t, peer, "ip", "neigh", "show", a) }

	c := tl.NewContainer(t, "ulh9-c1")
	attach(t, d, c, "io.underlay.network", "ann2", "io.underlay.ip", "10.80.0.10")
	mac := macOf(t, exec(t, c, "ip", "link", "show", "eth0"))
	if got := router("10.80.0.10"); !strings.Contains(got, "lladdr "+mac) {
		t.Errorf("router's entry not updated to %s when the attach answered: %s", mac, got)
	}
	got := sees("10.80.0.10")
	for end := time.Now().Add(5 * time.Second); !strings.Contains(got, "lladdr "+mac) && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		got = sees("10.80.0.10")
	}
	if !strings.Contains(got, "lladdr "+mac) {
		t.Errorf("the other container's entry not updated to %s within 5 s: %s", mac, got)
	}

	// A container released at once, and attached again to another network
	// (into the same namespace, where its new eth0 takes the old one's
	// place): the first attach's second announcement must never come,
	// since .20 is free again. The entries are set back to a MAC of
	// nobody's once it is released.
	c2 := tl.NewContainer(t, "ulh9-c2")
	attach(t, d, c2, "io.underlay.network", "ann2", "io.underlay.ip", "10.80.0.20")
	if out, err := d.Detach(c2, ann("io.underlay.network", "ann2")); err != nil {
		t.Fatalf("detach: %v %s", err, out)
	}
	tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "replace", "10.80.0.20", "lladdr", old, "dev", "lan0", "nud", "stale")
	exec(t, peer, "ip", "neigh", "replace", "10.80.0.20", "lladdr", old, "dev", "eth0", "nud", "stale")
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet=10.81.0.0/24", "-o", "parent="+lan.Uplink, "ann3")
	attach(t, d, c2, "io.underlay.network", "ann3")
	time.Sleep(3 * time.Second)
	for who, got := range map[string]string{"router": router("10.80.0.20"), "other container": sees("10.80.0.20")} {
		if !strings.Contains(got, "lladdr "+old) {
			t.Errorf("%s's entry for the released 10.80.0.20 changed: %s", who, got)
		}
	}
}
