package link

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func netnsHandle(ns *Netns) netns.NsHandle { return netns.NsHandle(ns.Fd()) }

// own is the daemon's network namespace, opened by the first Do and kept:
// opening it costs more than the two setns of a visit. Any thread Do gets
// is in it, since Do returns each thread there before unlocking it (or
// keeps it locked, and so ends it, when it cannot).
var own struct {
	once sync.Once
	fd   int
	err  error
}

func ownNetnsFd() (int, error) {
	own.once.Do(func() {
		own.fd, own.err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	})
	return own.fd, own.err
}

// Do runs fn on an OS thread that has entered ns, then returns the thread
// to the daemon's namespace. fn must not start goroutines, call Do or wait
// on anything but the kernel: the thread serves nobody else meanwhile.
// What fn opens belongs to ns (sockets, /proc/sys/net files), whatever
// thread later uses it.
func (n *Netns) Do(fn func() error) error {
	runtime.LockOSThread()
	self, err := ownNetnsFd()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
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
