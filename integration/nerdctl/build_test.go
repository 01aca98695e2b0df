package nerdctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// ctrd2Version is the containerd 2.x of DESIGN.md, the one
	// integration/lifecycle builds into the same cache.
	ctrd2Version = "v2.4.2"
	// nerdctlVersion is the newest nerdctl v2 the module proxy serves here
	// that builds with this Go (1.26).
	nerdctlVersion = "v2.3.5"
	nerdctlModule  = "github.com/containerd/nerdctl/v2"
)

// containerd2Dir returns the directory holding containerd 2.x, its runc
// shim and ctr, building them into UNDERLAY_CTRD2_CACHE (default
// /var/cache/underlay-ctrd2)/<version> unless they are there already. The
// layout and lock are integration/lifecycle's, so either package's build
// serves both.
func containerd2Dir(t *testing.T) string {
	t.Helper()
	cache := envOr("UNDERLAY_CTRD2_CACHE", "/var/cache/underlay-ctrd2")
	names := []string{"containerd", "containerd-shim-runc-v2", "ctr"}
	return cached(t, "containerd "+ctrd2Version, cache, ctrd2Version, names, func(out string, env []string) (string, error) {
		var pkgs []string
		for _, n := range names {
			pkgs = append(pkgs, "github.com/containerd/containerd/v2/cmd/"+n+"@"+ctrd2Version)
		}
		// Outside any module, so no go.mod is touched.
		return runIn(cache, append(env, "GOBIN="+out), "go", append([]string{"install"}, pkgs...)...)
	})
}

// nerdctlBin returns the path of nerdctl, building it into
// UNDERLAY_NERDCTL_CACHE (default /var/cache/underlay-nerdctl)/<version>
// unless it is there already.
//
// `go install nerdctl@version` cannot work for nerdctl 2.1 and later: its
// go.mod replaces github.com/containerd/nerdctl/mod/tigron (a nested module,
// left out of the module zip) by ./mod/tigron, and go install refuses
// modules with replace directives. So this downloads the module, copies
// it, removes cmd/nerdctl/helpers/testing_linux.go (test helpers and the
// binary's only path to tigron) and builds ./cmd/nerdctl with the module's
// own go.sum, stamping the version as nerdctl's Makefile does.
func nerdctlBin(t *testing.T) string {
	t.Helper()
	cache := envOr("UNDERLAY_NERDCTL_CACHE", "/var/cache/underlay-nerdctl")
	dir := cached(t, "nerdctl "+nerdctlVersion, cache, nerdctlVersion, []string{"nerdctl"}, func(out string, env []string) (string, error) {
		dl, err := runIn(cache, env, "go", "mod", "download", "-json", nerdctlModule+"@"+nerdctlVersion)
		var mod struct{ Dir, Error string }
		if jerr := json.Unmarshal([]byte(dl), &mod); jerr != nil || mod.Error != "" || mod.Dir == "" {
			return dl, fmt.Errorf("go mod download %s@%s: %v %s", nerdctlModule, nerdctlVersion, err, mod.Error)
		}
		src := filepath.Join(filepath.Dir(out), "src")
		if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
			return "", fmt.Errorf("copy %s: %w", mod.Dir, err)
		}
		if err := os.Remove(filepath.Join(src, "cmd", "nerdctl", "helpers", "testing_linux.go")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		ldflags := "-s -w -X " + nerdctlModule + "/pkg/version.Version=" + nerdctlVersion
		return runIn(src, env, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(out, "nerdctl"), "./cmd/nerdctl")
	})
	bin := filepath.Join(dir, "nerdctl")
	if out, err := runIn("", nil, bin, "--version"); err != nil || !strings.Contains(out, strings.TrimPrefix(nerdctlVersion, "v")) {
		t.Fatalf("%s --version: %v: %q, want %s", bin, err, out, nerdctlVersion)
	}
	return bin
}

// cached returns cache/version once it holds every one of names, running
// build (into a temp dir beside it, renamed into place on success) if it
// does not. One build at a time: concurrent test runs wait on a lock.
func cached(t *testing.T, what, cache, version string, names []string, build func(out string, env []string) (string, error)) string {
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
		t.Fatalf("%s cannot be built here, so it cannot be tested: %v\n%s", what, err, tailString(log, 30))
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

// runIn runs a command in dir (no timeout: builds take minutes) and returns
// its combined output.
func runIn(dir string, env []string, name string, args ...string) (string, error) {
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

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
