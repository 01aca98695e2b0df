package testlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd2Version is the containerd 2.x the tests build, as DESIGN.md
// says.
const Containerd2Version = "v2.4.2"

// Containerd2Dir returns the directory holding containerd 2.x, its runc
// shim and ctr, building them into UNDERLAY_CTRD2_CACHE (default
// /var/cache/underlay-ctrd2)/<version> unless they are there already.
// Building needs the Go module proxy and takes about two minutes; every
// package that needs containerd 2.x shares this cache and its lock.
func Containerd2Dir(t testing.TB) string {
	t.Helper()
	cache := EnvOr("UNDERLAY_CTRD2_CACHE", "/var/cache/underlay-ctrd2")
	names := []string{"containerd", "containerd-shim-runc-v2", "ctr"}
	return Cached(t, "containerd "+Containerd2Version, cache, Containerd2Version, names, func(out string, env []string) (string, error) {
		var pkgs []string
		for _, n := range names {
			pkgs = append(pkgs, "github.com/containerd/containerd/v2/cmd/"+n+"@"+Containerd2Version)
		}
		// Outside any module, so no go.mod is touched.
		return RunIn(cache, append(env, "GOBIN="+out), "go", append([]string{"install"}, pkgs...)...)
	})
}

// Cached returns cache/version once it holds every one of names (as
// executables), running build (into a temp dir beside it, renamed into
// place on success) if it does not. build gets that output directory and
// the environment to build with, and returns the build's log. One build at
// a time: concurrent test runs wait on cache/.lock.
func Cached(t testing.TB, what, cache, version string, names []string, build func(out string, env []string) (string, error)) string {
	t.Helper()
	dir := filepath.Join(cache, version)
	have := func() bool {
		for _, n := range names {
			if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if have() {
		return dir
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("%s is not in %s and cannot be built: no go on PATH", what, dir)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("%s cache: %v", what, err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if have() {
		return dir
	}
	work, err := os.MkdirTemp(cache, ".build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "bin")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("building %s into %s (about two minutes, once)", what, dir)
	start := time.Now()
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if log, err := build(out, env); err != nil {
		t.Fatalf("%s cannot be built here, so it cannot be tested: %v\n%s", what, err, TailString(log, 30))
	}
	if err := os.Rename(out, dir); err != nil {
		t.Fatalf("%s cache: %v", what, err)
	}
	t.Logf("built %s in %v", what, time.Since(start).Round(time.Second))
	if !have() {
		t.Fatalf("%s build left no %s in %s", what, strings.Join(names, ", "), dir)
	}
	return dir
}

// RunIn runs a command in dir with env (nil: ours), no timeout (builds
// take minutes), and returns its combined output.
func RunIn(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.String(), err
}

// EnvOr is the environment variable key, or def if it is unset or empty.
func EnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// TailString is the last n lines of s.
func TailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
