package nerdctl

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestPrivilegedNerdctlREADME is README's nerdctl flow with both release
// paths on (the poststop hook and containerd's events): two containers,
// one dynamic and one with a static address and MAC, see eth0 and the
// default route, reach each other and the router, and are listed by
// endpoint ls as ulnd/<id>; a taken address stops a container from
// starting; a container without the annotation is left alone; nerdctl
// rm -f releases the addresses and the static one is taken again at once.
func TestPrivilegedNerdctlREADME(t *testing.T) {
	l := newLab(t, labOpts{prefix: "ulnda", router: "10.79.1.1/24", events: true})
	static := l.lan.Host(50)
	const mac = "02:42:0a:4f:01:32"

	a := l.mustRun(t, "ulnd-a")
	b := l.mustRun(t, "ulnd-b", "io.underlay.ip="+static, "io.underlay.mac="+mac)
	l.checkHooks(t, a)
	l.checkHooks(t, b)

	ipA := l.checkEth0(t, a, "")
	if ipA == static {
		t.Errorf("%s got %s, the static address of %s", a.name, ipA, b.name)
	}
	ipB := l.checkEth0(t, b, static)
	macA := l.mac(t, a)
	if macB := l.mac(t, b); !strings.EqualFold(macB, mac) {
		t.Errorf("%s: eth0 MAC %s, want %s", b.name, macB, mac)
	}
	l.checkPing(t, a, ipB)
	l.checkPing(t, b, ipA)
	l.checkPing(t, a, l.routerIP())
	l.checkPing(t, b, l.routerIP())
	l.checkRouterPing(t, ipA)
	l.checkRouterPing(t, ipB)
	l.uld.checkEndpoint(t, l.network, a, ipA, macA)
	l.uld.checkEndpoint(t, l.network, b, ipB, mac)

	// A taken static address: our createRuntime hook fails, so runc
	// create fails, nerdctl run fails with underlayd's reason, and nothing
	// is attached for the container.
	dup, err := l.run("ulnd-dup", "io.underlay.network="+l.network, "io.underlay.ip="+static)
	if err == nil {
		t.Errorf("%s started with %s, which %s holds", dup.name, static, b.name)
	} else if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("%s with a taken address: want \"address already in use\", got: %v", dup.name, err)
	}
	if names, _ := l.nd.names(); contains(names, dup.name) {
		l.rm(t, dup.name)
	}
	rows, err := l.uld.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Errorf("after the failed start of %s, endpoint ls should list %s and %s only:\n%v", dup.name, a.name, b.name, rows)
	}

	// No annotation: underlay-runc and the hook leave the container alone.
	plain, err := l.run("ulnd-plain")
	if err != nil {
		t.Fatalf("run %s through underlay-runc without the annotation: %v", plain.name, err)
	}
	if out, err := l.exec(plain)("ip", "-o", "link"); err != nil {
		t.Errorf("%s: %v", plain.name, err)
	} else if strings.Contains(out, "eth0") {
		t.Errorf("%s has no annotation but got an eth0:\n%s", plain.name, out)
	}
	l.rm(t, plain.name)

	// nerdctl restart: runc delete of the old task (poststop, and a
	// /tasks/delete event) comes before the new task's createRuntime; the
	// container must come back with its address, and stay attached.
	start := time.Now()
	l.nd.must(t, "restart", "-t", "0", b.name)
	t.Logf("nerdctl restart: %v", time.Since(start).Round(time.Millisecond))
	l.checkEth0(t, b, static)
	l.checkPing(t, b, l.routerIP())
	time.Sleep(time.Second) // room for a late event to do harm
	l.checkEth0(t, b, static)
	l.uld.checkEndpoint(t, l.network, b, static, mac)

	// nerdctl stop keeps the stopped task, so no hook runs; the task's
	// /tasks/exit event frees the address at stop, as Docker does, and
	// start brings the same address back.
	l.rm(t, a.name)
	l.nd.must(t, "stop", "-t", "0", b.name)
	t.Logf("address released %s after nerdctl stop", l.uld.waitNoEndpoints(t, 5*time.Second))
	l.nd.must(t, "start", b.name)
	l.checkEth0(t, b, static)
	l.uld.checkEndpoint(t, l.network, b, static, mac)

	l.rm(t, b.name)
	t.Logf("addresses released (endpoint ls empty) %s after nerdctl rm -f", l.uld.waitNoEndpoints(t, 5*time.Second))

	// The static address is free again at once.
	c := l.mustRun(t, "ulnd-c", "io.underlay.ip="+static)
	l.checkEth0(t, c, static)
	l.uld.checkEndpoint(t, l.network, c, static, l.mac(t, c))
	l.checkRouterPing(t, static)
	l.rm(t, c.name)
	l.uld.waitNoEndpoints(t, 5*time.Second)

	l.uld.MustCLI(t, "network", "rm", l.network)
	if errs := l.uld.logLines("ERROR"); len(errs) > 0 {
		t.Errorf("underlayd logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestPrivilegedNerdctlPoststop has underlayd follow no containerd events,
// so only the poststop hook that underlay-runc adds beside nerdctl's can
// release: after nerdctl rm -f the addresses must be free the moment the
// command returns. nerdctl stop leaves the stopped task in containerd (runc
// delete, and so poststop, runs at the next start or rm), so the lease
// stays until then, or until underlayd's periodic reconciliation finds the
// namespace gone; nerdctl start must attach the container again with its
// static address.
func TestPrivilegedNerdctlPoststop(t *testing.T) {
	l := newLab(t, labOpts{prefix: "ulndp", router: "10.79.2.1/24", events: false})
	static := l.lan.Host(60)

	c := l.mustRun(t, "ulnd-p")
	l.checkHooks(t, c)
	ip := l.checkEth0(t, c, "")
	l.uld.checkEndpoint(t, l.network, c, ip, l.mac(t, c))
	l.rm(t, c.name)
	l.uld.noEndpoints(t, "right after nerdctl rm -f (poststop hook only)")

	s := l.mustRun(t, "ulnd-s", "io.underlay.ip="+static)
	l.checkEth0(t, s, static)
	l.checkPing(t, s, l.routerIP())

	start := time.Now()
	l.nd.must(t, "stop", "-t", "0", s.name)
	t.Logf("nerdctl stop: %v", time.Since(start).Round(time.Millisecond))
	rows, err := l.uld.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("endpoint ls after nerdctl stop (the stopped task is not deleted yet): %v", rows)
	start = time.Now()
	l.nd.must(t, "start", s.name)
	t.Logf("nerdctl start: %v", time.Since(start).Round(time.Millisecond))
	l.checkEth0(t, s, static)
	l.checkPing(t, s, l.routerIP())
	l.uld.checkEndpoint(t, l.network, s, static, l.mac(t, s))

	l.rm(t, s.name)
	l.uld.noEndpoints(t, "right after nerdctl rm -f of a restarted container (poststop hook only)")

	// Released by the hook alone, so free again at once.
	s2 := l.mustRun(t, "ulnd-s2", "io.underlay.ip="+static)
	l.checkEth0(t, s2, static)
	l.rm(t, s2.name)
	l.uld.noEndpoints(t, "right after nerdctl rm -f (poststop hook only)")
	if errs := l.uld.logLines("ERROR"); len(errs) > 0 {
		t.Errorf("underlayd logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestPrivilegedNerdctlEvents cuts the hooks off underlayd after the
// container started (containerd's UNDERLAY_SOCKET is a symlink the test
// removes), so the poststop hook fails: nerdctl rm -f must still remove the
// container, and underlayd, following containerd's events, must release
// the address by itself.
func TestPrivilegedNerdctlEvents(t *testing.T) {
	l := newLab(t, labOpts{prefix: "ulnde", router: "10.79.3.1/24", events: true, hookLink: true})
	static := l.lan.Host(70)

	c := l.mustRun(t, "ulnd-e", "io.underlay.ip="+static)
	l.checkHooks(t, c)
	l.checkEth0(t, c, static)
	l.uld.checkEndpoint(t, l.network, c, static, l.mac(t, c))

	if err := os.Remove(l.hookSocket); err != nil {
		t.Fatal(err)
	}
	l.rm(t, c.name)
	if names, err := l.nd.names(); err != nil || contains(names, c.name) {
		t.Errorf("nerdctl ps -a after rm -f: %v %v, want %s gone", names, err, c.name)
	}
	t.Logf("released by containerd's events (endpoint ls empty) %s after nerdctl rm -f", l.uld.waitNoEndpoints(t, 5*time.Second))

	if err := os.Symlink(l.uld.Socket, l.hookSocket); err != nil {
		t.Fatal(err)
	}
	c2 := l.mustRun(t, "ulnd-e2", "io.underlay.ip="+static)
	l.checkEth0(t, c2, static)
	l.rm(t, c2.name)
	l.uld.waitNoEndpoints(t, 5*time.Second)
	if errs := l.uld.logLines("ERROR"); len(errs) > 0 {
		t.Errorf("underlayd logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestPrivilegedNerdctlRestartLateEvent is nerdctl restart when containerd's
// events reach underlayd late (here: 2s, through a proxy on the events
// connection; on a real host, load). Restarting deletes the old task, whose
// /tasks/delete event then arrives after the new task's createRuntime hook
// attached the container again. That stale event must not detach the new
// endpoint: the container must keep its eth0 and its lease.
//
// containerd does not always publish /tasks/delete when nerdctl start
// deletes a stopped task (the shim may exit before forwarding it), so the
// test watches `ctr events` and restarts until one is published.
func TestPrivilegedNerdctlRestartLateEvent(t *testing.T) {
	const delay = 2 * time.Second
	l := newLab(t, labOpts{prefix: "ulndl", router: "10.79.4.1/24", eventDelay: delay})
	static := l.lan.Host(80)
	events := l.watchEvents(t)

	c := l.mustRun(t, "ulnd-l", "io.underlay.ip="+static)
	l.checkEth0(t, c, static)
	published := false
	for try := 1; try <= 5 && !published; try++ {
		before := events("/tasks/delete", c.id)
		start := time.Now()
		l.nd.must(t, "restart", "-t", "0", c.name)
		t.Logf("nerdctl restart: %v", time.Since(start).Round(time.Millisecond))
		l.checkEth0(t, c, static)
		// Let the old task's /tasks/delete event arrive.
		time.Sleep(delay + time.Second)
		if published = events("/tasks/delete", c.id) > before; !published {
			t.Logf("restart %d: containerd published no /tasks/delete for the old task; again", try)
		}
	}
	if !published {
		t.Fatalf("containerd published no /tasks/delete in 5 restarts of %s: the late event cannot be tested", c.name)
	}
	rows, err := l.uld.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Container != c.qualified() || rows[0].State != "attached" {
		t.Errorf("%v after nerdctl restart, endpoint ls should list the running %s, attached:\n%v", delay+time.Second, c.name, rows)
	}
	out, err := l.exec(c)("ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(out, static+"/24") {
		t.Errorf("%v after nerdctl restart, the running %s has lost eth0 (%s): %v\n%s", delay+time.Second, c.name, static, err, out)
	}
	t.Logf("underlayd's attach and detach log:\n%s", strings.Join(l.uld.logMatching("msg=attached", "msg=detached"), "\n"))
}
