package host

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// Private mode stops slaves of one parent from talking to each other; both
// still reach the router. (vepa needs a hairpin-capable switch, which a
// veth is not, so it behaves like private here.)
func TestPrivilegedMacvlanModes(t *testing.T) {
	tl.Require(t)
	for i, mode := range []string{"bridge", "private", "vepa"} {
		t.Run(mode, func(t *testing.T) {
			p := "ulh9" + string(rune('a'+i))
			lan := tl.NewLAN(t, p, "10.69.0.1/24")
			d := tl.StartDaemon(t)
			d.MustCLI(t, "network", "create", "--subnet=10.69.0.0/24", "-o", "parent="+lan.Uplink, "-o", "macvlan_mode="+mode, "m")
			a, b := tl.NewContainer(t, p+"-a"), tl.NewContainer(t, p+"-b")
			attach(t, d, a, "io.underlay.network", "m")
			attach(t, d, b, "io.underlay.network", "m")
			ping(t, a, "10.69.0.1")
			ping(t, b, "10.69.0.1")
			_, err := a.Exec("ping", "-c", "1", "-W", "1", "10.69.0.3")
			if mode == "bridge" && err != nil {
				t.Fatalf("bridge: slaves cannot reach each other: %v", err)
			}
			if mode != "bridge" && err == nil {
				t.Fatalf("%s: slaves reached each other through the parent", mode)
			}
			mustContain(t, "mode", exec(t, a, "ip", "-d", "link", "show", "eth0"), "macvlan mode "+mode)
		})
	}
}

// Passthru gives the parent to one container; a second is refused up front
// with a sentence, not EBUSY, and the first keeps working.
func TestPrivilegedPassthruOneEndpoint(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulha", "10.70.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet=10.70.0.0/24", "-o", "parent="+lan.Uplink, "-o", "macvlan_mode=passthru", "pt")
	a, b := tl.NewContainer(t, "ulha-a"), tl.NewContainer(t, "ulha-b")
	attach(t, d, a, "io.underlay.network", "pt")
	out, err := d.Attach(b, ann("io.underlay.network", "pt"))
	if err == nil || !strings.Contains(out, "passthru gives parent ulhaup to one container, and ulha-a has it") {
		t.Fatalf("second passthru: %v %s", err, out)
	}
	ping(t, a, "10.70.0.1")
	if _, err := d.Detach(a, ann("io.underlay.network", "pt")); err != nil {
		t.Fatal(err)
	}
	a.Kill()
	attach(t, d, b, "io.underlay.network", "pt")
	ping(t, b, "10.70.0.1")
}

// Two networks give eth0 and eth1 in order, each with its own address,
// MAC and (only one default route per family) gateway.
func TestPrivilegedTwoNetworks(t *testing.T) {
	tl.Require(t)
	l1 := tl.NewLAN(t, "ulhb", "10.71.0.1/24")
	l2 := tl.NewLAN(t, "ulhc", "10.72.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet=10.71.0.0/24", "-o", "parent="+l1.Uplink, "front")
	d.MustCLI(t, "network", "create", "--subnet=10.72.0.0/24", "-o", "parent="+l2.Uplink, "back")
	c := tl.NewContainer(t, "ulhb-c")
	attach(t, d, c, "io.underlay.network", "front,back", "io.underlay.mac", "02:00:00:00:71:05",
		"io.underlay.ip.back", "10.72.0.9")
	mustContain(t, "eth0", exec(t, c, "ip", "addr", "show", "eth0"), "10.71.0.2/24", "02:00:00:00:71:05")
	mustContain(t, "eth1", exec(t, c, "ip", "addr", "show", "eth1"), "10.72.0.9/24")
	routes := exec(t, c, "ip", "-4", "route")
	if strings.Count(routes, "default") != 1 || !strings.Contains(routes, "default via 10.71.0.1 dev eth0") {
		t.Fatalf("routes:\n%s", routes)
	}
	ping(t, c, "10.71.0.1")
	ping(t, c, "10.72.0.1")
	if _, err := d.Detach(c, ann("io.underlay.network", "front,back")); err != nil {
		t.Fatal(err)
	}
	if got := d.Endpoints(t); len(got) != 0 {
		t.Fatalf("endpoints after detach: %v", got)
	}
	if got := exec(t, c, "ip", "-br", "link"); strings.Contains(got, "eth") {
		t.Fatalf("interfaces left:\n%s", got)
	}
}

