package link

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostHandle is a route netlink socket in underlayd's own network
// namespace, kept open from the start (OpenHostHandle). Without it the
// netlink library's package functions open, bind, register with the
// poller and close a socket for every request: three times on an attach's
// path (the parent's lookup, the create, and the library's lookup of what
// it created), ten system calls each.
var hostHandle atomic.Pointer[netlink.Handle]

// hostIoctl is a datagram socket in underlayd's own namespace, kept open
// beside hostHandle, for the interface ioctls of LookupParent; -1 when not
// open.
var hostIoctl atomic.Int64

// hostPacket is a raw packet socket in underlayd's own namespace, kept
// open beside hostHandle, that sends the gratuitous ARPs out of parents
// (AnnounceOnParent); -1 when not open. It only sends: protocol 0 hooks
// nothing into the kernel's receive path.
var hostPacket atomic.Int64

func init() {
	hostIoctl.Store(-1)
	hostPacket.Store(-1)
}

// OpenHostHandle opens the kept socket. Call it once at start, before any
// goroutine enters another namespace: a socket belongs to the namespace
// of the thread that opens it.
func OpenHostHandle() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	// A kernel that never answers must not hold the socket (and every
	// attach behind its lock) forever.
	if err := h.SetSocketTimeout(10 * time.Second); err != nil {
		h.Close()
		return fmt.Errorf("netlink socket timeout: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		h.Close()
		return fmt.Errorf("ioctl socket: %w", err)
	}
	pkt, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		h.Close()
		unix.Close(fd)
		return fmt.Errorf("packet socket for gratuitous ARPs (needs CAP_NET_RAW): %w", err)
	}
	if old := hostHandle.Swap(h); old != nil {
		old.Close()
	}
	if old := hostIoctl.Swap(int64(fd)); old >= 0 {
		unix.Close(int(old))
	}
	if old := hostPacket.Swap(int64(pkt)); old >= 0 {
		go closePacket(int(old))
	}
	return nil
}

// CloseHostHandle closes the kept socket; later calls open one per request.
func CloseHostHandle() {
	if h := hostHandle.Swap(nil); h != nil {
		h.Close()
	}
	if fd := hostIoctl.Swap(-1); fd >= 0 {
		unix.Close(int(fd))
	}
	if fd := hostPacket.Swap(-1); fd >= 0 {
		go closePacket(int(fd))
	}
}

// hostSocket is the kept handle, or a new one (and what closes it) when
// none is kept: a handle with a socket of underlayd's namespace, for
// requests sent from a thread in another one, where hostNL's fallback
// would open its socket. Call it from underlayd's namespace.
func hostSocket() (*netlink.Handle, func(), error) {
	if h := hostHandle.Load(); h != nil {
		return h, func() {}, nil
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink socket: %w", err)
	}
	return h, h.Close, nil
}

// ioctlSocket is the kept ioctl socket, or a new one (and what closes it)
// when none is kept.
func ioctlSocket() (int, func(), error) {
	if fd := hostIoctl.Load(); fd >= 0 {
		return int(fd), func() {}, nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	return fd, func() { unix.Close(fd) }, nil
}

// hostNL is the handle for requests in the host namespace: the kept one, or
// the library's socket-per-request one (tests, the CLI's doctor).
func hostNL() *netlink.Handle {
	if h := hostHandle.Load(); h != nil {
		return h
	}
	return &netlink.Handle{}
}
