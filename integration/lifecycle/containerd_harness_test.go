package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	tl "github.com/underlay/underlay/integration/testlab"
)

// flavor is one containerd: Debian's 1.6 from PATH, or a 2.x built into a
// cache directory.
type flavor struct {
	name string
	// dir holds containerd, ctr and containerd-shim-runc-v2; empty: PATH.
	dir string
	// v3 writes a version 3 config (containerd 2.x).
	v3 bool
}

var debianContainerd = flavor{name: "containerd 1.6 (Debian)"}

func (f flavor) path(name string) string {
	if f.dir == "" {
		return name
	}
	return filepath.Join(f.dir, name)
}

// env is the environment containerd runs with: its own shim first on PATH,
// so a 2.x containerd never starts Debian's 1.6 shim.
func (f flavor) env() []string {
	if f.dir == "" {
		return os.Environ()
	}
	return tl.PathFirst(f.dir)
}

// containerd is a private containerd: root, state, sockets, runc root and
// fifo dir under dir, CRI disabled. It can be killed and started again.
type containerd struct {
	t        *testing.T
	f        flavor
	dir      string
	sock     string
	ns       string
	runcRoot string
	fifoDir  string
	config   string
	logPath  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startContainerd starts containerd of flavor f in dir and registers its
// removal (containers first, then the daemon, stray shims and mounts).
func startContainerd(t *testing.T, f flavor, dir, ns string) *containerd {
	t.Helper()
	c := &containerd{t: t, f: f, dir: dir, sock: filepath.Join(dir, "c.sock"), ns: ns,
		runcRoot: filepath.Join(dir, "runc"), fifoDir: filepath.Join(dir, "fifo"),
		config: filepath.Join(dir, "config.toml"), logPath: filepath.Join(dir, "containerd.log")}
	tl.WriteContainerdConfig(t, dir, c.sock, f.v3, "runc", "fifo")
	// The shims put sockets under /run/containerd whatever the config says;
	// remove those directories afterwards only if they were ours.
	removeRunDirs := tl.RunDirRemover()
	t.Cleanup(func() {
		if c.running() {
			c.removeAll()
		}
		c.stop()
		tl.KillStrays(t, c.sock)
		tl.UnmountUnder(t, dir)
		removeCgroups(t, ns)
		removeRunDirs("s", "fifo", "runc")
		if t.Failed() {
			t.Logf("%s log, last lines but info:\n%s", f.name, tl.TailNoInfo(c.logPath, 25))
		}
	})
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// start starts containerd and waits until `ctr version` answers.
func (c *containerd) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.f.path("containerd"), "--config", c.config)
	cmd.Env = c.f.env()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", c.f.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	c.cmd, c.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			c.cmd = nil
			return fmt.Errorf("%s exited during start-up:\n%s", c.f.name, tl.TailNoInfo(c.logPath, 20))
		default:
		}
		if _, err := c.ctr("version"); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within 20s: %v", c.f.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *containerd) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil
}

// kill SIGKILLs containerd (a crash); its shims and containers live on.
func (c *containerd) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		_ = c.cmd.Process.Kill()
		<-c.done
		c.cmd = nil
	}
}

func (c *containerd) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// ctr runs the flavor's ctr against this containerd and namespace.
func (c *containerd) ctr(args ...string) (string, error) {
	return tl.RunStdout(60*time.Second, c.f.env(), c.f.path("ctr"), append([]string{"--address", c.sock, "--namespace", c.ns}, args...)...)
}

func (c *containerd) mustCtr(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(c.ctr(args...))
}

// runSpec is `ctr run -d --config spec.json ID`: a container whose spec is
// exactly the one given, hooks included.
func (c *containerd) runSpec(id string, spec []byte) error {
	path := filepath.Join(c.dir, id+".json")
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		return err
	}
	_, err := c.ctr("run", "-d", "--null-io", "--fifo-dir", c.fifoDir, "--runc-root", c.runcRoot, "--config", path, id)
	return err
}

