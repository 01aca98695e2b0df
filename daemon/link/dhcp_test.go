package link

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// The frames a release is sent in check out as a receiver checks them: the
// IPv4 header sums to zero, and so does the UDP segment of an IPv6 one
// with its pseudo-header (the checksum IPv6 requires).
func TestReleaseFrameChecksums(t *testing.T) {
	payload := []byte("a DHCP message of odd length")
	p4 := udp4(netip.MustParseAddrPort("10.81.0.102:68"), netip.MustParseAddrPort("10.81.0.1:67"), payload)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p4[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if uint16(sum) != 0xffff || binary.BigEndian.Uint16(p4[2:]) != uint16(28+len(payload)) {
		t.Errorf("IPv4 header checksum does not verify: %x", p4[:20])
	}
	src, dst := netip.MustParseAddrPort("[fe80::1]:546"), netip.MustParseAddrPort("[ff02::1:2]:547")
	p6 := udp6(src, dst, payload)
	if c := pseudoChecksum(src.Addr().As16(), dst.Addr().As16(), 17, p6[40:]); c != 0 {
		t.Errorf("UDP over IPv6 checksum does not verify (%#x)", c)
	}
	if binary.BigEndian.Uint16(p6[4:]) != uint16(8+len(payload)) || p6[6] != 17 {
		t.Errorf("IPv6 header %x", p6[:8])
	}
}
