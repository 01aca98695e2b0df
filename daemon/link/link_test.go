package link

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidIfName(t *testing.T) {
	for _, ok := range []string{"eth0", "eth0.10", "enp3s0f1", "a", "bond0.4094", "abcdefghijklmno"} {
		if err := ValidIfName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"": "empty", "abcdefghijklmnop": "longer than 15", "eth 0": "invalid", "eth/0": "invalid",
		"eth:0": "invalid", ".": "invalid", "..": "invalid",
	} {
		if err := ValidIfName(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", bad, err, want)
		}
	}
}

func TestValidMode(t *testing.T) {
	cases := []struct{ kind, mode, flag, err string }{
		{"macvlan", "bridge", "", ""}, {"macvlan", "passthru", "", ""}, {"macvlan", "l2", "", "unknown macvlan_mode"},
		{"ipvlan", "l3s", "private", ""}, {"ipvlan", "l2", "", ""}, {"ipvlan", "l4", "", "unknown ipvlan_mode"},
		{"ipvlan", "l2", "loose", "unknown ipvlan_flag"}, {"bridge", "", "", "unknown driver"},
	}
	for _, c := range cases {
		err := ValidMode(c.kind, c.mode, c.flag)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		m, err := RandomMAC()
		if err != nil {
			t.Fatal(err)
		}
		if m[0]&1 != 0 || m[0]&2 == 0 {
			t.Fatalf("%s is not a locally administered unicast MAC", m)
		}
		seen[m.String()] = true
	}
	if len(seen) < 100 {
		t.Fatal("repeated MACs")
	}
}

// OpenPath says what is wrong with a path that is no network namespace,
// instead of setns' "invalid argument" later; the caller names the path.
func TestOpenPathRefusesWhatIsNoNetworkNamespace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	for path, want := range map[string]string{
		filepath.Join(t.TempDir(), "none"): "no such file",
		file:                               "not a network namespace",
		"/proc/self/ns/uts":                "not a network namespace",
		"/proc/self/ns/net":                "host network namespace",
	} {
		ns, err := OpenPath(path)
		if err == nil {
			ns.Close()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenPath(%s): %v, want %q", path, err, want)
		}
	}
}
