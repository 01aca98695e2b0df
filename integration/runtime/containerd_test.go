package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// containerd is testlab's private containerd (Debian's 1.x from PATH) with
// what these tests ask of it: containers of an image through a runtime,
// commands inside them.
type containerd struct {
	*tl.Containerd
	execSeq atomic.Int64
}

// startContainerd starts containerd with env added to ours: the shims, and
// so underlay-runc and underlay-hook, inherit containerd's environment.
func startContainerd(t *testing.T, dir, ns string, env ...string) *containerd {
	t.Helper()
	return &containerd{Containerd: tl.StartContainerd(t, dir, tl.ContainerdOptions{Namespace: ns, Env: env})}
}

// runContainer is `ctr run -d` of image with runcBinary and annotations
// ("key=value"), running `sleep 3600`.
func (c *containerd) runContainer(id, image, runcBinary string, annotations ...string) error {
	args := []string{"run", "-d", "--null-io", "--fifo-dir", c.FifoDir, "--runc-root", c.RuncRoot,
		"--runc-binary", runcBinary}
	for _, a := range annotations {
		args = append(args, "--annotation", a)
	}
	args = append(args, image, id, "sleep", "3600")
	_, err := c.Ctr(args...)
	return err
}

// exec returns an execFunc for container id. ctr 1.6 `task exec` now and
// then exits 0 having lost a short process's output; every command the tests
// run prints something, so empty output is retried.
func (c *containerd) exec(id string) tl.ExecFunc {
	return func(args ...string) (string, error) {
		var out string
		var err error
		for try := 0; try < 3; try++ {
			execID := fmt.Sprintf("ulrt-x%d", c.execSeq.Add(1))
			out, err = c.Ctr(append([]string{"task", "exec", "--fifo-dir", c.FifoDir, "--exec-id", execID, id}, args...)...)
			if err != nil || strings.TrimSpace(out) != "" {
				return out, err
			}
		}
		return out, fmt.Errorf("ctr task exec %s %s: no output in 3 tries", id, strings.Join(args, " "))
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
	lan := tl.NewLAN(t, prefix, "10.77.1.1/24")
	static := lan.Host(50)

	uld := newUnderlayd(t, filepath.Join(dir, "underlayd"))
	ctrd := startContainerd(t, filepath.Join(dir, "containerd"), ns, "UNDERLAY_SOCKET="+uld.Socket)
	// The poststop hook and containerd's events both release addresses;
	// UNDERLAY_RUNTIME_EVENTS=0 leaves the hook alone to prove it.
	if os.Getenv(eventsEnv) == "0" {
		uld.Start()
	} else {
		uld.Start("--containerd-address", ctrd.Socket)
	}

	image := filepath.Join(dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	ctrd.MustCtr(t, "images", "import", image)

	uld.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", lan.Router.Masked().String(),
		"--gateway", lan.Router.Addr().String(), "-o", "parent="+lan.Uplink, network)
	networkRemoved := false
	t.Cleanup(func() {
		if !networkRemoved {
			if _, err := uld.CLI("network", "rm", network); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	if out := uld.MustCLI(t, "network", "ls"); !tl.ContainsWord(out, network) {
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

	ipA := lan.CheckEth0(t, a, ctrd.exec(a), "")
	if ipA == static {
		t.Errorf("%s got the static address %s reserved for %s", a, ipA, b)
	}
	ipB := lan.CheckEth0(t, b, ctrd.exec(b), static)
	checkMAC(t, b, ctrd.exec(b), mac)

	tl.CheckPing(t, a, ctrd.exec(a), ipB)
	tl.CheckPing(t, b, ctrd.exec(b), ipA)
	tl.CheckPing(t, a, ctrd.exec(a), lan.Router.Addr().String())
	tl.CheckPing(t, b, ctrd.exec(b), lan.Router.Addr().String())
	if err := lan.RouterPing(ipA); err != nil {
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
	if err := ctrd.Remove(dup); err != nil {
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
	if err := ctrd.Remove(plain); err != nil {
		t.Fatalf("remove %s: %v", plain, err)
	}

	for _, id := range []string{a, b} {
		if err := ctrd.Remove(id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
	}
	uld.waitNoEndpoints(t, a, b, ipA, ipB)

	// The static address is free again at once.
	const c = "ulrt-c"
	if err := ctrd.runContainer(c, imageRef, runc, "io.underlay.network="+network, "io.underlay.ip="+static); err != nil {
		t.Fatalf("run %s with the released %s: %v", c, static, err)
	}
	lan.CheckEth0(t, c, ctrd.exec(c), static)
	uld.checkEndpoint(t, network, c, static)
	if err := ctrd.Remove(c); err != nil {
		t.Fatalf("remove %s: %v", c, err)
	}
	uld.waitNoEndpoints(t, c, static)

	uld.MustCLI(t, "network", "rm", network)
	networkRemoved = true
	if out := uld.MustCLI(t, "network", "ls"); tl.ContainsWord(out, network) {
		t.Errorf("network ls still lists %s after rm:\n%s", network, out)
	}
}
