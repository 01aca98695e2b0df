package testlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Must turns a (string, error) call into one that fails t:
// Must(t)(d.cli("network", "ls")).
func Must(t testing.TB) func(string, error) string {
	t.Helper()
	return func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// Retry calls f up to n times, 200 ms apart, until it returns nil.
func Retry(n int, f func() error) error {
	var err error
	for i := 0; i < n; i++ {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("after %d tries: %w", n, err)
}

// RunStdout runs a command with env (nil: ours) and a timeout, and returns
// its stdout; the error carries the command (its base name) and arguments,
// stderr and stdout. A child that keeps the pipes open (a shim, conmon)
// holds it up at most 5 s after the command exits.
func RunStdout(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err,
			stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// ShortTempDir is a private directory under /tmp named prefix...: unix
// socket paths are limited to 107 bytes, which t.TempDir's long paths
// can exceed. perm, if not 0, is its mode. Cleanup unmounts what is left
// below it and removes it.
func ShortTempDir(t testing.TB, prefix string, perm os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if perm != 0 {
		if err := os.Chmod(dir, perm); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		UnmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return dir
}
