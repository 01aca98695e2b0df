package link

import (
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The per-interface sysctls (a container interface's, the shim's) are
// opened through a procfs instance of underlayd's own: made with fsopen
// and fsmount, attached nowhere, and replaced after procRenewAfter opens.
//
// Through /proc, opening /proc/sys/net/ipv4/conf/IF/KEY looks "conf" up
// among one cached dentry per network namespace in which anyone ever
// looked it up (every live container, from underlayd, CNI plugins or the
// runtime), compared one by one under a lock: 50 µs on an empty host, 300
// µs with 200 containers here. The dentries belong to the procfs instance,
// so in a private one that is replaced every few opens there are never
// more than a few to compare: 15-40 µs with 200 containers. (The IPv4
// settings could go over netlink instead, but that request, on a socket
// of its own, cost 0.1 ms.) A kernel without fsopen (before 5.2), or one
// that refuses it once, gets /proc from then on. So does an underlayd whose
// /proc/sys is read-only (systemd's ProtectKernelTunables=, a container's
// mounts): a private instance must not write what /proc is kept from.
const procRenewAfter = 16

// procInstance is one private procfs instance; users counts the opens in
// flight, so that a replaced instance is closed once they are done.
type procInstance struct {
	fd    int
	users sync.WaitGroup
}

var procSys struct {
	mu     sync.Mutex
	cur    *procInstance
	opens  int
	failed bool // fsopen refused: use /proc
}

// acquireProc returns the current private instance, counted as in use, or
// nil when there is none to be had.
func acquireProc() *procInstance {
	procSys.mu.Lock()
	defer procSys.mu.Unlock()
	if procSys.failed {
		return nil
	}
	if procSys.cur == nil && procSysReadOnly() {
		procSys.failed = true
		return nil
	}
	if procSys.cur == nil || procSys.opens >= procRenewAfter {
		fd, err := mountProc()
		if err != nil {
			procSys.failed = true
			return nil
		}
		if old := procSys.cur; old != nil {
			// Unmounting waits for an RCU grace period: never on a
			// caller's path.
			go func() { old.users.Wait(); unix.Close(old.fd) }()
		}
		procSys.cur, procSys.opens = &procInstance{fd: fd}, 0
	}
	procSys.opens++
	procSys.cur.users.Add(1)
	return procSys.cur
}

// procSysReadOnly reports whether /proc/sys is mounted read-only for
// underlayd (or cannot be told).
func procSysReadOnly() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/proc/sys", &st); err != nil {
		return true
	}
	return st.Flags&unix.ST_RDONLY != 0
}

// mountProc makes a procfs instance attached nowhere and returns its root.
func mountProc() (int, error) {
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
}

// openProc opens path, a file under /proc, with flags (O_RDONLY or
// O_WRONLY): in the private instance when there is one. What
// /proc/sys/net shows depends on the calling thread's network namespace,
// whichever instance it is read in.
func openProc(path string, flags int) (int, error) {
	p := acquireProc()
	if p == nil {
		return unix.Open(path, flags|unix.O_CLOEXEC, 0)
	}
	defer p.users.Done()
	return unix.Openat(p.fd, strings.TrimPrefix(path, "/proc/"), flags|unix.O_CLOEXEC, 0)
}
