// Package testlab builds throwaway labs for underlay's privileged tests: a
// "physical" LAN made of a veth pair whose far end sits in its own network
// namespace with a router address, a real underlayd from bin/, fake
// containers (processes in fresh network namespaces) and private
// containerds for real ones. Everything it makes carries the caller's
// prefix and is removed by t.Cleanup, even on failure. It never touches the
// host's real interfaces.
package testlab

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Require fails the test loudly when privileged tests were asked for
// (UNDERLAY_PRIVILEGED=1) but cannot run, and skips it otherwise. Besides
// root and make build's binaries, it wants each of tools on PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if os.Getenv("UNDERLAY_PRIVILEGED") != "1" {
		t.Skip("privileged test: run with UNDERLAY_PRIVILEGED=1 as root (make test-privileged)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("UNDERLAY_PRIVILEGED=1 but not root")
	}
	for _, b := range []string{"underlayd", "underlay", "underlay-hook", "underlay-runc"} {
		if fi, err := os.Stat(filepath.Join(BinDir(), b)); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s missing from %s or not executable: run make build (or set UNDERLAY_BIN)", b, BinDir())
		}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH: install it (the package doc says which packages the tests need)", tool)
		}
	}
}

// BinDir is the absolute path of UNDERLAY_BIN, else of the repository's
// bin/: hooks and runtimes get it in specs, where a relative path would
// not resolve.
func BinDir() string {
	d := os.Getenv("UNDERLAY_BIN")
	if d == "" {
		_, file, _, _ := runtime.Caller(0)
		d = filepath.Join(filepath.Dir(file), "..", "..", "bin")
	}
	if abs, err := filepath.Abs(d); err == nil {
		return abs
	}
	return d
}

// Run runs a command and returns its combined output.
func Run(name string, args ...string) (string, error) {
	return RunCombined(0, nil, name, args...)
}

// MustRun is Run that fails the test.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RequireVM is Require for tests that need ipvlan, 802.1q or dummy, which
// only the VM's kernel has (make test-vm sets UNDERLAY_VM=1).
func RequireVM(t testing.TB) {
	t.Helper()
	if os.Getenv("UNDERLAY_VM") != "1" {
		t.Skip("VM-only test (ipvlan, 802.1q, dummy): run make test-vm")
	}
	Require(t)
}

// LinkExists reports whether the host has a link of that name.
func LinkExists(name string) bool {
	_, err := Run("ip", "link", "show", "dev", name)
	return err == nil
}
