package testlab

import (
	"bytes"
	"context"
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
)

// Daemon is bin/underlayd with its socket, state and log in one directory.
// It can be stopped, killed (a crash) and started again on the same state;
// every start appends to the one log file.
type Daemon struct {
	// Socket is dir/underlay.sock; a test may point it elsewhere before a
	// start.
	Socket   string
	StateDir string
	// LogPath is the daemon's stdout and stderr over all its starts.
	LogPath string
	// Wrap, if set before a start, runs underlayd under it: "ip netns
	// exec NS" puts it on a host of its own.
	Wrap []string

	t    testing.TB
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// NewDaemon prepares a daemon in dir that gets args on every start, without
// starting it. The first start registers its cleanup, so that it runs
// before that of anything started earlier (a containerd it follows): stop
// the daemon, fail the test if it does not exit cleanly on SIGTERM, and on
// failure log the last lines of its log.
func NewDaemon(t testing.TB, dir string, args ...string) *Daemon {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &Daemon{Socket: filepath.Join(dir, "underlay.sock"), StateDir: filepath.Join(dir, "state"),
		LogPath: filepath.Join(dir, "underlayd.log"), t: t, args: args}
}

func (d *Daemon) cleanup() {
	if err := d.Stop(); err != nil {
		d.t.Errorf("underlayd: %v", err)
	}
	if d.t.Failed() {
		d.t.Logf("underlayd log (%s), last lines:\n%s", d.LogPath, TailFile(d.LogPath, 40))
	}
}

// StartDaemon starts bin/underlayd in a temp dir and waits until it answers.
func StartDaemon(t testing.TB, args ...string) *Daemon {
	t.Helper()
	d := NewDaemon(t, t.TempDir(), args...)
	d.Start()
	return d
}

// Start (re)starts the daemon, with extra after the daemon's own args for
// this start only, and fails the test if it does not answer.
func (d *Daemon) Start(extra ...string) {
	d.t.Helper()
	if err := d.TryStart(extra...); err != nil {
		d.t.Fatal(err)
	}
}

// TryStart is Start that returns the error instead of failing the test, so
// that any goroutine may call it. It waits up to 10 s for an answer to
// /ping.
func (d *Daemon) TryStart(extra ...string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return errors.New("underlayd already running")
	}
	f, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	d.starts++
	if d.starts == 1 {
		d.t.Cleanup(d.cleanup)
	}
	fmt.Fprintf(f, "--- test: start #%d at %s\n", d.starts, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"--socket", d.Socket, "--state-dir", d.StateDir, "--log-level", "debug"}, d.args...)
	argv := append(append(append([]string{}, d.Wrap...), filepath.Join(BinDir(), "underlayd")), append(args, extra...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
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
	d.cmd, d.done = cmd, done
	c := &api.Client{Socket: d.Socket, Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			d.cmd = nil
			return fmt.Errorf("underlayd exited during start-up: %s", TailFile(d.LogPath, 10))
		default:
		}
		if _, err := c.Call("GET", "/ping", nil); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("underlayd did not answer within 10s: %s", TailFile(d.LogPath, 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill SIGKILLs the daemon (a crash) and waits until it is gone.
func (d *Daemon) Kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
}

// Stop sends SIGTERM and waits; underlayd must exit cleanly within 10 s,
// else it is killed and Stop says so.
func (d *Daemon) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if st := d.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("underlayd exited with %v after SIGTERM", st)
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("underlayd ignored SIGTERM for 10s")
	}
}

// Log is what the daemon printed so far, over all its starts.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// CLI runs bin/underlay against this daemon and returns stdout+stderr.
func (d *Daemon) CLI(args ...string) (string, error) {
	return RunCombined(60*time.Second, nil, filepath.Join(BinDir(), "underlay"), append([]string{"--socket", d.Socket}, args...)...)
}

// MustCLI is CLI that fails the test.
func (d *Daemon) MustCLI(t testing.TB, args ...string) string {
	t.Helper()
	return Must(t)(d.CLI(args...))
}

// Hook runs bin/underlay-hook with stdin against the daemon.
func (d *Daemon) Hook(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir(), "underlay-hook"), args...)
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
