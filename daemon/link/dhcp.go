package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DHCPConn is a DHCP client's UDP socket on one interface in a
// container's namespace: port 68 for DHCPv4, 546 for DHCPv6. It is a plain
// UDP socket, not a packet socket: the kernel sends from 0.0.0.0 (or the
// link-local address) while the interface has no address, takes the
// server's broadcast replies, and closing it costs no RCU wait.
type DHCPConn struct {
	pc    net.PacketConn
	port  int    // the servers' port
	zone  string // the interface's index, for link-local destinations
	index int
}

// OpenDHCP opens the DHCPv4 socket on ifname inside ns.
func OpenDHCP(ns *Netns, ifname string) (*DHCPConn, error) { return openDHCP(ns, ifname, 4) }

// OpenDHCP6 opens the DHCPv6 socket on ifname inside ns.
func OpenDHCP6(ns *Netns, ifname string) (*DHCPConn, error) { return openDHCP(ns, ifname, 6) }

func openDHCP(ns *Netns, ifname string, family int) (*DHCPConn, error) {
	var fd, index int
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		index = ifi.Index
		domain, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: 68})
		if family == 6 {
			domain, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: 546}
		}
		fd, err = unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return err
		}
		opts := []int{unix.SO_REUSEADDR, unix.SO_BROADCAST}
		if family == 6 {
			opts = opts[:1]
		}
		for _, o := range opts {
			if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
				break
			}
		}
		if err == nil {
			err = unix.BindToDevice(fd, ifname)
		}
		if err == nil {
			err = unix.Bind(fd, sa)
		}
		if err != nil {
			unix.Close(fd)
		}
		return err
	})
	what := "DHCP"
	if family == 6 {
		what = "DHCPv6"
	}
	if err != nil {
		return nil, fmt.Errorf("%s socket on %s: %w", what, ifname, err)
	}
	f := os.NewFile(uintptr(fd), "dhcp")
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("%s socket on %s: %w", what, ifname, err)
	}
	c := &DHCPConn{pc: pc, port: 67, index: index}
	if family == 6 {
		c.port, c.zone = 547, strconv.Itoa(index)
	}
	return c, nil
}

// Send sends msg to the servers' port of dst.
func (c *DHCPConn) Send(msg []byte, dst netip.Addr) error {
	ua := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(c.port)))
	if dst.Is6() && (dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast()) {
		// A numeric zone: a name would be looked up in underlayd's
		// namespace, not the container's.
		ua.Zone = c.zone
	}
	_, err := c.pc.WriteTo(msg, ua)
	return err
}

// Recv reads the next datagram before deadline.
func (c *DHCPConn) Recv(buf []byte, deadline time.Time) (int, error) {
	if err := c.pc.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, _, err := c.pc.ReadFrom(buf)
	return n, err
}

// Close closes the socket.
func (c *DHCPConn) Close() error { return c.pc.Close() }

// Leased puts a leased address on ifname in ns, with the lease's remaining
// time as its lifetime, so that the kernel itself removes an address whose
// lease runs out, even while underlayd is down. gw, if valid, becomes the
// default route. Both replace what is there: a renewal calls it again.
func Leased(ns *Netns, ifname string, addr netip.Prefix, gw netip.Addr, left time.Duration) error {
	h, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("find %s in container: %w", ifname, err)
	}
	secs := int(left / time.Second)
	if secs < 1 {
		secs = 1
	}
	a := &netlink.Addr{IPNet: prefixNet(addr), ValidLft: secs, PreferedLft: secs}
	if addr.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD // as for static addresses: the server vouches for it
	}
	if err := h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("add leased address %s to %s: %w", addr, ifname, err)
	}
	if !gw.IsValid() || addr.Addr().Is6() {
		return nil // IPv6's default route comes from router advertisements
	}
	// The default route is replaced only where it is this interface's
	// own (a renewal, perhaps with a new router): another interface's,
	// such as a pod's primary network, stays.
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list routes in container: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue // not a default route
			}
		}
		if r.LinkIndex != l.Attrs().Index {
			return fmt.Errorf("default route via %s dev %s: %w", gw, ifname, ErrDefaultRouted)
		}
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: defaultDst(4), Gw: gw.AsSlice()}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add default route via %s dev %s: %w", gw, ifname, err)
	}
	return nil
}

