package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

const (
	// privilegedEnv enables these tests; without it they skip.
	privilegedEnv = "UNDERLAY_PRIVILEGED"
	// binEnv overrides where the built binaries are (default ../../bin).
	binEnv = "UNDERLAY_BIN"
	// eventsEnv=0 stops underlayd following the test's containerd events.
	eventsEnv = "UNDERLAY_RUNTIME_EVENTS"

	cmdTimeout = 60 * time.Second
	busybox    = tl.Busybox
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
	tl.RequireStaticBusybox(t)
	return bin
}

// run executes a command with a timeout and returns its stdout; the error
// carries the command line and stderr.
func run(env []string, name string, args ...string) (string, error) {
	return tl.RunStdout(cmdTimeout, env, name, args...)
}

// mustRun is run that fails the test on error.
func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	return tl.Must(t)(run(env, name, args...))
}

// daemon is a background process the test started and stops at cleanup.
type daemon = tl.Proc

// testEnv is the environment for every command: ours plus extra.
func testEnv(extra ...string) []string {
	return append(os.Environ(), extra...)
}
