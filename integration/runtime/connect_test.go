package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	tl "github.com/underlay/underlay/integration/testlab"
)

// The tests here run `underlay network connect` and `disconnect` against
// real containerd and podman containers that underlay did not attach (or
// attached to one network only). Everything they make is named ulcx...

// cli runs the underlay CLI against u with env (nil: ours), and returns
// stdout and stderr.
func (u *underlayd) cli(env []string, args ...string) (string, error) {
	return tl.RunCombined(cmdTimeout, env, filepath.Join(tl.BinDir(), "underlay"), append([]string{"--socket", u.Socket}, args...)...)
}

// endpointsOf is `endpoint ls --format json`, only container's endpoints
// (named as endpoint ls names it), by network.
func (u *underlayd) endpointsOf(t *testing.T, container string) map[string]api.Endpoint {
	t.Helper()
	var eps []api.Endpoint
	if err := json.Unmarshal([]byte(u.MustCLI(t, "endpoint", "ls", "--format", "json")), &eps); err != nil {
		t.Fatalf("endpoint ls --format json: %v", err)
	}
	out := map[string]api.Endpoint{}
	for _, ep := range eps {
		if ep.Container() == container {
			out[ep.Network] = ep
		}
	}
	return out
}

// waitEndpointsGone waits up to wait until container has no endpoint.
func (u *underlayd) waitEndpointsGone(t *testing.T, container string, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for len(u.endpointsOf(t, container)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still has endpoints after %s:\n%s", container, wait, u.MustCLI(t, "endpoint", "ls"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// mustSay fails unless out has each of words.
func mustSay(t *testing.T, what, out string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(out, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, out)
		}
	}
}

// refused runs a CLI command that must fail with a message saying each of
// words, on one line.
func refused(t *testing.T, what string, run func() (string, error), words ...string) {
	t.Helper()
	out, err := run()
	if err == nil {
		t.Errorf("%s: succeeded, want an error:\n%s", what, out)
		return
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n > 0 {
		t.Errorf("%s: error of %d lines, want one:\n%s", what, n+1, out)
	}
	mustSay(t, what, out, words...)
}

// checkIf asserts ifname's IPv4 address inside a container.
func checkIf(t *testing.T, name string, exec tl.ExecFunc, ifname, cidr string) {
	t.Helper()
	out, err := exec("ip", "-4", "-o", "addr", "show", "dev", ifname)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !strings.Contains(out, " "+cidr+" ") {
		t.Errorf("%s: %s has no %s:\n%s", name, ifname, cidr, out)
	}
}

// checkNoIf asserts that a container has no interface ifname.
func checkNoIf(t *testing.T, name string, exec tl.ExecFunc, ifname string) {
	t.Helper()
	out, err := exec("ip", "-o", "link")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if strings.Contains(out, " "+ifname+":") || strings.Contains(out, " "+ifname+"@") {
		t.Errorf("%s still has %s:\n%s", name, ifname, out)
	}
}

// checkOneDefault asserts that a container has exactly one IPv4 default
// route, the one given.
func checkOneDefault(t *testing.T, name string, exec tl.ExecFunc, route string) {
	t.Helper()
	out, err := exec("ip", "-4", "route")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if strings.Count(out, "default") != 1 || !strings.Contains(out, route) {
		t.Errorf("%s: want one default route, %q:\n%s", name, route, out)
	}
}

// netnsName is the name connect --pid gives a container underlay does
// not know: netns-<inode of its network namespace>.
func netnsName(t *testing.T, pid int) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("netns-%d", st.Ino)
}

