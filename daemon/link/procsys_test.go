package link

import (
	"strconv"
	"strings"
	"testing"
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
