package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	tl "github.com/underlay/underlay/integration/testlab"
)

// bin is the absolute path of one of make build's binaries.
func bin(name string) string {
	p, err := filepath.Abs(filepath.Join(tl.BinDir(), name))
	if err != nil {
		return filepath.Join(tl.BinDir(), name)
	}
	return p
}

// require is testlab.Require plus the host tools these tests call.
func require(t *testing.T, tools ...string) {
	t.Helper()
	tl.Require(t)
	for _, tool := range append([]string{"ip", "unshare", "nsenter"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH (apt-get install containerd runc iproute2 util-linux busybox-static)", tool)
		}
	}
}

// tempDir is a world-traversable (0755) directory under /tmp with a short
// path: unix socket paths are limited to 107 bytes, and the access tests run
// the CLI as other users.
func tempDir(t *testing.T) string {
	t.Helper()
	return tl.ShortTempDir(t, "ull", 0o755)
}

// run runs a command with a timeout and returns its combined output; the
// error carries the command line and the output.
func run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	// A child that keeps our pipes open (a shim) must not hang us.
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err,
			strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// waitFor polls cond every step until it returns nil or timeout passes, and
// returns how long it took.
func waitFor(timeout, step time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), err
		}
		time.Sleep(step)
	}
}

// underlayd is bin/underlayd with its socket and state in a directory of the
// test. It can be killed and started again on the same state; every start
// appends to one log file.
type underlayd struct {
	t        *testing.T
	Socket   string
	StateDir string
	args     []string
	logPath  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// newUnderlayd prepares a daemon in dir without starting it.
func newUnderlayd(t *testing.T, dir string, args ...string) *underlayd {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &underlayd{t: t, Socket: filepath.Join(dir, "underlay.sock"), StateDir: filepath.Join(dir, "state"),
		args: args, logPath: filepath.Join(dir, "underlayd.log")}
	t.Cleanup(func() {
		if err := u.stop(); err != nil {
			t.Errorf("underlayd: %v", err)
		}
		if t.Failed() {
			t.Logf("underlayd log (%s), last lines:\n%s", u.logPath, tailFile(u.logPath, 40))
		}
	})
	return u
}

// startUnderlayd starts a daemon and fails the test if it does not answer.
func startUnderlayd(t *testing.T, dir string, args ...string) *underlayd {
	t.Helper()
	u := newUnderlayd(t, dir, args...)
	if err := u.start(); err != nil {
		t.Fatal(err)
	}
	return u
}

// start starts the daemon and waits until it answers /ping. Safe to call
// from any goroutine; it never fails the test itself.
func (u *underlayd) start() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd != nil {
		return errors.New("underlayd already running")
	}
	f, err := os.OpenFile(u.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	u.starts++
	fmt.Fprintf(f, "--- test: start #%d at %s\n", u.starts, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"--socket", u.Socket, "--state-dir", u.StateDir, "--log-level", "debug"}, u.args...)
	cmd := exec.Command(bin("underlayd"), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start underlayd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	u.cmd, u.done = cmd, done
	c := &api.Client{Socket: u.Socket, Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			u.cmd = nil
			return fmt.Errorf("underlayd exited during start-up: %s", tailFile(u.logPath, 10))
		default:
		}
		if _, err := c.Call("GET", "/ping", nil); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("underlayd did not answer within 10s: %s", tailFile(u.logPath, 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill SIGKILLs the daemon (a crash) and waits until it is gone.
func (u *underlayd) kill() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return
	}
	_ = u.cmd.Process.Kill()
	<-u.done
	u.cmd = nil
}

// stop sends SIGTERM and waits; underlayd must exit cleanly within 10s.
func (u *underlayd) stop() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return nil
	}
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
	defer func() { u.cmd = nil }()
	select {
	case <-u.done:
		if st := u.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("underlayd exited with %v after SIGTERM", st)
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = u.cmd.Process.Kill()
		<-u.done
		return errors.New("underlayd ignored SIGTERM for 10s")
	}
}

// log is everything the daemon printed, over all its starts.
func (u *underlayd) log() string {
	b, _ := os.ReadFile(u.logPath)
	return string(b)
}

// cli runs the underlay CLI against this daemon.
func (u *underlayd) cli(args ...string) (string, error) {
	return run(30*time.Second, nil, bin("underlay"), append([]string{"--socket", u.Socket}, args...)...)
}

func (u *underlayd) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(u.cli(args...))
}

// ociState is the state a runtime gives a hook on stdin.
type ociState struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// hook runs bin/underlay-hook STAGE with st on stdin against this daemon.
func (u *underlayd) hook(stage string, st ociState) (string, error) {
	if st.Version == "" {
		st.Version = "1.0.2"
	}
	if st.Status == "" {
		st.Status = map[string]string{"createRuntime": "creating", "poststop": "stopped"}[stage]
	}
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("underlay-hook"), stage)
	cmd.Env = append(os.Environ(), "UNDERLAY_SOCKET="+u.Socket)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// endpointRow is one line of `underlay endpoint ls`, what the user sees.
type endpointRow struct {
	Network, Container, IfName, MAC, State string
	Addresses                              []string
}

func (r endpointRow) String() string {
	return fmt.Sprintf("%s %s %s %s %s %s", r.Network, r.Container, r.IfName, strings.Join(r.Addresses, ","), r.MAC, r.State)
}

// endpoints parses `underlay endpoint ls`.
func (u *underlayd) endpoints() ([]endpointRow, error) {
	fields, err := tl.EndpointRows(u.cli)
	if err != nil {
		return nil, err
	}
	var rows []endpointRow
	for _, f := range fields {
		rows = append(rows, endpointRow{Network: f[0], Container: f[1], IfName: f[2],
			Addresses: strings.Split(f[3], ","), MAC: f[4], State: f[5]})
	}
	return rows, nil
}

// mustHook runs the hook at stage (createRuntime or poststop) for f on
// network and stops the test if it fails.
func (u *underlayd) mustHook(t *testing.T, stage string, f *fake, network string) {
	t.Helper()
	if out, err := u.hook(stage, f.state("", annFor(network))); err != nil {
		t.Fatalf("%s of %s: %v: %s", stage, f.id, err, out)
	}
}

func (u *underlayd) mustEndpoints(t *testing.T) []endpointRow {
	t.Helper()
	rows, err := u.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// endpointOf returns the row of container (as endpoint ls names it:
// "namespace/id" for containerd containers) on network, if any.
func (u *underlayd) endpointOf(t *testing.T, network, container string) (endpointRow, bool) {
	t.Helper()
	for _, r := range u.mustEndpoints(t) {
		if r.Network == network && r.Container == container {
			return r, true
		}
	}
	return endpointRow{}, false
}

// waitGone polls endpoint ls until container has no endpoint, and returns
// how long that took after the call.
func (u *underlayd) waitGone(t *testing.T, container string, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	return waitFor(timeout, 20*time.Millisecond, func() error {
		rows, err := u.endpoints()
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Container == container {
				return fmt.Errorf("endpoint ls still lists %s: %s", container, r)
			}
		}
		return nil
	})
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mustContain fails unless out contains every want.
func mustContain(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, out)
		}
	}
}