// ErrDefaultRouted means that another interface of the namespace has the
// default route: a lease's router does not take it over.
var ErrDefaultRouted = errors.New("the namespace's default route is another interface's")

// Unlease removes a lost lease's address from ifname in ns (its routes go
// with it). A missing interface or address is success.
func Unlease(ns *Netns, ifname string, addr netip.Prefix) error {
	h, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return nil
	}
	if err := h.AddrDel(l, &netlink.Addr{IPNet: prefixNet(addr)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove address %s from %s: %w", addr, ifname, err)
	}
	return nil
}

// SendUDPFrom sends one UDP datagram out of parent as if from a host at
// src with MAC mac: how a container whose namespace is gone still tells
// its DHCP server that it is done. The next hop (the destination itself,
// or the router towards it) is found by an ARP probe from the parent; if
// nobody answers within wait, the frame is broadcast.
func SendUDPFrom(parent string, mac net.HardwareAddr, src, dst netip.AddrPort, nextHop netip.Addr, payload []byte, wait time.Duration) error {
	in, err := Lookup(parent)
	if err != nil {
		return err
	}
	if len(in.MAC) != 6 || len(mac) != 6 {
		return fmt.Errorf("send from %s: not an Ethernet link", parent)
	}
	dstMAC := broadcast
	if a := dst.Addr(); a.IsMulticast() && a.Is6() {
		b := a.As16()
		dstMAC = net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
	} else if seen, err := probe(in, []netip.Addr{nextHop}, wait, true); err == nil && seen[nextHop] != nil {
		dstMAC = seen[nextHop]
	}
	// SOCK_RAW with protocol 0: the frame carries the container's MAC as
	// its source, and the socket receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("send from %s: packet socket: %w", parent, err)
	}
	defer unix.Close(fd) // waits for RCU: callers run this in the background
	frame := make([]byte, 14, 14+48+len(payload))
	copy(frame[0:6], dstMAC)
	copy(frame[6:12], mac)
	if src.Addr().Is6() {
		binary.BigEndian.PutUint16(frame[12:], unix.ETH_P_IPV6)
		frame = append(frame, udp6(src, dst, payload)...)
	} else {
		binary.BigEndian.PutUint16(frame[12:], unix.ETH_P_IP)
		frame = append(frame, udp4(src, dst, payload)...)
	}
	sa := &unix.SockaddrLinklayer{Ifindex: in.Index, Halen: 6}
	copy(sa.Addr[:], dstMAC)
	if err := unix.Sendto(fd, frame, 0, sa); err != nil {
		return fmt.Errorf("send from %s: %w", parent, err)
	}
	return nil
}

// udp4 is an IPv4 header and a UDP header before payload. The UDP
// checksum is left 0 (none), which IPv4 allows.
func udp4(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, 28, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(28+len(payload)))
	p[8], p[9] = 64, unix.IPPROTO_UDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], src.Port())
	binary.BigEndian.PutUint16(p[22:], dst.Port())
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	return append(p, payload...)
}

// udp6 is an IPv6 header and a UDP header, with its checksum (which IPv6
// requires), before payload.
func udp6(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, 48, 48+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(8+len(payload)))
	p[6], p[7] = unix.IPPROTO_UDP, 255
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	u := p[40:48]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	p = append(p, payload...)
	c := pseudoChecksum(s, d, unix.IPPROTO_UDP, p[40:])
	if c == 0 {
		c = 0xffff // 0 means none, which IPv6 does not allow
	}
	binary.BigEndian.PutUint16(p[46:], c)
	return p
}

// WaitAddress waits until ifname in ns has a global IPv6 address that is
// not tentative (SLAAC from a router advertisement), for up to wait.
func WaitAddress(ns *Netns, ifname string, wait time.Duration) (netip.Prefix, error) {
	h, err := handleAt(ns)
	if err != nil {
		return netip.Prefix{}, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("find %s in container: %w", ifname, err)
	}
	for end := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V6) })
		if err != nil {
			return netip.Prefix{}, err
		}
		for _, a := range addrs {
			p, ok := netip.AddrFromSlice(a.IP)
			if !ok || !p.IsGlobalUnicast() || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				continue
			}
			bits, _ := a.Mask.Size()
			return netip.PrefixFrom(p, bits), nil
		}
		if time.Now().After(end) {
			return netip.Prefix{}, fmt.Errorf("no router advertisement gave %s an IPv6 address within %s", ifname, wait)
		}
	}
}
