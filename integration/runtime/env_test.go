package runtime_test

import (
	"os"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

const (
	// eventsEnv=0 stops underlayd following the test's containerd events.
	eventsEnv = "UNDERLAY_RUNTIME_EVENTS"

	cmdTimeout = 60 * time.Second
	imageRef   = "localhost/underlay/busybox:latest"
)

// requirePrivileged skips the test unless UNDERLAY_PRIVILEGED=1. When it is
// set, a missing prerequisite fails the test: someone asked for these tests
// and a skip would look like a pass. It returns the directory holding the
// built binaries.
func requirePrivileged(t *testing.T, tools ...string) string {
	t.Helper()
	tl.Require(t, append([]string{"ip", "runc"}, tools...)...)
	tl.RequireStaticBusybox(t)
	return tl.BinDir()
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

// testEnv is the environment for every command: ours plus extra.
func testEnv(extra ...string) []string {
	return append(os.Environ(), extra...)
}
