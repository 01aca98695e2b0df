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

// RunCombined runs a command with env (nil: ours) and a timeout (0: none)
// and returns its combined output; the error carries the command (its base
// name), arguments and output. A child that keeps the pipes open (a shim)
// holds it up at most 2 s after the command exits.
func RunCombined(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err,
			strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// TailFile is the last n lines of the file at path, or why it cannot be
// read.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return TailString(string(b), n)
}

// ContainsWord reports whether w occurs in s delimited by anything that
// cannot be part of a name or address, so "ulrt-a" does not match
// "ulrt-ab" and 10.77.1.5 does not match 10.77.1.50.
func ContainsWord(s, w string) bool {
	isName := func(b byte) bool {
		return b == '-' || b == '_' || b == '.' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		if (start == 0 || !isName(s[start-1])) && (end == len(s) || !isName(s[end])) {
			return true
		}
		i = start + 1
	}
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
