package link

import (
	"encoding/binary"
	"net"
	"net/netip"
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

func TestGratuitousARP(t *testing.T) {
	mac := net.HardwareAddr{2, 1, 2, 3, 4, 5}
	f := garp(mac, netip.MustParseAddr("10.0.0.7").As4())
	b := f.data
	if len(b) != 28 || binary.BigEndian.Uint16(b[6:]) != 1 {
		t.Fatalf("not an ARP request: %x", b)
	}
	if net.HardwareAddr(b[8:14]).String() != mac.String() || net.IP(b[14:18]).String() != "10.0.0.7" || net.IP(b[24:28]).String() != "10.0.0.7" {
		t.Fatalf("sender/target wrong: %x", b)
	}
	if f.dst.String() != "ff:ff:ff:ff:ff:ff" {
		t.Fatalf("dst %s", f.dst)
	}
}

// The neighbour advertisement's checksum verifies: summing the packet with
// its checksum gives 0xffff.
func TestUnsolicitedNA(t *testing.T) {
	mac := net.HardwareAddr{2, 1, 2, 3, 4, 5}
	ip := netip.MustParseAddr("2001:db8::7").As16()
	f := unsolicitedNA(mac, ip)
	b := f.data
	if b[6] != 58 || b[7] != 255 || b[40] != 136 || b[44]&0x20 == 0 {
		t.Fatalf("not an NA with override and hop limit 255: %x", b[:48])
	}
	dst := [16]byte(b[24:40])
	icmp := append([]byte(nil), b[40:]...)
	sum := icmpv6Checksum(ip, dst, icmp)
	if sum != 0 {
		t.Fatalf("checksum does not verify: %#x", sum)
	}
	if net.HardwareAddr(b[40+26:40+32]).String() != mac.String() {
		t.Fatal("target link-layer option wrong")
	}
}
