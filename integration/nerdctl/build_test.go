package nerdctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

const (
	// nerdctlVersion is the newest nerdctl v2 the module proxy serves here
	// that builds with this Go (1.26).
	nerdctlVersion = "v2.3.5"
	nerdctlModule  = "github.com/containerd/nerdctl/v2"
)

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
	cache := tl.EnvOr("UNDERLAY_NERDCTL_CACHE", "/var/cache/underlay-nerdctl")
	dir := tl.Cached(t, "nerdctl "+nerdctlVersion, cache, nerdctlVersion, []string{"nerdctl"}, func(out string, env []string) (string, error) {
		dl, err := tl.RunIn(cache, env, "go", "mod", "download", "-json", nerdctlModule+"@"+nerdctlVersion)
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
		return tl.RunIn(src, env, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(out, "nerdctl"), "./cmd/nerdctl")
	})
	bin := filepath.Join(dir, "nerdctl")
	if out, err := tl.RunIn("", nil, bin, "--version"); err != nil || !strings.Contains(out, strings.TrimPrefix(nerdctlVersion, "v")) {
		t.Fatalf("%s --version: %v: %q, want %s", bin, err, out, nerdctlVersion)
	}
	return bin
}