// TestRuntimeConnectContainerd connects containerd containers by
// namespace/id: one without underlay (plain runc, its own empty network
// namespace) gets eth0 with the default route, then eth1 with a static
// address and no second default route, reaching both routers; disconnect
// takes eth1 alone and frees its address, which a container that the hook
// attached then gets as its eth1; a third is connected by --pid; mistakes
// get one line. Removing the containers releases everything: containerd's
// events for namespace/id, reconciliation (endpoint prune) for --pid.
func TestRuntimeConnectContainerd(t *testing.T) {
	bin := requirePrivileged(t, "containerd", "ctr", "containerd-shim-runc-v2")
	const (
		ns          = "ulcx"
		front, back = "ulcx-front", "ulcx-back"
		a, b, c     = "ulcx-a", "ulcx-b", "ulcx-c"
		static      = "10.141.2.50"
	)
	dir := tl.ShortTempDir(t, "ulcx", 0)
	lan := tl.NewLAN(t, "ulcxc", "10.141.1.1/24", "10.141.2.1/24")
	uld := newUnderlayd(t, filepath.Join(dir, "underlayd"))
	ctrd := startContainerd(t, filepath.Join(dir, "containerd"), ns, "UNDERLAY_SOCKET="+uld.Socket)
	uld.Start("--containerd-address", ctrd.Socket)
	image := filepath.Join(dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	ctrd.MustCtr(t, "images", "import", image)
	uld.MustCLI(t, "network", "create", "--subnet", "10.141.1.0/24", "-o", "parent="+lan.Uplink, front)
	uld.MustCLI(t, "network", "create", "--subnet", "10.141.2.0/24", "-o", "parent="+lan.Uplink, back)

	if err := ctrd.runContainer(a, imageRef, "runc"); err != nil {
		t.Fatalf("run %s: %v", a, err)
	}
	execA := ctrd.exec(a)
	out := uld.MustCLI(t, "network", "connect", front, ns+"/"+a)
	ipA := lan.CheckEth0(t, a, execA, "")
	mustSay(t, "connect "+a, out, "eth0 "+ipA+"/24")
	tl.CheckPing(t, a, execA, "10.141.1.1")

	out = uld.MustCLI(t, "network", "connect", "--ip", static, back, ns+"/"+a)
	mustSay(t, "connect --ip", out, "eth1 "+static+"/24")
	checkIf(t, a, execA, "eth1", static+"/24")
	checkOneDefault(t, a, execA, "default via 10.141.1.1 dev eth0")
	tl.CheckPing(t, a, execA, "10.141.2.1")
	if eps := uld.endpointsOf(t, ns+"/"+a); len(eps) != 2 || eps[back].IfName != "eth1" {
		t.Errorf("endpoints of %s/%s: %+v, want eth0 on %s and eth1 on %s", ns, a, eps, front, back)
	}

	const idle = "ulcx-idle"
	ctrd.MustCtr(t, "container", "create", imageRef, idle, "sleep", "3600")
	for _, r := range []struct {
		what  string
		args  []string
		words []string
	}{
		{"unknown container", []string{back, ns + "/ulcx-nosuch"}, []string{"no underlay endpoint", "containerd has no container ulcx-nosuch in namespace " + ns}},
		{"container without a task", []string{back, ns + "/" + idle}, []string{"containerd container " + ns + "/" + idle + " has no task"}},
		{"second time", []string{back, ns + "/" + a}, []string{"already on network " + back + " (as eth1)"}},
		{"host process", []string{"--pid", fmt.Sprint(os.Getpid()), back}, []string{"host network namespace"}},
		{"unknown network", []string{"ulcx-nonet", ns + "/" + a}, []string{"network ulcx-nonet"}},
	} {
		refused(t, r.what, func() (string, error) { return uld.cli(nil, append([]string{"network", "connect"}, r.args...)...) }, r.words...)
	}
	if eps := uld.endpointsOf(t, ns+"/"+a); len(eps) != 2 {
		t.Errorf("refused connects changed %s's endpoints: %+v", a, eps)
	}

	// Disconnect: eth1 alone goes, and its address is free.
	uld.MustCLI(t, "network", "disconnect", back, ns+"/"+a)
	checkNoIf(t, a, execA, "eth1")
	checkIf(t, a, execA, "eth0", ipA+"/24")
	tl.CheckPing(t, a, execA, "10.141.1.1")

	// b: the hook attached it to front; connect gives it eth1 on back
	// with the address a had.
	if err := ctrd.runContainer(b, imageRef, filepath.Join(bin, "underlay-runc"), "io.underlay.network="+front); err != nil {
		t.Fatalf("run %s: %v", b, err)
	}
	execB := ctrd.exec(b)
	ipB := lan.CheckEth0(t, b, execB, "")
	mustSay(t, "connect "+b, uld.MustCLI(t, "network", "connect", "--ip", static, back, ns+"/"+b), "eth1 "+static+"/24")
	tl.CheckPing(t, b, execB, "10.141.2.1")

	// c: by --pid, unnamed: netns-<inode>; it is on back only, so eth0
	// has back's default route.
	if err := ctrd.runContainer(c, imageRef, "runc"); err != nil {
		t.Fatalf("run %s: %v", c, err)
	}
	pidC, _ := ctrd.Task(c)
	nameC := netnsName(t, pidC)
	mustSay(t, "connect --pid", uld.MustCLI(t, "network", "connect", back, "--pid", fmt.Sprint(pidC)), "eth0 10.141.2.")
	execC := ctrd.exec(c)
	checkOneDefault(t, c, execC, "default via 10.141.2.1 dev eth0")
	tl.CheckPing(t, c, execC, "10.141.2.1")
	if eps := uld.endpointsOf(t, nameC); len(eps) != 1 {
		t.Errorf("endpoint ls has no %s for --pid %d:\n%s", nameC, pidC, uld.MustCLI(t, "endpoint", "ls"))
	}

	// Removing them: containerd's exit event releases a (no hook ran for
	// it), b's poststop its two; c's namespace is gone, and reconciliation
	// releases it.
	for _, id := range []string{a, b, c, idle} {
		if err := ctrd.Remove(id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
	}
	uld.waitEndpointsGone(t, ns+"/"+a, 5*time.Second)
	uld.waitEndpointsGone(t, ns+"/"+b, 5*time.Second)
	uld.MustCLI(t, "endpoint", "prune") // the reconcile loop may have been first
	uld.waitEndpointsGone(t, nameC, time.Second)
	uld.waitNoEndpoints(t, ipA, ipB, static)
	uld.MustCLI(t, "network", "rm", front, back)
}

// TestRuntimeConnectPodman connects podman containers by name, through the
// CLI's podman lookup: one started with --network none and no annotation
// gets eth0 and eth1, loses eth1 to disconnect; one the hook attached gets
// eth1 with the freed address and podman rm's poststop releases both; the
// first, removed, has no hook to release it: reconciliation finds its
// namespace gone within underlayd's period.
func TestRuntimeConnectPodman(t *testing.T) {
	bin := requirePrivileged(t, "podman", "conmon")
	const (
		front, back = "ulcx-pfront", "ulcx-pback"
		a, b        = "ulcx-pa", "ulcx-pb"
		static      = "10.142.2.50"
	)
	dir := tl.ShortTempDir(t, "ulcx", 0)
	lan := tl.NewLAN(t, "ulcxp", "10.142.1.1/24", "10.142.2.1/24")
	// No containerd: a bare name goes from underlay's endpoints to podman.
	uld := newUnderlayd(t, filepath.Join(dir, "underlayd"))
	uld.Start()
	pm := newPodman(t, "ulcxp")
	pm.writeHooks(t, filepath.Join(bin, "underlay-hook"), uld.Socket)
	image := filepath.Join(dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	pm.mustPodman(t, "load", "-q", "-i", image)
	uld.MustCLI(t, "network", "create", "--subnet", "10.142.1.0/24", "-o", "parent="+lan.Uplink, front)
	uld.MustCLI(t, "network", "create", "--subnet", "10.142.2.0/24", "-o", "parent="+lan.Uplink, back)
	// The CLI asks podman in the user's environment: the test's podman.
	cli := func(args ...string) (string, error) { return uld.cli(pm.env, args...) }
	mustCLI := func(args ...string) string { t.Helper(); return tl.Must(t)(cli(args...)) }

	if err := pm.runContainer(a, imageRef); err != nil {
		t.Fatalf("run %s: %v", a, err)
	}
	idA := strings.TrimSpace(pm.mustPodman(t, "inspect", "-f", "{{.Id}}", a))
	execA := pm.exec(a)
	out := mustCLI("network", "connect", front, a)
	ipA := lan.CheckEth0(t, a, execA, "")
	mustSay(t, "connect "+a, out, "eth0 "+ipA+"/24")
	tl.CheckPing(t, a, execA, "10.142.1.1")
	mustSay(t, "connect --ip", mustCLI("network", "connect", back, a, "--ip", static), "eth1 "+static+"/24")
	checkIf(t, a, execA, "eth1", static+"/24")
	checkOneDefault(t, a, execA, "default via 10.142.1.1 dev eth0")
	tl.CheckPing(t, a, execA, "10.142.2.1")
	if eps := uld.endpointsOf(t, idA); len(eps) != 2 {
		t.Errorf("endpoint ls has not %s's full id %s on both networks:\n%s", a, idA, uld.MustCLI(t, "endpoint", "ls"))
	}

	const idle = "ulcx-pidle"
	pm.mustPodman(t, "create", "--network", "none", "--name", idle, imageRef, "sleep", "3600")
	refused(t, "unknown container", func() (string, error) { return cli("network", "connect", back, "ulcx-nosuch") },
		"container ulcx-nosuch: no underlay endpoint", "podman has no container ulcx-nosuch")
	refused(t, "created container", func() (string, error) { return cli("network", "connect", back, idle) },
		"podman container "+idle+" is not running")
	refused(t, "second time", func() (string, error) { return cli("network", "connect", back, a) },
		"already on network "+back)

	mustCLI("network", "disconnect", back, a)
	checkNoIf(t, a, execA, "eth1")
	checkIf(t, a, execA, "eth0", ipA+"/24")

	if err := pm.runContainer(b, imageRef, "io.underlay.network="+front); err != nil {
		t.Fatalf("run %s: %v", b, err)
	}
	idB := strings.TrimSpace(pm.mustPodman(t, "inspect", "-f", "{{.Id}}", b))
	execB := pm.exec(b)
	lan.CheckEth0(t, b, execB, "")
	mustSay(t, "connect "+b, mustCLI("network", "connect", "--ip", static, back, b), "eth1 "+static+"/24")
	tl.CheckPing(t, b, execB, "10.142.2.1")
	pm.mustPodman(t, "rm", "-f", "-t", "0", b)
	uld.waitEndpointsGone(t, idB, 5*time.Second)

	// No hook ran for a: the reconcile loop (every 30 s) releases it.
	pm.mustPodman(t, "rm", "-f", "-t", "0", a, idle)
	uld.waitEndpointsGone(t, idA, 45*time.Second)
	uld.waitNoEndpoints(t, ipA, static)
	uld.MustCLI(t, "network", "rm", front, back)
}
