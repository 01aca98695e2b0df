package link

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// announce sends a gratuitous ARP for each IPv4 address and an unsolicited
// neighbour advertisement for each IPv6 address, so switches and neighbours
// learn the new MAC at once (a container restarted with the same address
// otherwise stays unreachable until ARP caches expire). Best effort: a lost
// announcement is not a reason to fail the container.
func announce(ns *Netns, h *netlink.Handle, l netlink.Link, s Slave) {
	mac := l.Attrs().HardwareAddr
	if len(mac) != 6 {
		if fresh, err := h.LinkByIndex(l.Attrs().Index); err == nil {
			mac = fresh.Attrs().HardwareAddr
		}
	}
	if len(mac) != 6 {
		return
	}
	var frames []frame
	for _, p := range s.Addrs {
		if p.Addr().Is4() {
			frames = append(frames, garp(mac, p.Addr().As4()))
		} else {
			frames = append(frames, unsolicitedNA(mac, p.Addr().As16()))
		}
	}
	_ = sendInNetns(ns, l.Attrs().Index, frames)
}

type frame struct {
	proto uint16
	dst   net.HardwareAddr
	data  []byte
}

func garp(mac net.HardwareAddr, ip [4]byte) frame {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1) // request: understood by every stack
	copy(b[8:], mac)
	copy(b[14:], ip[:])
	copy(b[24:], ip[:]) // target hardware address stays zero
	return frame{proto: unix.ETH_P_ARP, dst: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, data: b}
}

func unsolicitedNA(mac net.HardwareAddr, ip [16]byte) frame {
	const icmpLen = 32 // NA header 24 + target link-layer option 8
	b := make([]byte, 40+icmpLen)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], icmpLen)
	b[6], b[7] = unix.IPPROTO_ICMPV6, 255
	copy(b[8:], ip[:])
	dst := [16]byte{0xff, 0x02, 15: 0x01} // all-nodes
	copy(b[24:], dst[:])
	icmp := b[40:]
	icmp[0] = 136             // neighbour advertisement
	icmp[4] = 0x20            // override
	copy(icmp[8:], ip[:])     // target
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 bytes
	copy(icmp[26:], mac)
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(ip, dst, icmp))
	return frame{proto: unix.ETH_P_IPV6, dst: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, data: b}
}

func icmpv6Checksum(src, dst [16]byte, payload []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:], uint32(len(payload)))
	l[7] = unix.IPPROTO_ICMPV6
	add(l[:])
	add(payload)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// sendInNetns opens a packet socket inside the handle's namespace (a socket
// belongs to the namespace it was created in) and sends the frames.
func sendInNetns(ns *Netns, ifindex int, frames []frame) error {
	fd, err := packetSocketIn(ns)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, f := range frames {
		sa := &unix.SockaddrLinklayer{Protocol: htons(f.proto), Ifindex: ifindex, Halen: 6}
		copy(sa.Addr[:], f.dst)
		if err := unix.Sendto(fd, f.data, 0, sa); err != nil {
			return fmt.Errorf("send announcement: %w", err)
		}
	}
	return nil
}

func packetSocketIn(ns *Netns) (int, error) {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer unix.Close(self)
	if err := unix.Setns(ns.Fd(), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	fd, sockErr := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime kills a locked thread when
		// its goroutine ends, so it never serves others in the wrong netns.
		if sockErr == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("return to own network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return fd, sockErr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
