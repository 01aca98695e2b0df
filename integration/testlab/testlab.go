// Package testlab builds throwaway labs for underlay's privileged tests: a
// "physical" LAN made of a veth pair whose far end sits in its own network
// namespace with a router address, a real underlayd from bin/, and fake
// containers (processes in fresh network namespaces). Everything it makes
// carries the caller's prefix and is removed by t.Cleanup, even on failure.
// It never touches the host's real interfaces.
package testlab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Require fails the test loudly when privileged tests were asked for
// (UNDERLAY_PRIVILEGED=1) but cannot run, and skips it otherwise.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv("UNDERLAY_PRIVILEGED") != "1" {
		t.Skip("privileged test: run with UNDERLAY_PRIVILEGED=1 as root (make test-privileged)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("UNDERLAY_PRIVILEGED=1 but not root")
	}
	for _, b := range []string{"underlayd", "underlay", "underlay-hook"} {
		if _, err := os.Stat(filepath.Join(BinDir(), b)); err != nil {
			t.Fatalf("%s missing from %s: run make build (or set UNDERLAY_BIN)", b, BinDir())
		}
	}
}

// BinDir is UNDERLAY_BIN, else the repository's bin/.
func BinDir() string {
	if d := os.Getenv("UNDERLAY_BIN"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "bin")
}

// Run runs a command and returns its combined output.
func Run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// MustRun is Run that fails the test.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// LAN is a veth pair: Uplink in the host namespace is the parent for
// networks under test; its peer lan0 sits in namespace NS with the router's
// address.
type LAN struct {
	Uplink string
	NS     string
}

// NewLAN makes a LAN whose router holds each of routerCIDRs.
func NewLAN(t testing.TB, prefix string, routerCIDRs ...string) *LAN {
	t.Helper()
	l := &LAN{Uplink: prefix + "up", NS: prefix + "-lan"}
	l.remove()
	t.Cleanup(l.remove)
	MustRun(t, "ip", "netns", "add", l.NS)
	MustRun(t, "ip", "link", "add", l.Uplink, "type", "veth", "peer", "name", prefix+"dn")
	MustRun(t, "ip", "link", "set", prefix+"dn", "netns", l.NS)
	MustRun(t, "ip", "-n", l.NS, "link", "set", prefix+"dn", "name", "lan0")
	for _, c := range routerCIDRs {
		args := []string{"-n", l.NS, "addr", "add", c, "dev", "lan0"}
		if strings.Contains(c, ":") {
			args = append(args, "nodad")
		}
		MustRun(t, "ip", args...)
	}
	MustRun(t, "ip", "-n", l.NS, "link", "set", "lo", "up")
	MustRun(t, "ip", "-n", l.NS, "link", "set", "lan0", "up")
	MustRun(t, "ip", "link", "set", l.Uplink, "up")
	return l
}

func (l *LAN) remove() {
	_ = exec.Command("ip", "link", "del", l.Uplink).Run()
	_ = exec.Command("ip", "netns", "del", l.NS).Run()
}

// Ping pings addr from the router's namespace.
func (l *LAN) Ping(addr string) error {
	_, err := Run("ip", "netns", "exec", l.NS, "ping", "-c", "1", "-W", "2", addr)
	return err
}

// Daemon is a running underlayd with private state.
type Daemon struct {
	Socket   string
	StateDir string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	t        testing.TB
}

// StartDaemon starts bin/underlayd in a temp dir and waits for its socket.
func StartDaemon(t testing.TB, extra ...string) *Daemon {
	t.Helper()
	dir := t.TempDir()
	d := &Daemon{Socket: filepath.Join(dir, "underlay.sock"), StateDir: filepath.Join(dir, "state"), t: t}
	d.Start(extra...)
	t.Cleanup(d.Stop)
	return d
}

