package testlab

import (
	"net/netip"
	"strings"
	"testing"
)

// Eth0IPv4 runs `ip -4 -o addr show dev eth0` through exec, which runs a
// command inside container name, and returns eth0's first IPv4 address
// with its prefix length; it fails t if there is none.
func Eth0IPv4(t testing.TB, name string, exec func(args ...string) (string, error)) netip.Prefix {
	t.Helper()
	out, err := exec("ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var got netip.Prefix
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
			got = p
			break
		}
	}
	if !got.IsValid() {
		t.Fatalf("%s: eth0 has no IPv4 address:\n%s", name, out)
	}
	return got
}