// State survives a daemon restart: endpoints stay listed, their leases stay
// taken, and a detach after the restart releases them.
func TestPrivilegedDaemonRestartKeepsState(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulhd", "10.73.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet=10.73.0.0/24", "--ip-range=10.73.0.8/30", "-o", "parent="+lan.Uplink, "keep")
	a := tl.NewContainer(t, "ulhd-a")
	attach(t, d, a, "io.underlay.network", "keep")
	d.Stop()
	d.Start()
	eps := d.Endpoints(t)
	if len(eps) != 1 || eps[0][3] != "10.73.0.8/24" {
		t.Fatalf("after restart: %v", eps)
	}
	b := tl.NewContainer(t, "ulhd-b")
	attach(t, d, b, "io.underlay.network", "keep")
	mustContain(t, "b", exec(t, b, "ip", "-4", "addr", "show", "eth0"), "10.73.0.9/24")
	if _, err := d.Detach(a, ann("io.underlay.network", "keep")); err != nil {
		t.Fatal(err)
	}
	c := tl.NewContainer(t, "ulhd-c")
	attach(t, d, c, "io.underlay.network", "keep")
	mustContain(t, "c reuses a's address", exec(t, c, "ip", "-4", "addr", "show", "eth0"), "10.73.0.8/24")
	// Attaching the same container twice is harmless.
	attach(t, d, c, "io.underlay.network", "keep")
	if got := d.Endpoints(t); len(got) != 2 {
		t.Fatalf("endpoints: %v", got)
	}
}

// A container that died without a poststop hook is released by `endpoint
// prune` (and by the periodic reconciliation); a restarted container, same
// id, gets its old address back.
func TestPrivilegedPruneAndRestart(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulhe", "10.78.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet=10.78.0.0/24", "-o", "parent="+lan.Uplink, "p")
	a, b := tl.NewContainer(t, "ulhe-a"), tl.NewContainer(t, "ulhe-b")
	attach(t, d, a, "io.underlay.network", "p")
	attach(t, d, b, "io.underlay.network", "p")
	a.Kill()
	mustContain(t, "prune", d.MustCLI(t, "endpoint", "prune"), "released 1 endpoint(s)")
	if eps := d.Endpoints(t); len(eps) != 1 || eps[0][1] != "ulhe-b" {
		t.Fatalf("after prune: %v", eps)
	}
	mustContain(t, "second prune", d.MustCLI(t, "endpoint", "prune"), "released 0 endpoint(s)")

	// b restarts: same id, new namespace, attach without a detach first.
	b.Kill()
	b2 := tl.NewContainer(t, "ulhe-b")
	c := tl.NewContainer(t, "ulhe-c")
	attach(t, d, c, "io.underlay.network", "p")
	attach(t, d, b2, "io.underlay.network", "p")
	mustContain(t, "b2 keeps b's address", exec(t, b2, "ip", "-4", "addr", "show", "eth0"), "10.78.0.3/24")
}

// 100 hooks at once across three networks: every one succeeds, every
// address is distinct, and every container has the address the store
// lists.
func TestPrivilegedHundredHooksAtOnce(t *testing.T) {
	tl.Require(t)
	d := tl.StartDaemon(t)
	const nets = 3
	for i := 0; i < nets; i++ {
		lan := tl.NewLAN(t, fmt.Sprintf("ulhh%d", i), fmt.Sprintf("10.9%d.0.1/24", i))
		d.MustCLI(t, "network", "create", fmt.Sprintf("--subnet=10.9%d.0.0/24", i), "-o", "parent="+lan.Uplink, fmt.Sprintf("h%d", i))
	}
	var cs []*tl.Container
	for i := 0; i < 100; i++ {
		cs = append(cs, tl.NewContainer(t, fmt.Sprintf("ulhh-c%d", i)))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := d.Attach(c, ann("io.underlay.network", fmt.Sprintf("h%d", i%nets))); err != nil {
				errs[i] = fmt.Errorf("%s: %v: %s", c.ID, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	eps := d.Endpoints(t)
	if len(eps) != len(cs) {
		t.Fatalf("%d endpoints for %d containers", len(eps), len(cs))
	}
	byID := map[string]string{}
	seen := map[string]bool{}
	for _, ep := range eps {
		if seen[ep[3]] {
			t.Fatalf("address %s handed out twice", ep[3])
		}
		seen[ep[3]] = true
		byID[ep[1]] = ep[3]
	}
	for _, c := range cs[:10] {
		mustContain(t, c.ID, exec(t, c, "ip", "-4", "addr", "show", "eth0"), byID[c.ID])
	}
}
