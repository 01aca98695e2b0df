package runtime_test

import (
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// checkMAC asserts eth0's MAC address inside a container.
func checkMAC(t *testing.T, name string, exec tl.ExecFunc, want string) {
	t.Helper()
	out, err := exec("cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got := strings.TrimSpace(out); !strings.EqualFold(got, want) {
		t.Errorf("%s: eth0 MAC %s, want %s", name, got, want)
	}
}
