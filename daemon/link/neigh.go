package link

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Answering asks the wire, out of parent, whether anybody holds each of
// addrs: an ARP probe (RFC 5227: sender address 0.0.0.0) for IPv4, a
// duplicate-address Neighbor Solicitation (from ::) for IPv6, all sent at
// once, and the replies collected for wait. An address is reclaimed from a
// dead host only when nobody answers for it. The host's own macvlan and
// ipvlan slaves never see what their parent sends, so this only tells of
// other machines, which is what a reclaim needs.
func Answering(parent string, addrs []netip.Addr, wait time.Duration) (map[netip.Addr]bool, error) {
	in, err := Lookup(parent)
	if err != nil {
		return nil, err
	}
	seen, err := probe(in, addrs, wait, false)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]bool, len(seen))
	for a, mac := range seen {
		out[a] = mac != nil
	}
	return out, nil
}

// probe sends the probes out of in and returns, for each address, the MAC
// of whoever answered for it, nil for none. With early it returns as soon
// as every address has an answer.
func probe(in Info, addrs []netip.Addr, wait time.Duration, early bool) (map[netip.Addr]net.HardwareAddr, error) {
	parent := in.Name
	if len(in.MAC) != 6 {
		return nil, fmt.Errorf("probe on %s: not an Ethernet link", parent)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("probe on %s: packet socket: %w", parent, err)
	}
	defer unix.Close(fd) // waits for RCU: never on an attach's path
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: in.Index}); err != nil {
		return nil, fmt.Errorf("probe on %s: bind: %w", parent, err)
	}
	want := map[netip.Addr]net.HardwareAddr{}
	for _, a := range addrs {
		want[a.Unmap()] = nil
		var proto uint16
		var dst net.HardwareAddr
		var pkt []byte
		if a = a.Unmap(); a.Is4() {
			proto, dst, pkt = arpProbe(in.MAC, a)
		} else {
			proto, dst, pkt = ndProbe(in.MAC, a)
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: in.Index, Halen: 6}
		copy(sa.Addr[:], dst)
		if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
			return nil, fmt.Errorf("probe %s on %s: %w", a, parent, err)
		}
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	answered := 0
	for {
		left := time.Until(deadline)
		if left <= 0 || early && answered == len(want) {
			return want, nil
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue // the timeout, or a signal: the deadline decides
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if a, ok := answer(ntohs(ll.Protocol), buf[:n]); ok {
			if mac, asked := want[a]; asked && mac == nil {
				want[a] = append(net.HardwareAddr(nil), ll.Addr[:6]...)
				answered++
			}
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return htons(v) }

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpProbe is an ARP request for a from 0.0.0.0.
func arpProbe(mac net.HardwareAddr, a netip.Addr) (uint16, net.HardwareAddr, []byte) {
	return unix.ETH_P_ARP, broadcast, arpRequest(mac, netip.IPv4Unspecified(), a)
}

// arpRequest is an ARP request for target from sender at mac: a probe
// from 0.0.0.0, or a gratuitous ARP from the target itself.
func arpRequest(mac net.HardwareAddr, sender, target netip.Addr) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], 1) // request
	copy(p[8:14], mac)
	s, t := sender.As4(), target.As4()
	copy(p[14:18], s[:])
	copy(p[24:28], t[:])
	return p
}

// ndProbe is a Neighbor Solicitation for a from ::, to a's solicited-node
// group; an owner answers to all nodes.
func ndProbe(mac net.HardwareAddr, a netip.Addr) (uint16, net.HardwareAddr, []byte) {
	t := a.As16()
	group := [16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]}
	icmp := make([]byte, 24)
	icmp[0] = 135 // Neighbor Solicitation
	copy(icmp[8:], t[:])
	var src [16]byte
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(src, group, icmp))
	ip := make([]byte, 40, 40+len(icmp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(icmp)))
	ip[6], ip[7] = 58, 255 // ICMPv6, hop limit 255 as ND requires
	copy(ip[24:], group[:])
	dst := net.HardwareAddr{0x33, 0x33, group[12], group[13], group[14], group[15]}
	return unix.ETH_P_IPV6, dst, append(ip, icmp...)
}

func icmpv6Checksum(src, dst [16]byte, body []byte) uint16 {
	return pseudoChecksum(src, dst, 58, body)
}

// pseudoChecksum is the Internet checksum of an IPv6 upper-layer packet
// (RFC 8200 8.1): the pseudo-header of src, dst, length and next header
// proto, then body.
func pseudoChecksum(src, dst [16]byte, proto byte, body []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:4], uint32(len(body)))
	l[7] = proto
	add(l[:])
	add(body)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// answer reads an ARP packet (a reply, or a request the owner sends
// itself) or a Neighbor Advertisement, and returns the address whose owner
// it shows.
func answer(proto uint16, p []byte) (netip.Addr, bool) {
	switch proto {
	case unix.ETH_P_ARP:
		if len(p) >= 28 {
			return netip.AddrFrom4([4]byte(p[14:18])), true
		}
	case unix.ETH_P_IPV6:
		if len(p) >= 64 && p[6] == 58 && p[40] == 136 {
			return netip.AddrFrom16([16]byte(p[48:64])), true
		}
	}
	return netip.Addr{}, false
}
