package link

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A new interface's IPv4 addresses are announced twice with gratuitous
// ARPs (ARP requests for the address from itself: the form RFC 5227 gives
// and the kernel's arp_notify sends; some routers ignore gratuitous
// replies), two seconds apart as RFC 5227 has it, so that the switch, the
// router and every neighbour that knew an address at another MAC learn the
// new one:
//
//   - At once, before the attach answers, out of the parent, from a packet
//     socket kept in underlayd's namespace (AnnounceOnParent): the LAN
//     learns before the container runs. What a parent sends does not reach
//     its own macvlan and ipvlan slaves, which is what makes this one
//     cheap.
//   - Two seconds later, from inside the container (Announcement), to the
//     LAN again and to the other containers on the parent. In bridge mode
//     macvlan hands that broadcast to every other macvlan on the parent in
//     the sending thread, and each of their namespaces looks its sender up
//     in its routes: 0.08-0.11 ms with no other container, 0.25-0.42 ms
//     with the bench's 200, cold more. Sent as the interface came up (the
//     kernel's arp_notify), it was the largest part of an attach after the
//     create; sent in the background at once, it competed with the hook's
//     own exit on two cores and cost more than it saved (one interleaved
//     run each). The socket is made during the attach's visit to the
//     namespace, and its close waits for an RCU grace period
//     (synchronize_net, 10-30 ms here): neither happens on an attach's
//     path.
//
// IPv6 needs none of this: with ndisc_notify the kernel's unsolicited
// neighbour advertisement leaves from a workqueue once the address is
// usable (devconf.go).

// AnnounceOnParent sends a gratuitous ARP for each IPv4 address of addrs
// (IPv6 ones are the kernel's, see above), at mac, out of the parent with
// ifindex parent. The Ethernet source is mac too, so that the switch
// learns where the container is.
func AnnounceOnParent(parent int, mac net.HardwareAddr, addrs []netip.Addr) error {
	if len(mac) != 6 {
		return fmt.Errorf("announce on parent %d: %q is not an Ethernet address", parent, mac)
	}
	fd := int(hostPacket.Load())
	if fd < 0 {
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("announce on parent %d: packet socket: %w", parent, err)
		}
		defer func() { go closePacket(fd) }()
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: parent, Halen: 6}
	copy(sa.Addr[:], broadcast)
	for _, a := range addrs {
		if !a.Is4() {
			continue
		}
		frame := make([]byte, 14, 14+28)
		copy(frame[0:6], broadcast)
		copy(frame[6:12], mac)
		binary.BigEndian.PutUint16(frame[12:], unix.ETH_P_ARP)
		frame = append(frame, arpRequest(mac, a, a)...)
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			return fmt.Errorf("announce %s on parent %d: %w", a, parent, err)
		}
	}
	return nil
}

// An Announcement is the gratuitous ARPs of one interface, ready to go out
// of a packet socket in its namespace. Send or Close it, off the attach's
// path: both close the socket, which holds the namespace until then.
type Announcement struct {
	fd    int
	name  string // the interface, for its MAC at send time
	index int
	addrs []netip.Addr
}

// closing bounds the threads waiting in a packet socket's close at once;
// the rest wait their turn without a thread.
var closing = make(chan struct{}, 8)

// closePacket closes a packet socket, which waits for an RCU grace period
// (synchronize_net): never on an attach's path.
func closePacket(fd int) {
	closing <- struct{}{}
	unix.Close(fd)
	<-closing
}

// announcement opens the packet socket of an announcement in the calling
// thread's namespace (inside Netns.Do); CreateSlave fills in the rest.
func announcement() (*Announcement, error) {
	// Protocol 0: the socket only sends, and the kernel hooks nothing
	// into its receive path for it.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket for the gratuitous ARP: %w", err)
	}
	return &Announcement{fd: fd}, nil
}

// Send sends one gratuitous ARP per address out of the interface (ARP
// requests for the address from itself, to the broadcast address, as the
// kernel's arp_notify does) and closes the socket. A nil Announcement has
// nothing to send.
func (a *Announcement) Send() error {
	if a == nil {
		return nil
	}
	defer a.Close()
	var r ifreq
	copy(r.name[:], a.name)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(a.fd), unix.SIOCGIFHWADDR, uintptr(unsafe.Pointer(&r))); e != 0 {
		return fmt.Errorf("announce %s: its MAC address: %w", a.name, e)
	}
	mac := r.hwaddr()
	if mac == nil {
		return fmt.Errorf("announce %s: not an Ethernet link", a.name)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: a.index, Halen: 6}
	copy(sa.Addr[:], broadcast)
	for _, addr := range a.addrs {
		if err := unix.Sendto(a.fd, arpRequest(mac, addr, addr), 0, sa); err != nil {
			return fmt.Errorf("announce %s on %s: %w", addr, a.name, err)
		}
	}
	return nil
}

// Close closes the socket, sent or not, and waits for an RCU grace period
// as it does.
func (a *Announcement) Close() {
	if a == nil || a.fd < 0 {
		return
	}
	closePacket(a.fd)
	a.fd = -1
}
