package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// contrib/systemd/underlayd.service passes systemd's own check beside the
// runtimes it orders itself before: no ordering cycle (After= and Before=
// containerd together made one), no unknown directive. The only complaint
// allowed is the binary, which this test does not install.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found (Debian's systemd package): the unit cannot be checked")
	}
	unit, err := os.ReadFile("../contrib/systemd/underlayd.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{"underlayd.service": string(unit)}
	for _, rt := range []string{"containerd", "podman", "crio"} {
		// Stubs shaped like the real units: after the network.
		files[rt+".service"] = "[Unit]\nAfter=network-online.target\n[Service]\nExecStart=/bin/true\n"
	}
	var args []string
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, filepath.Join(dir, name))
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, args...)...)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "/usr/local/bin/underlayd is not executable") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
