package link

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func netnsHandle(ns *Netns) netns.NsHandle { return netns.NsHandle(ns.Fd()) }

// Do runs fn on an OS thread that has entered ns, then returns the thread
// to the daemon's namespace. fn must not start goroutines or block for
// long: the thread serves nobody else meanwhile. What fn opens belongs to
// ns (sockets, /proc/sys/net files), whatever thread later uses it.
func (n *Netns) Do(fn func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(self)
	if err := unix.Setns(n.Fd(), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter container network namespace: %w", err)
	}
	fnErr := fn()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// Stay locked: the runtime ends a locked thread with its
		// goroutine, so it never serves others in the wrong namespace.
		return fmt.Errorf("return to own network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}
