package runtime_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// privilegedEnv enables these tests; without it they skip.
	privilegedEnv = "UNDERLAY_PRIVILEGED"
	// binEnv overrides where the built binaries are (default ../../bin).
	binEnv = "UNDERLAY_BIN"
	// eventsEnv=0 stops underlayd following the test's containerd events.
	eventsEnv = "UNDERLAY_RUNTIME_EVENTS"

	cmdTimeout = 60 * time.Second
	busybox    = "/bin/busybox"
	imageRef   = "localhost/underlay/busybox:latest"
)

var binaries = []string{"underlayd", "underlay", "underlay-hook", "underlay-runc"}

// requirePrivileged skips the test unless UNDERLAY_PRIVILEGED=1. When it is
// set, a missing prerequisite fails the test: someone asked for these tests
// and a skip would look like a pass. It returns the directory holding the
// built binaries.
func requirePrivileged(t *testing.T, tools ...string) string {
	t.Helper()
	if os.Getenv(privilegedEnv) != "1" {
		t.Skipf("real-container test: set %s=1 (as root, after make build) to run it", privilegedEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1 but not running as root: these tests create namespaces, links and containers", privilegedEnv)
	}
	bin := os.Getenv(binEnv)
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("resolve bin dir: %v", err)
	}
	for _, b := range binaries {
		fi, err := os.Stat(filepath.Join(bin, b))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s/%s missing or not executable: run `make build` (or set %s)", bin, b, binEnv)
		}
	}
	for _, tool := range append([]string{"ip", "runc"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH: apt-get install containerd runc podman busybox-static iproute2", tool)
		}
	}
	requireStaticBusybox(t)
	return bin
}

// requireStaticBusybox fails unless /bin/busybox is static: the image has no
// libc, so a dynamically linked busybox would not start in it.
func requireStaticBusybox(t *testing.T) {
	t.Helper()
	f, err := elf.Open(busybox)
	if err != nil {
		t.Fatalf("open %s: %v (apt-get install busybox-static)", busybox, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked: apt-get install busybox-static", busybox)
		}
	}
}

// run executes a command with a timeout and returns its stdout; the error
// carries the command line and stderr.
func run(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	// A child that keeps our pipes open (a shim, conmon) must not hang us.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err,
			stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// mustRun is run that fails the test on error.
func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// daemon is a background process the test started and stops at cleanup.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // from Wait, valid once done is closed
	// cleanExit: a non-zero exit after SIGTERM fails the test (underlayd's
	// contract; containerd's exit status is not ours to judge).
	cleanExit bool
}

// startDaemon starts name with args, stdout and stderr to logPath. Cleanup
// sends SIGTERM, waits, then SIGKILL; on failure it logs the log's tail.
func startDaemon(t *testing.T, logPath string, env []string, name string, args ...string) *daemon {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	d := &daemon{name: filepath.Base(name), cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("--- %s log (%s), last lines but info:\n%s", d.name, logPath, tail(logPath, 30))
		}
	})
	return d
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) stop(t *testing.T) {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.cleanExit && d.err != nil {
			t.Errorf("%s did not exit cleanly on SIGTERM: %v", d.name, d.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s ignored SIGTERM for 10s; killing it", d.name)
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// waitFor polls ready every 100 ms until it returns nil, the daemon exits,
// or the timeout passes.
func (d *daemon) waitFor(t *testing.T, what string, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if d.exited() {
			t.Fatalf("%s exited before %s; log:\n%s", d.name, what, tail(d.log, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after %v: %v; log:\n%s", d.name, what, timeout, err, tail(d.log, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail returns the last n lines of a log, leaving out containerd's
// level=info chatter (plugin loading, shim start and stop).
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.Contains(l, "level=info") {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killStrays kills processes whose command line contains marker, a path
// unique to this test (a private socket or directory): shims and conmon
// outlive the daemons that started them by design.
func killStrays(t *testing.T, marker string) {
	t.Helper()
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(marker)) {
			continue
		}
		t.Logf("killing leftover process %d: %s", pid, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// unmountUnder lazily unmounts whatever is still mounted below dir, deepest
// first, so that t.TempDir's removal cannot walk into a container rootfs.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Logf("unmount %s: %v", mounts[i], err)
		}
	}
}

// testEnv is the environment for every command: ours plus extra.
func testEnv(extra ...string) []string {
	return append(os.Environ(), extra...)
}