// startTask starts a new task for an existing container (a restart).
func (c *containerd) startTask(id string) error {
	_, err := c.ctr("task", "start", "-d", "--null-io", "--fifo-dir", c.fifoDir, id)
	return err
}

// task returns the PID and STATUS columns of `ctr task ls` for id.
func (c *containerd) task(id string) (int, string) {
	out, err := c.ctr("task", "ls")
	if err != nil {
		return 0, ""
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == id {
			pid, _ := strconv.Atoi(f[1])
			return pid, f[2]
		}
	}
	return 0, ""
}

func (c *containerd) mustPid(t *testing.T, id string) int {
	t.Helper()
	pid, status := c.task(id)
	if status != "RUNNING" || pid == 0 {
		t.Fatalf("task %s: pid %d status %q, want a running task", id, pid, status)
	}
	return pid
}

// killTask SIGKILLs the task and waits until containerd reports it stopped.
func (c *containerd) killTask(id string) error {
	if _, err := c.ctr("task", "kill", "-s", "SIGKILL", id); err != nil {
		return err
	}
	_, err := waitFor(10*time.Second, 50*time.Millisecond, func() error {
		if _, st := c.task(id); st == "RUNNING" {
			return fmt.Errorf("task %s still running 10s after SIGKILL", id)
		}
		return nil
	})
	return err
}

func (c *containerd) containers() []string {
	out, _ := c.ctr("container", "ls", "-q")
	return strings.Fields(out)
}

// removeAll deletes every task and container of the namespace (cleanup).
func (c *containerd) removeAll() {
	for _, id := range c.containers() {
		if _, st := c.task(id); st != "" {
			if st == "RUNNING" {
				_ = c.killTask(id)
			}
			if _, err := c.ctr("task", "rm", "-f", id); err != nil {
				c.t.Logf("cleanup: %v", err)
			}
		}
		if _, err := c.ctr("container", "rm", id); err != nil {
			c.t.Logf("cleanup: %v", err)
		}
	}
}

// bundleConfig reads the config.json containerd's shim gave runc for id.
func (c *containerd) bundleConfig(id string) (specs.Spec, error) {
	var s specs.Spec
	b, err := os.ReadFile(filepath.Join(c.dir, "state", "io.containerd.runtime.v2.task", c.ns, id, "config.json"))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// busyboxRootfs makes a read-only-usable root filesystem holding only
// busybox-static and the applets the containers run.
func busyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "run", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("read /bin/busybox: %v (apt-get install busybox-static)", err)
	}
	tl.RequireStaticBusybox(t)
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep", "ip", "ping"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// hookSpec is the flavor's default spec (`ctr oci spec`) turned into one
// that runs `sleep 3600` in rootfs, asks for networks by annotation, and
// has the createRuntime hook and nothing else: no poststop, so only
// containerd's events can give its addresses back.
func (c *containerd) hookSpec(t *testing.T, id, rootfs, socket string, ann map[string]string) []byte {
	t.Helper()
	out := c.mustCtr(t, "oci", "spec")
	var s specs.Spec
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("ctr oci spec: %v", err)
	}
	s.Root = &specs.Root{Path: rootfs, Readonly: true}
	s.Process.Args = []string{"sleep", "3600"}
	s.Process.Env = []string{"PATH=/bin"}
	s.Process.Terminal = false
	s.Hostname = id
	s.Linux.CgroupsPath = "/" + c.ns + "/" + id
	s.Annotations = ann
	s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
		Path: bin("underlay-hook"),
		Args: []string{"underlay-hook", "createRuntime"},
		Env:  []string{"UNDERLAY_SOCKET=" + socket},
	}}}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// removeCgroups removes the (empty) parent cgroup /<ns> the containers'
// cgroups were made under, in every hierarchy.
func removeCgroups(t *testing.T, ns string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	dirs = append(dirs, "/sys/fs/cgroup/"+ns)
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("cleanup: %v", err)
		}
	}
}