// Start (re)starts the daemon on the same state.
func (d *Daemon) Start(extra ...string) {
	d.t.Helper()
	d.log = &bytes.Buffer{}
	args := append([]string{"--socket", d.Socket, "--state-dir", d.StateDir, "--log-level", "debug"}, extra...)
	d.cmd = exec.Command(filepath.Join(BinDir(), "underlayd"), args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := d.CLI("network", "ls"); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Stop()
	d.t.Fatalf("underlayd did not answer within 2s: %s", d.log)
}

// Stop sends SIGTERM and waits; the log is attached to a failed test.
func (d *Daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	if d.t.Failed() {
		d.t.Logf("underlayd log:\n%s", d.log)
	}
	d.cmd = nil
}

// Log is what the daemon printed so far.
func (d *Daemon) Log() string { return d.log.String() }

// CLI runs bin/underlay against this daemon and returns stdout+stderr.
func (d *Daemon) CLI(args ...string) (string, error) {
	return Run(filepath.Join(BinDir(), "underlay"), append([]string{"--socket", d.Socket}, args...)...)
}

// MustCLI is CLI that fails the test.
func (d *Daemon) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.CLI(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Container is a process in a fresh network namespace, standing in for a
// container whose runtime is at createRuntime.
type Container struct {
	ID  string
	Pid int
	cmd *exec.Cmd
}

// NewContainer starts a process in a new network namespace.
func NewContainer(t testing.TB, id string) *Container {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Container{ID: id, Pid: cmd.Process.Pid, cmd: cmd}
	t.Cleanup(c.Kill)
	// unshare execs sleep once the namespace exists; wait for that.
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 200; i++ {
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", c.Pid)); ns != "" && ns != self {
			return c
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("container %s never got its own network namespace", id)
	return nil
}

// Kill ends the container; its namespace and interfaces go with it.
func (c *Container) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		c.cmd = nil
	}
}

// Exec runs a command inside the container's network namespace.
func (c *Container) Exec(args ...string) (string, error) {
	// No "--": busybox's nsenter (in the VM) does not take it. A full
	// path, or busybox would run its own applet (its ip lacks -br, -d).
	if p, err := exec.LookPath(args[0]); err == nil {
		args = append([]string{p}, args[1:]...)
	}
	return Run("nsenter", append([]string{"-t", fmt.Sprint(c.Pid), "-n"}, args...)...)
}

// State is the OCI state the runtime gives a hook.
func (c *Container) State(status string, ann map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": c.ID, "status": status,
		"pid": c.Pid, "bundle": "/nonexistent/" + c.ID, "annotations": ann})
	return b
}

// Hook runs bin/underlay-hook with stdin against the daemon.
func (d *Daemon) Hook(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(BinDir(), "underlay-hook"), args...)
	cmd.Env = append(os.Environ(), "UNDERLAY_SOCKET="+d.Socket)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Attach runs the createRuntime hook for c with annotations ann.
func (d *Daemon) Attach(c *Container, ann map[string]string) (string, error) {
	return d.Hook(c.State("creating", ann), "createRuntime")
}

// Detach runs the poststop hook for c.
func (d *Daemon) Detach(c *Container, ann map[string]string) (string, error) {
	return d.Hook(c.State("stopped", ann), "poststop")
}

// Endpoints returns `underlay endpoint ls` rows as field lists (no header).
func (d *Daemon) Endpoints(t testing.TB) [][]string {
	t.Helper()
	var rows [][]string
	for i, line := range strings.Split(strings.TrimSpace(d.MustCLI(t, "endpoint", "ls")), "\n") {
		if i > 0 && line != "" {
			rows = append(rows, strings.Fields(line))
		}
	}
	return rows
}

// RequireVM is Require for tests that need ipvlan, 802.1q or dummy, which
// only the VM's kernel has (make test-vm sets UNDERLAY_VM=1).
func RequireVM(t testing.TB) {
	t.Helper()
	if os.Getenv("UNDERLAY_VM") != "1" {
		t.Skip("VM-only test (ipvlan, 802.1q, dummy): run make test-vm")
	}
	Require(t)
}

// LinkExists reports whether the host has a link of that name.
func LinkExists(name string) bool {
	_, err := Run("ip", "link", "show", "dev", name)
	return err == nil
}
