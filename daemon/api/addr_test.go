package api

import (
	"net/netip"
	"testing"
)

func TestParseAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
		{"2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"},
		{"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},
		{"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"::", "::"},
		{"1::", "1::"},
		{"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
		{"1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"},
	} {
		a, err := ParseAddr(c.in)
		if err != nil || a.String() != c.want {
			t.Errorf("ParseAddr(%q) = %q, %v; want %q", c.in, a, err, c.want)
		}
	}
	for _, bad := range []string{"", "1.2.3", "01.2.3.4", "1.2.3.256", "1.2.3.4%eth0", "1:2", "1::2::3", "::1:", ":::",
		"12345::", "fe80::1%", "%eth0", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "1.2.3.4::", "::1.2.3"} {
		if a, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) = %q, want an error", bad, a)
		}
	}
}

// FuzzAddr holds ParseAddr, ParsePrefix and String to net/netip's: the
// same inputs accepted, the same address, family and text.
func FuzzAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "10.0.0.5/24", "2001:db8::1/64", "::ffff:1.2.3.4", "::ffff:1.2.3.4%x/96",
		"fe80::1%eth0", "1:0:0:2:0:0:0:3", "0:0:1::", "::", "::1.2.3.4", "a:b:c:d:e:f:1.2.3.4", "1.2.3.4/033", "1.2.3.4/-1",
		"1:2:3:4:5:6:7:8/128", "1::/129", "%", "1.2.3.04", "1..2.3", "1::01:1:0:0:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		ref, refErr := netip.ParseAddr(s)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("ParseAddr(%q): ours %v, netip %v", s, err, refErr)
		}
		if err == nil {
			sameAddr(t, s, a, ref)
		}
		pa, bits, err := ParsePrefix(s)
		p, refErr := netip.ParsePrefix(s)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("ParsePrefix(%q): ours %v, netip %v", s, err, refErr)
		}
		if err == nil {
			if bits != p.Bits() {
				t.Fatalf("ParsePrefix(%q): bits %d, netip %d", s, bits, p.Bits())
			}
			sameAddr(t, s, pa, p.Addr())
		}
	})
}

func sameAddr(t *testing.T, s string, a Addr, ref netip.Addr) {
	t.Helper()
	if a.String() != ref.String() || a.Is4() != ref.Is4() || a.Is6() != ref.Is6() || a.Is4In6() != ref.Is4In6() ||
		a.Zone() != ref.Zone() || a.Unmap().String() != ref.Unmap().String() || a.Unmap().Is4() != ref.Unmap().Is4() {
		t.Fatalf("%q: ours %s (4 %v, 4in6 %v, zone %q, unmapped %s), netip %s (4 %v, 4in6 %v, zone %q, unmapped %s)", s,
			a, a.Is4(), a.Is4In6(), a.Zone(), a.Unmap(), ref, ref.Is4(), ref.Is4In6(), ref.Zone(), ref.Unmap())
	}
}
