package testlab

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// containerdConfig is the config.toml of a private containerd: root, state
// and opt under dir, gRPC on sock (ttrpc on sock.ttrpc), no debug or
// metrics listener, CRI disabled. v3 writes a version 3 config (containerd
// 2.x), else version 2 (containerd 1.x).
func containerdConfig(dir, sock string, v3 bool) string {
	version, disabled := 2, `"io.containerd.grpc.v1.cri"`
	if v3 {
		version, disabled = 3, `"io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.grpc.v1.cri"`
	}
	return fmt.Sprintf(`version = %[5]d
root = %[1]q
state = %[2]q
disabled_plugins = [%[6]s]
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, filepath.Join(dir, "opt"), version, disabled)
}

// writeContainerdConfig makes dir's root, state and opt directories and
// each of extraDirs (0711), writes containerdConfig to dir/config.toml and
// returns that file's path.
func writeContainerdConfig(t testing.TB, dir, sock string, v3 bool, extraDirs ...string) string {
	t.Helper()
	for _, d := range append([]string{"root", "state", "opt"}, extraDirs...) {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(containerdConfig(dir, sock, v3)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// pathFirst is our environment with dir first on PATH, so that a
// containerd from dir starts its own shim, not the system's.
func pathFirst(dir string) []string {
	env := os.Environ()
	for i, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			env[i] = "PATH=" + dir + ":" + strings.TrimPrefix(e, "PATH=")
			return env
		}
	}
	return append(env, "PATH="+dir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

// TailNoInfo is the last n lines of a log file without containerd's
// level=info chatter (plugin loading, shim start and stop).
func TailNoInfo(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.Contains(l, "level=info") {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RequireStaticBusybox fails unless Busybox is statically linked: the test
// images have no libc, so a dynamically linked busybox would not start.
func RequireStaticBusybox(t testing.TB) {
	t.Helper()
	f, err := elf.Open(Busybox)
	if err != nil {
		t.Fatalf("open %s: %v (apt-get install busybox-static)", Busybox, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked: apt-get install busybox-static", Busybox)
		}
	}
}

// EndpointRows runs `underlay endpoint ls` through cli (the CLI pointed at
// a daemon) and parses its output: it checks the header and returns each
// row's six fields (network, container, interface, addresses, MAC, state),
// skipping blank lines.
func EndpointRows(cli func(args ...string) (string, error)) ([][]string, error) {
	out, err := cli("endpoint", "ls")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NETWORK") {
		return nil, fmt.Errorf("endpoint ls: no header:\n%s", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("endpoint ls: unexpected line %q", l)
		}
		rows = append(rows, f)
	}
	return rows, nil
}

// PathFirst is our environment with dir first on PATH (pathFirst).
func PathFirst(dir string) []string { return pathFirst(dir) }
