package multihost

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

var onG = map[string]string{"io.underlay.network": "g"}

// eth0 is the container's IPv4 address on eth0.
func eth0(t *testing.T, c *tl.Container) netip.Addr {
	t.Helper()
	out, err := c.Exec("ip", "-4", "-o", "addr", "show", "eth0")
	f := strings.Fields(out)
	if err != nil || len(f) < 4 {
		t.Fatalf("%s: no IPv4 address on eth0: %v %s", c.ID, err, out)
	}
	p, err := netip.ParsePrefix(f[3])
	if err != nil {
		t.Fatalf("%s: %q: %v", c.ID, f[3], err)
	}
	return p.Addr()
}

// Three hosts, one etcd member: a global network made on one host is seen
// on every host, its containers get distinct addresses that reach each
// other across hosts, and it cannot be removed while any host has one.
// Host 3 names its parent ens3 (--parent g=ens3).
func TestPrivilegedMultihostBasic(t *testing.T) {
	l := newLab(t, 3, "", "", "ens3")
	l.etcd(1)
	for i, h := range l.hosts {
		var args []string
		if i == 2 {
			args = []string{"--parent", "g=ens3"}
		}
		l.start(h, append(args, "--release-cooldown", "0s")...)
	}
	h1, h2, h3 := l.hosts[0], l.hosts[1], l.hosts[2]
	h1.d.MustCLI(t, "network", "create", "-d", "macvlan", "--scope", "global", "--subnet", "10.77.0.0/24",
		"--gateway", "10.77.0.1", "--ip-range", "10.77.0.128/25", "-o", "parent=lan0", "g")
	for _, h := range l.hosts {
		out := h.d.MustCLI(t, "network", "ls")
		if !tl.ContainsWord(out, "g") || !tl.ContainsWord(out, "global") {
			t.Fatalf("%s: network ls does not list g as global:\n%s", h.name, out)
		}
	}
	if out := h3.d.MustCLI(t, "network", "inspect", "g"); !strings.Contains(out, `"parent": "ens3"`) {
		t.Errorf("h3 inspect: want parent ens3 (its --parent):\n%s", out)
	}

	seen := map[netip.Addr]string{}
	var all []*tl.Container
	for _, h := range l.hosts {
		for i := range 3 {
			c := tl.NewContainer(t, fmt.Sprintf("ulmh-%s-c%d", h.name, i))
			if out, err := h.d.Attach(c, onG); err != nil {
				t.Fatalf("attach %s on %s: %v\n%s", c.ID, h.name, err, out)
			}
			a := eth0(t, c)
			if prev, dup := seen[a]; dup {
				t.Fatalf("%s given to %s and %s", a, prev, c.ID)
			}
			if !netip.MustParsePrefix("10.77.0.128/25").Contains(a) {
				t.Errorf("%s got %s, outside the --ip-range", c.ID, a)
			}
			seen[a] = c.ID
			all = append(all, c)
		}
	}
	// host ls, on any host: all three up, three addresses each.
	if out := h2.d.MustCLI(t, "host", "ls"); strings.Count(out, " up ") != 3 || !strings.Contains(out, "h1") ||
		!strings.Contains(out, "h3") || strings.Count(out, "   3\n") != 3 {
		t.Errorf("host ls:\n%s", out)
	}
	// Across hosts, through the LAN's bridge: h1's first container to
	// h3's last, and each to the router.
	first, last := all[0], all[len(all)-1]
	if out, err := first.Exec("ping", "-c", "1", "-W", "2", eth0(t, last).String()); err != nil {
		t.Errorf("%s cannot reach %s on another host: %v\n%s", first.ID, last.ID, err, out)
	}
	if out, err := last.Exec("ping", "-c", "1", "-W", "2", "10.77.0.1"); err != nil {
		t.Errorf("%s cannot reach the router: %v\n%s", last.ID, err, out)
	}

	// Not removable while any host has an endpoint: the error names them.
	for _, c := range all[3:6] {
		if out, err := h2.d.Detach(c, onG); err != nil {
			t.Fatalf("detach %s: %v %s", c.ID, err, out)
		}
	}
	out, err := h2.d.CLI("network", "rm", "g")
	if err == nil || !strings.Contains(out, "h1 (3)") || !strings.Contains(out, "h3 (3)") {
		t.Fatalf("rm with endpoints on h1 and h3: %v\n%s", err, out)
	}
	// prune on h2, which has no endpoint on g, leaves it: it is shared.
	if out, err := h2.d.CLI("network", "prune", "-f"); err != nil || tl.ContainsWord(out, "g") {
		t.Fatalf("prune on a host without endpoints on g: %v\n%s", err, out)
	}
	if out := h2.d.MustCLI(t, "network", "ls"); !tl.ContainsWord(out, "g") {
		t.Fatalf("prune removed the global network g:\n%s", out)
	}
	for i, c := range all {
		if i >= 3 && i < 6 {
			continue
		}
		h := l.hosts[i/3]
		if out, err := h.d.Detach(c, onG); err != nil {
			t.Fatalf("detach %s: %v %s", c.ID, err, out)
		}
	}
	h3.d.MustCLI(t, "network", "rm", "g")
	if err := h3.d.Stop(); err != nil {
		t.Fatal(err)
	}
	if out := h1.d.MustCLI(t, "host", "ls"); !regexp.MustCompile(`h3\s+gone\s+20\d\d-`).MatchString(out) {
		t.Errorf("host ls after h3 stopped: want h3 gone, with when it was last seen:\n%s", out)
	}
	l.hosts = l.hosts[:2]
	for _, h := range l.hosts {
		if out := h.d.MustCLI(t, "network", "ls"); tl.ContainsWord(out, "g") {
			t.Errorf("%s still lists g after rm:\n%s", h.name, out)
		}
	}
	if left := l.keys("/ulmh/v1/leases/"); len(left) != 0 {
		t.Errorf("leases left in etcd after rm: %v", left)
	}
}
