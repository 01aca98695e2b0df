package link

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
	"golang.org/x/sys/unix"
)

// Sysctls go through a private procfs instance that is replaced after
// procRenewAfter opens, and what is written lands in the namespace of the
// calling thread; without the instance, through /proc, all the same.
func TestPrivilegedProcSys(t *testing.T) {
	_, c, _, ns := slaveLab(t, "ulkq", "10.64.0.1/24")
	read := func() string {
		out, err := c.Exec("cat", "/proc/sys/net/ipv6/conf/lo/hop_limit")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	write := func(v string) {
		t.Helper()
		if err := ns.Do(func() error { return writeSysctl("/proc/sys/net/ipv6/conf/lo/hop_limit", v) }); err != nil {
			t.Fatal(err)
		}
	}
	first := acquireProc()
	if first == nil {
		t.Fatal("no private procfs instance (fsopen refused?)")
	}
	first.users.Done()
	for i := 1; i <= procRenewAfter; i++ {
		write(strconv.Itoa(i))
		if got := read(); got != strconv.Itoa(i) {
			t.Fatalf("hop_limit in the container: wrote %d, read %s", i, got)
		}
	}
	procSys.mu.Lock()
	renewed := procSys.cur != first
	procSys.mu.Unlock()
	if !renewed {
		t.Errorf("instance not replaced after %d opens", procRenewAfter+1)
	}
	// Without the instance: /proc.
	procSys.mu.Lock()
	procSys.failed = true
	procSys.mu.Unlock()
	t.Cleanup(func() { procSys.mu.Lock(); procSys.failed = false; procSys.mu.Unlock() })
	write("33")
	if got := read(); got != "33" {
		t.Errorf("hop_limit through /proc: got %s", got)
	}
	if err := ns.Do(func() error { return writeSysctl("/proc/sys/net/ipv6/conf/ulkqnone/hop_limit", "1") }); err == nil || !strings.Contains(err.Error(), "ulkqnone") {
		t.Errorf("a missing interface: want an error naming it, got %v", err)
	}
}

// Where /proc/sys is read-only for underlayd (systemd's
// ProtectKernelTunables=), the private instance does not write around it:
// a sysctl write fails as it would through /proc. The check runs in a
// copy of this test binary in a mount namespace of its own.
func TestPrivilegedProcSysReadOnly(t *testing.T) {
	tl.Require(t)
	if os.Getenv("ULKQ_READONLY_CHILD") == "1" {
		const path = "/proc/sys/net/ipv4/conf/lo/arp_notify"
		if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0); !errors.Is(err, unix.EROFS) {
			unix.Close(fd)
			t.Fatalf("/proc/sys is not read-only here (open for write: %v): the test's mount did not take", err)
		}
		v, err := readSysctl(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeSysctl(path, v); !errors.Is(err, unix.EROFS) {
			t.Fatalf("write to a read-only /proc/sys: want EROFS, got %v", err)
		}
		return
	}
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" -test.run '^TestPrivilegedProcSysReadOnly$' -test.count=1`, os.Args[0])
	cmd.Env = append(os.Environ(), "ULKQ_READONLY_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Errorf("in a mount namespace with /proc/sys read-only: %v\n%s", err, out)
	}
}
