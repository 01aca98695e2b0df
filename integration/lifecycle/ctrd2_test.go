package lifecycle

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ctrd2Version is the containerd 2.x the tests build, as DESIGN.md says.
const ctrd2Version = "v2.4.2"

// containerd2 returns containerd 2.x, building containerd, its runc shim
// and ctr into the cache (UNDERLAY_CTRD2_CACHE, default
// /var/cache/underlay-ctrd2/<version>) unless they are there already.
// Building needs the Go module proxy and takes about two minutes.
func containerd2(t *testing.T) flavor {
	t.Helper()
	cache := os.Getenv("UNDERLAY_CTRD2_CACHE")
	if cache == "" {
		cache = "/var/cache/underlay-ctrd2"
	}
	dir := filepath.Join(cache, ctrd2Version)
	f := flavor{name: "containerd " + ctrd2Version, dir: dir, v3: true}
	names := []string{"containerd", "containerd-shim-runc-v2", "ctr"}
	have := func() bool {
		for _, n := range names {
			if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if have() {
		return f
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("containerd 2.x cache: %v", err)
	}
	// One build at a time: concurrent test runs wait for each other.
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if have() {
		return f
	}
	gobin, err := os.MkdirTemp(cache, ".build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(gobin)
	var pkgs []string
	for _, n := range names {
		pkgs = append(pkgs, "github.com/containerd/containerd/v2/cmd/"+n+"@"+ctrd2Version)
	}
	t.Logf("building containerd %s into %s (about two minutes, once)", ctrd2Version, dir)
	start := time.Now()
	env := append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	// Outside any module, so this repository's go.mod is not touched.
	cmd := exec.Command("go", append([]string{"install"}, pkgs...)...)
	cmd.Env, cmd.Dir = env, cache
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("containerd 2.x cannot be built here, so it cannot be tested: go install %s: %v\n%s",
			strings.Join(pkgs, " "), err, tailString(string(out), 30))
	}
	if err := os.Rename(gobin, dir); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatalf("containerd 2.x cache: %v", err)
	}
	t.Logf("built containerd %s in %v", ctrd2Version, time.Since(start).Round(time.Second))
	if !have() {
		t.Fatalf("containerd 2.x build left no binaries in %s", dir)
	}
	return f
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
