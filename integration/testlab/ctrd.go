package testlab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ContainerdOptions says which containerd StartContainerd runs, and how.
type ContainerdOptions struct {
	// BinDir holds containerd, containerd-shim-runc-v2 and ctr (see
	// Containerd2Dir); it goes first on their PATH. Empty: PATH's.
	BinDir string
	// V3 writes a version 3 config (containerd 2.x), else version 2.
	V3 bool
	// Namespace is the containerd namespace ctr works in; cleanup also
	// removes the containers' cgroups under /<Namespace>.
	Namespace string
	// Env is added to containerd's environment; its shims, and so runc,
	// underlay-runc and the hooks, inherit it.
	Env []string
	// StrayMarker: cleanup SIGKILLs processes whose command line contains
	// it (shims and log forwarders outlive containerd by design). Empty:
	// the socket's path.
	StrayMarker string
}

// Containerd is a private containerd: root, state, socket, runc root, fifo
// dir, config and log under Dir, CRI disabled, never a system containerd's
// paths. It can be killed and started again.
type Containerd struct {
	Dir       string
	Socket    string
	Namespace string
	// RuncRoot and FifoDir are for ctr's --runc-root and --fifo-dir.
	RuncRoot string
	FifoDir  string

	t       testing.TB
	o       ContainerdOptions
	config  string
	logPath string
	proc    *Proc
}

// StartContainerd starts containerd in dir and waits until ctr gets an
// answer. Cleanup removes what the test left, in this order: every
// container of the namespace, containerd, stray processes, processes left
// in the namespace's cgroups, mounts under dir, those cgroups, the shims'
// leftovers under /run/containerd and, if it was ours, /run/containerd.
func StartContainerd(t testing.TB, dir string, o ContainerdOptions) *Containerd {
	t.Helper()
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "c.sock"), Namespace: o.Namespace,
		RuncRoot: filepath.Join(dir, "runc"), FifoDir: filepath.Join(dir, "fifo"),
		t: t, o: o, logPath: filepath.Join(dir, "containerd.log")}
	c.config = writeContainerdConfig(t, dir, c.Socket, o.V3, "runc", "fifo")
	marker := o.StrayMarker
	if marker == "" {
		marker = c.Socket
	}
	// The shims put sockets (and runc state) under /run/containerd whatever
	// the config says.
	removeRunDirs := runDirRemover()
	t.Cleanup(func() {
		if c.running() {
			c.RemoveAll()
		}
		if c.proc != nil {
			c.proc.Stop(t)
		}
		KillStrays(t, marker)
		killCgroups(t, c.Namespace)
		UnmountUnder(t, dir)
		removeCgroups(t, c.Namespace)
		removeShimLeftovers(t, c.Socket, c.Namespace)
		removeRunDirs("s", "fifo", "runc")
		if t.Failed() {
			t.Logf("containerd log (%s), last lines but info:\n%s", c.logPath, TailNoInfo(c.logPath, 30))
		}
	})
	c.Start()
	return c
}

// env is the environment of containerd and ctr: the flavor's own binaries
// first on PATH, so a 2.x containerd never starts the system's 1.x shim.
func (c *Containerd) env() []string {
	if c.o.BinDir == "" {
		return os.Environ()
	}
	return pathFirst(c.o.BinDir)
}

func (c *Containerd) bin(name string) string {
	if c.o.BinDir == "" {
		return name
	}
	return filepath.Join(c.o.BinDir, name)
}

func (c *Containerd) running() bool { return c.proc != nil && !c.proc.Exited() }

// Start (re)starts containerd and waits up to 20 s until `ctr version`
// answers; it fails the test if containerd does not.
func (c *Containerd) Start() {
	c.t.Helper()
	if c.running() {
		c.t.Fatal("containerd already running")
	}
	p, err := startProc(c.logPath, append(c.env(), c.o.Env...), c.bin("containerd"), "--config", c.config)
	if err != nil {
		c.t.Fatal(err)
	}
	p.Poll = 50 * time.Millisecond
	c.proc = p
	p.WaitFor(c.t, "answer on "+c.Socket, 20*time.Second, func() error {
		_, err := c.Ctr("version")
		return err
	})
}

// Kill SIGKILLs containerd (a crash); its shims and containers live on.
func (c *Containerd) Kill() {
	if c.running() {
		c.proc.kill()
	}
}

// Ctr runs ctr against this containerd and namespace and returns its
// stdout.
func (c *Containerd) Ctr(args ...string) (string, error) {
	return RunStdout(60*time.Second, c.env(), c.bin("ctr"), append([]string{"--address", c.Socket, "--namespace", c.Namespace}, args...)...)
}

// MustCtr is Ctr that fails the test.
func (c *Containerd) MustCtr(t testing.TB, args ...string) string {
	t.Helper()
	return Must(t)(c.Ctr(args...))
}

// Task returns the PID and STATUS columns of `ctr task ls` for id; status
// is "" if id has no task.
func (c *Containerd) Task(id string) (pid int, status string) {
	out, err := c.Ctr("task", "ls")
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

// KillTask SIGKILLs id's task and waits up to 10 s until containerd no
// longer reports it running.
func (c *Containerd) KillTask(id string) error {
	if _, err := c.Ctr("task", "kill", "-s", "SIGKILL", id); err != nil {
		if _, st := c.Task(id); st == "RUNNING" {
			return err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, st := c.Task(id); st != "RUNNING" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task %s still running 10s after SIGKILL", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Containers lists the ids of the namespace's containers.
func (c *Containerd) Containers() ([]string, error) {
	out, err := c.Ctr("container", "ls", "-q")
	return strings.Fields(out), err
}

// Remove is what a user does: kill the task and wait until it stopped,
// task rm (runc delete runs the poststop hook), container rm.
func (c *Containerd) Remove(id string) error {
	if _, st := c.Task(id); st != "" {
		if st != "STOPPED" {
			if err := c.KillTask(id); err != nil {
				return err
			}
		}
		if _, err := c.Ctr("task", "rm", id); err != nil {
			return err
		}
	}
	ids, err := c.Containers()
	if err != nil {
		return err
	}
	for _, l := range ids {
		if l == id {
			_, err = c.Ctr("container", "rm", id)
			return err
		}
	}
	return nil
}

// RemoveAll removes every container of the namespace, by force where
// Remove fails (cleanup).
func (c *Containerd) RemoveAll() {
	ids, err := c.Containers()
	if err != nil {
		c.t.Logf("cleanup: %v", err)
		return
	}
	for _, id := range ids {
		if err := c.Remove(id); err != nil {
			c.t.Logf("cleanup: remove %s: %v", id, err)
			_, _ = c.Ctr("task", "rm", "-f", id)
			_, _ = c.Ctr("container", "rm", id)
		}
	}
}

// BundleSpec reads the config.json that containerd's shim gave runc for
// id: the spec as the runtime saw it, hooks included.
func (c *Containerd) BundleSpec(id string) (specs.Spec, error) {
	var s specs.Spec
	path := filepath.Join(c.Dir, "state", "io.containerd.runtime.v2.task", c.Namespace, id, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("bundle config: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
