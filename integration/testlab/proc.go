package testlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Proc is a background process (containerd, underlayd, ctr events) the
// test started, with stdout and stderr in a log file, stopped at cleanup.
type Proc struct {
	// Name is the base name of the binary, for messages.
	Name string
	Cmd  *exec.Cmd
	// Log is the path of the log file.
	Log  string
	done chan struct{}
	err  error // from Wait, valid once done is closed
	// CleanExit: a non-zero exit after SIGTERM fails the test (underlayd's
	// contract; containerd's exit status is not ours to judge).
	CleanExit bool
	// Poll is how often WaitFor tries; 100 ms unless set.
	Poll time.Duration
}

// StartProc starts name with args and env (nil: ours), stdout and stderr
// to logPath. Cleanup sends SIGTERM, waits 10 s, then SIGKILL; on failure
// it logs the log's last lines but containerd's level=info ones.
func StartProc(t testing.TB, logPath string, env []string, name string, args ...string) *Proc {
	t.Helper()
	p, err := startProc(logPath, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("--- %s log (%s), last lines but info:\n%s", p.Name, logPath, TailNoInfo(logPath, 30))
		}
	})
	return p
}

// startProc is StartProc without the cleanup; the log is appended to, so
// that a process started again keeps one log.
func startProc(logPath string, env []string, name string, args ...string) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: filepath.Base(name), Cmd: cmd, Log: logPath, done: make(chan struct{}), Poll: 100 * time.Millisecond}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// kill SIGKILLs the process and waits until it is gone.
func (p *Proc) kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits; after 10 s it fails the test and kills.
func (p *Proc) Stop(t testing.TB) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.CleanExit && p.err != nil {
			t.Errorf("%s did not exit cleanly on SIGTERM: %v", p.Name, p.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s ignored SIGTERM for 10s; killing it", p.Name)
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// WaitFor polls ready every Poll until it returns nil, the process exits,
// or the timeout passes; the last two fail the test.
func (p *Proc) WaitFor(t testing.TB, what string, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if p.Exited() {
			t.Fatalf("%s exited before %s; log:\n%s", p.Name, what, TailNoInfo(p.Log, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after %v: %v; log:\n%s", p.Name, what, timeout, err, TailNoInfo(p.Log, 30))
		}
		time.Sleep(p.Poll)
	}
}
