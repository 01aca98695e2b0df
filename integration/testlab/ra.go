package testlab

import (
	"encoding/binary"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SendRA makes the LAN's router send router advertisements for prefix (a
// /64, autonomous and on-link, with a default-router lifetime), as radvd
// would: three of them, 100 ms apart, from fe80::1 to all nodes.
func (l *LAN) SendRA(t testing.TB, prefix string) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	_, _ = Run("ip", "-n", l.NS, "addr", "add", "fe80::1/64", "dev", "lan0", "nodad")
	fd, err := socketIn("/run/netns/"+l.NS, unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
	if err != nil {
		t.Fatalf("raw ICMPv6 socket in %s: %v", l.NS, err)
	}
	defer unix.Close(fd)
	// The index as the socket's own namespace knows it.
	ifr, err := unix.NewIfreq("lan0")
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr)
	}
	if err != nil {
		t.Fatalf("index of lan0 in %s: %v", l.NS, err)
	}
	idx := ifr.Uint32()
	for _, o := range []int{unix.IPV6_MULTICAST_HOPS, unix.IPV6_UNICAST_HOPS} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o, 255); err != nil {
			t.Fatal(err)
		}
	}
	src := &unix.SockaddrInet6{Addr: netip.MustParseAddr("fe80::1").As16(), ZoneId: idx}
	if err := unix.Bind(fd, src); err != nil {
		t.Fatalf("bind fe80::1%%lan0: %v", err)
	}
	dst := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: idx}
	ra := routerAdvertisement(p)
	for i := 0; i < 3; i++ {
		if err := unix.Sendto(fd, ra, 0, dst); err != nil {
			t.Fatalf("send router advertisement: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// routerAdvertisement is an RA (RFC 4861 4.2) with one prefix information
// option; the kernel fills in the checksum of a raw ICMPv6 socket.
func routerAdvertisement(p netip.Prefix) []byte {
	b := make([]byte, 16+32)
	b[0] = 134                              // router advertisement
	b[4] = 64                               // current hop limit
	binary.BigEndian.PutUint16(b[6:], 1800) // router lifetime, s
	o := b[16:]
	o[0], o[1] = 3, 4 // prefix information, 32 bytes
	o[2] = byte(p.Bits())
	o[3] = 0xc0                              // on-link, autonomous
	binary.BigEndian.PutUint32(o[4:], 86400) // valid lifetime
	binary.BigEndian.PutUint32(o[8:], 14400) // preferred lifetime
	a := p.Masked().Addr().As16()
	copy(o[16:], a[:])
	return b
}

// socketIn opens a socket inside the namespace at path.
func socketIn(path string, domain, typ, proto int) (int, error) {
	target, err := os.Open(path)
	if err != nil {
		return -1, err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	fd, sockErr := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return -1, err // the thread stays locked and dies with its goroutine
	}
	runtime.UnlockOSThread()
	return fd, sockErr
}
