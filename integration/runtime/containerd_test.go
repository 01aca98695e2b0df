package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// containerd is a private containerd 1.x: root, state, socket, runc root and
// fifo dir under the test's directory, CRI disabled. It never talks to a
// system containerd.
type containerd struct {
	sock     string
	ns       string
	runcRoot string
	fifoDir  string
	execSeq  atomic.Int64
	*daemon
}

// startContainerd starts containerd with env added to ours: the shims, and
// so underlay-runc and underlay-hook, inherit containerd's environment.
func startContainerd(t *testing.T, dir, ns string, env ...string) *containerd {
	t.Helper()
	c := &containerd{
		sock:     filepath.Join(dir, "containerd.sock"),
		ns:       ns,
		runcRoot: filepath.Join(dir, "runc"),
		fifoDir:  filepath.Join(dir, "fifo"),
	}
	cfg := tl.WriteContainerdConfig(t, dir, c.sock, false, "runc", "fifo")

	// The 1.6 shim puts its socket under /run/containerd/s whatever the
	// config says; remove those directories afterwards if they were ours.
	removeRunDirs := tl.RunDirRemover()

	c.daemon = tl.StartProc(t, filepath.Join(dir, "containerd.log"), testEnv(env...), "containerd", "--config", cfg)
	// Registered after StartProc, so it runs first: containers go before
	// containerd stops; then stray shims, mounts and run dirs.
	t.Cleanup(func() {
		if !c.Exited() {
			c.removeAll(t)
		}
		c.Stop(t)
		tl.KillStrays(t, c.sock)
		tl.UnmountUnder(t, dir)
		removeRunDirs("s", "fifo")
	})
	c.WaitFor(t, "socket "+c.sock, 20*time.Second, func() error {
		_, err := c.ctr("version")
		return err
	})
	return c
}

// ctr runs ctr against the private containerd and namespace.
func (c *containerd) ctr(args ...string) (string, error) {
	return run(nil, "ctr", append([]string{"--address", c.sock, "--namespace", c.ns}, args...)...)
}

func (c *containerd) mustCtr(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(c.ctr(args...))
}

// runContainer is `ctr run -d` of image with runcBinary and annotations
// ("key=value"), running `sleep 3600`.
func (c *containerd) runContainer(id, image, runcBinary string, annotations ...string) error {
	args := []string{"run", "-d", "--null-io", "--fifo-dir", c.fifoDir, "--runc-root", c.runcRoot,
		"--runc-binary", runcBinary}
	for _, a := range annotations {
		args = append(args, "--annotation", a)
	}
	args = append(args, image, id, "sleep", "3600")
	_, err := c.ctr(args...)
	return err
}

// exec returns an execFunc for container id. ctr 1.6 `task exec` now and
// then exits 0 having lost a short process's output; every command the tests
// run prints something, so empty output is retried.
func (c *containerd) exec(id string) execFunc {
	return func(args ...string) (string, error) {
		var out string
		var err error
		for try := 0; try < 3; try++ {
			execID := fmt.Sprintf("ulrt-x%d", c.execSeq.Add(1))
			out, err = c.ctr(append([]string{"task", "exec", "--fifo-dir", c.fifoDir, "--exec-id", execID, id}, args...)...)
			if err != nil || strings.TrimSpace(out) != "" {
				return out, err
			}
		}
		return out, fmt.Errorf("ctr task exec %s %s: no output in 3 tries", id, strings.Join(args, " "))
	}
}

// remove is what a user does: task kill, wait until stopped, task rm (runc
// delete runs the poststop hook), container rm.
func (c *containerd) remove(id string) error {
	if c.taskStatus(id) != "" {
		if _, err := c.ctr("task", "kill", "-s", "SIGKILL", id); err != nil && c.taskStatus(id) == "RUNNING" {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.taskStatus(id) == "RUNNING" {
			if time.Now().After(deadline) {
				return fmt.Errorf("task %s still running 10s after SIGKILL", id)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := c.ctr("task", "rm", id); err != nil {
			return err
		}
	}
	out, err := c.ctr("container", "ls", "-q")
	if err != nil {
		return err
	}
	for _, l := range strings.Fields(out) {
		if l == id {
			_, err = c.ctr("container", "rm", id)
			return err
		}
	}
	return nil
}

// taskStatus is the STATUS column of `ctr task ls` for id, "" if no task.
func (c *containerd) taskStatus(id string) string {
	out, err := c.ctr("task", "ls")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

// removeAll removes every container in the namespace (test cleanup).
func (c *containerd) removeAll(t *testing.T) {
	out, err := c.ctr("container", "ls", "-q")
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	for _, id := range strings.Fields(out) {
		if err := c.remove(id); err != nil {
			t.Logf("cleanup: remove %s: %v", id, err)
			_, _ = c.ctr("task", "rm", "-f", id)
			_, _ = c.ctr("container", "rm", id)
		}
	}
}

// TestRuntimeContainerd runs two containers through containerd and
// underlay-runc on a macvlan network (one dynamic address, one static with a
// static MAC), checks what they see and that they reach each other and the
// router; that a container asking for a taken address does not start and a
// container without the annotation is left alone; then removes the two and
// checks that the addresses are released and the static one can be taken
// again.
func TestRuntimeContainerd(t *testing.T) {
	bin := requirePrivileged(t, "containerd", "ctr", "containerd-shim-runc-v2")
	const (
		prefix  = "ulrtc"
		ns      = "ulrt"
		network = "ulrt-ctrd"
		mac     = "02:42:0a:4d:01:32"
	)
	dir := t.TempDir()
	lan := newLab(t, prefix, "10.77.1.1/24")
	static := lan.host(50)

	sock := filepath.Join(dir, "underlay.sock")
	ctrd := startContainerd(t, filepath.Join(dir, "containerd"), ns, "UNDERLAY_SOCKET="+sock)
	// The poststop hook and containerd's events both release addresses;
	// UNDERLAY_RUNTIME_EVENTS=0 leaves the hook alone to prove it.
	events := ctrd.sock
	if os.Getenv(eventsEnv) == "0" {
		events = ""
	}
	uld := startUnderlayd(t, bin, filepath.Join(dir, "underlayd"), sock, events)

	image := filepath.Join(dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	ctrd.mustCtr(t, "images", "import", image)

	uld.mustCLI(t, "network", "create", "-d", "macvlan", "--subnet", lan.router.Masked().String(),
		"--gateway", lan.routerIP(), "-o", "parent="+lan.uplink, network)
	networkRemoved := false
	t.Cleanup(func() {
		if !networkRemoved {
			if _, err := uld.cli("network", "rm", network); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	if out := uld.mustCLI(t, "network", "ls"); !containsWord(out, network) {
		t.Fatalf("network ls does not list %s:\n%s", network, out)
	}

	runc := filepath.Join(bin, "underlay-runc")
	const a, b = "ulrt-a", "ulrt-b"
	if err := ctrd.runContainer(a, imageRef, runc, "io.underlay.network="+network); err != nil {
		t.Fatalf("run %s: %v", a, err)
	}
	if err := ctrd.runContainer(b, imageRef, runc, "io.underlay.network="+network,
		"io.underlay.ip="+static, "io.underlay.mac="+mac); err != nil {
		t.Fatalf("run %s: %v", b, err)
	}

	ipA := lan.checkEth0(t, a, ctrd.exec(a), "")
	if ipA == static {
		t.Errorf("%s got the static address %s reserved for %s", a, ipA, b)
	}
	ipB := lan.checkEth0(t, b, ctrd.exec(b), static)
	checkMAC(t, b, ctrd.exec(b), mac)

	checkPing(t, a, ctrd.exec(a), ipB)
	checkPing(t, b, ctrd.exec(b), ipA)
	checkPing(t, a, ctrd.exec(a), lan.routerIP())
	checkPing(t, b, ctrd.exec(b), lan.routerIP())
	if err := lan.routerPing(ipA); err != nil {
		t.Errorf("router cannot ping %s: %v", a, err)
	}

	uld.checkEndpoint(t, network, a, ipA)
	uld.checkEndpoint(t, network, b, ipB)

	// A taken static address: the hook fails, so runc create fails and the
	// container does not start; nothing is left attached for it.
	const dup = "ulrt-dup"
	err := ctrd.runContainer(dup, imageRef, runc, "io.underlay.network="+network, "io.underlay.ip="+static)
	if err == nil {
		t.Errorf("%s started with %s, which %s holds", dup, static, b)
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("%s with a taken address: want an \"address already in use\" error, got: %v", dup, err)
	}
	if err := ctrd.remove(dup); err != nil {
		t.Fatalf("remove %s: %v", dup, err)
	}
	if hits := uld.endpoints(t, dup); len(hits) != 0 {
		t.Errorf("endpoint ls lists %s, which never started:\n%s", dup, strings.Join(hits, "\n"))
	}

	// No annotation: underlay-runc and the hook leave the container alone.
	const plain = "ulrt-plain"
	if err := ctrd.runContainer(plain, imageRef, runc); err != nil {
		t.Fatalf("run %s without annotations through underlay-runc: %v", plain, err)
	}
	if out, err := ctrd.exec(plain)("ip", "-o", "link"); err != nil {
		t.Errorf("%s: %v", plain, err)
	} else if strings.Contains(out, "eth0") {
		t.Errorf("%s has no annotation but got an eth0:\n%s", plain, out)
	}
	if err := ctrd.remove(plain); err != nil {
		t.Fatalf("remove %s: %v", plain, err)
	}

	for _, id := range []string{a, b} {
		if err := ctrd.remove(id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
	}
	uld.waitNoEndpoints(t, a, b, ipA, ipB)

	// The static address is free again at once.
	const c = "ulrt-c"
	if err := ctrd.runContainer(c, imageRef, runc, "io.underlay.network="+network, "io.underlay.ip="+static); err != nil {
		t.Fatalf("run %s with the released %s: %v", c, static, err)
	}
	lan.checkEth0(t, c, ctrd.exec(c), static)
	uld.checkEndpoint(t, network, c, static)
	if err := ctrd.remove(c); err != nil {
		t.Fatalf("remove %s: %v", c, err)
	}
	uld.waitNoEndpoints(t, c, static)

	uld.mustCLI(t, "network", "rm", network)
	networkRemoved = true
	if out := uld.mustCLI(t, "network", "ls"); containsWord(out, network) {
		t.Errorf("network ls still lists %s after rm:\n%s", network, out)
	}
}
