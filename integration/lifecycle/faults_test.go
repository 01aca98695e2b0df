package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// runUnderlaydOnce runs underlayd expecting it to refuse to start: it
// returns its output and exit error, and fails the test if it is still
// running after timeout (it then serves, which is the failure).
func runUnderlaydOnce(t *testing.T, timeout time.Duration, args ...string) (string, error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("underlayd"), args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("underlayd %s still running after %v, want it to refuse at once:\n%s", strings.Join(args, " "), timeout, out)
	}
	return strings.TrimSpace(string(out)), err, took
}

// newNetwork starts a LAN with prefix p on net3.0/24, a daemon and one
// macvlan network named p+"-net" on the LAN.
func newNetwork(t *testing.T, p, net3 string) (*tl.LAN, *underlayd, string) {
	t.Helper()
	lan := tl.NewLAN(t, p, net3+".1/24")
	u := startUnderlayd(t, filepath.Join(tempDir(t), "uld"))
	network := p + "-net"
	u.MustCLI(t, "network", "create", "--subnet", net3+".0/24", "-o", "parent="+lan.Uplink, network)
	return lan, u, network
}

func annFor(network string) map[string]string {
	return map[string]string{"io.underlay.network": network}
}

// A read-only state directory: underlayd refuses to start, saying which
// file and why, creates no socket, and loses nothing: once the directory is
// writable again the networks are all there.
func TestPrivilegedStateDirReadOnly(t *testing.T) {
	require(t, "mount", "umount")
	_, u, network := newNetwork(t, "ull4", "10.84.0")
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	tl.MustRun(t, "mount", "--bind", u.StateDir, u.StateDir)
	t.Cleanup(func() { _, _ = run(10*time.Second, nil, "umount", u.StateDir) })
	tl.MustRun(t, "mount", "-o", "remount,bind,ro", u.StateDir)

	sock := filepath.Join(filepath.Dir(u.Socket), "ro.sock")
	for _, state := range []string{u.StateDir, filepath.Join(u.StateDir, "new")} {
		out, err, took := runUnderlaydOnce(t, 10*time.Second, "--socket", sock, "--state-dir", state)
		if err == nil {
			t.Errorf("underlayd on read-only %s exited 0: %s", state, out)
		}
		mustContain(t, "read-only state dir "+state, out, "read-only file system", state)
		if strings.Count(out, "\n") > 0 {
			t.Errorf("want one line, got:\n%s", out)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("underlayd on read-only %s left a socket at %s", state, sock)
		}
		t.Logf("refused in %v: %s", took.Round(time.Millisecond), out)
	}

	tl.MustRun(t, "umount", u.StateDir)
	if err := u.TryStart(); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "network ls after the state dir is writable again", u.MustCLI(t, "network", "ls"), network)
}

// The database locked by another process: a second underlayd on the same
// state dir refuses with "locked", and so does one started while any other
// process holds the database; the first daemon keeps serving.
func TestPrivilegedDatabaseLocked(t *testing.T) {
	require(t)
	_, u, network := newNetwork(t, "ull5", "10.85.0")
	other := filepath.Join(filepath.Dir(u.Socket), "second.sock")
	out, err, took := runUnderlaydOnce(t, 10*time.Second, "--socket", other, "--state-dir", u.StateDir)
	if err == nil {
		t.Errorf("second underlayd on the same state dir exited 0: %s", out)
	}
	mustContain(t, "second daemon", out, "locked by another process")
	t.Logf("second daemon refused in %v: %s", took.Round(time.Millisecond), out)
	if _, err := os.Stat(other); err == nil {
		t.Errorf("the refused daemon left a socket at %s", other)
	}
	mustContain(t, "first daemon still serving", u.MustCLI(t, "network", "ls"), network)

	// Not an underlayd: any process holding the database.
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(u.StateDir, "underlay.db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	out, err, _ = runUnderlaydOnce(t, 10*time.Second, "--socket", u.Socket, "--state-dir", u.StateDir)
	if err == nil {
		t.Errorf("underlayd started on a database another process holds: %s", out)
	}
	mustContain(t, "database held by another process", out, "locked by another process", filepath.Join(u.StateDir, "underlay.db"))
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if err := u.TryStart(); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "network ls after the lock is gone", u.MustCLI(t, "network", "ls"), network)
}

// Two daemons on one socket: the second refuses and the first keeps
// serving on it; a socket left by a crashed daemon is taken over.
func TestPrivilegedTwoDaemonsOneSocket(t *testing.T) {
	require(t)
	_, u, network := newNetwork(t, "ull0", "10.80.0")
	state2 := filepath.Join(tempDir(t), "state")
	out, err, _ := runUnderlaydOnce(t, 10*time.Second, "--socket", u.Socket, "--state-dir", state2)
	if err == nil {
		t.Errorf("second underlayd on the same socket exited 0: %s", out)
	}
	mustContain(t, "second daemon on the socket", out, "another underlayd is already serving "+u.Socket)
	mustContain(t, "first daemon after the second refused", u.MustCLI(t, "network", "ls"), network)

	// A crash leaves the socket file behind; the next daemon takes it.
	u.Kill()
	if _, err := os.Stat(u.Socket); err != nil {
		t.Logf("no stale socket after SIGKILL: %v", err)
	}
	u2 := newUnderlayd(t, filepath.Dir(state2))
	u2.Socket = u.Socket
	if err := u2.TryStart(); err != nil {
		t.Fatalf("daemon on a crashed daemon's socket: %v", err)
	}
	if out := u2.MustCLI(t, "network", "ls"); strings.Contains(out, network) {
		t.Errorf("the new daemon (own state) answers with the old one's networks:\n%s", out)
	}
}

// A hook given the pid of a process that already exited fails with one
// line saying the process is gone, and leaves nothing behind: the next
// container gets the first address.
func TestPrivilegedHookPidGone(t *testing.T) {
	require(t)
	_, u, network := newNetwork(t, "ull7", "10.87.0")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Skipf("pid %d was reused already", pid)
	}
	out, err := u.hook("createRuntime", ociState{ID: "ull7-gone", Pid: pid, Bundle: "/nonexistent/ull7-gone", Annotations: annFor(network)})
	if err == nil {
		t.Fatalf("hook with exited pid %d succeeded: %s", pid, out)
	}
	mustContain(t, "hook with an exited pid", out, "process is gone", "ull7-gone")
	if strings.Contains(out, "\n") {
		t.Errorf("want one line, got:\n%s", out)
	}
	if rows := u.mustEndpoints(t); len(rows) != 0 {
		t.Errorf("endpoints after a failed attach: %v", rows)
	}
	fs := newFakes(t)
	c := fs.mustStart(t, "ull7-c")
	u.mustHook(t, "createRuntime", c, network)
	if got, _ := eth0Addr(c.Pid); got != "10.87.0.2/24" {
		t.Errorf("next container got %q, want the first address 10.87.0.2/24: the failed attach kept a lease", got)
	}
}

// A parent deleted under a live network: attaching fails with a sentence
// naming the parent and nothing is leased; detaching a container that was
// on it still succeeds; once the parent is back, attaching works and gets
// the first address again.
func TestPrivilegedParentDeleted(t *testing.T) {
	require(t)
	lan, u, network := newNetwork(t, "ull8", "10.88.0")
	fs := newFakes(t)
	a, b := fs.mustStart(t, "ull8-a"), fs.mustStart(t, "ull8-b")
	u.mustHook(t, "createRuntime", a, network)
	tl.MustRun(t, "ip", "link", "del", lan.Uplink)

	out, err := u.hook("createRuntime", b.state("", annFor(network)))
	if err == nil {
		t.Fatalf("attach with the parent gone succeeded: %s", out)
	}
	mustContain(t, "attach with the parent gone", out, network, lan.Uplink, "does not exist")
	if links, _ := linksIn(b.Pid); len(links) != 0 {
		t.Errorf("failed attach left interfaces in the container: %+v", links)
	}
	var inspect []struct {
		ParentInfo struct {
			Exists bool `json:"exists"`
		} `json:"parent_info"`
	}
	if err := json.Unmarshal([]byte(u.MustCLI(t, "network", "inspect", network)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("network inspect: %v", err)
	}
	if inspect[0].ParentInfo.Exists {
		t.Errorf("network inspect says parent %s exists after it was deleted", lan.Uplink)
	}

	if out, err := u.hook("poststop", a.state("", annFor(network))); err != nil {
		t.Errorf("detach with the parent gone: %v: %s", err, out)
	}
	if rows := u.mustEndpoints(t); len(rows) != 0 {
		t.Errorf("endpoints after detaching with the parent gone: %v", rows)
	}

	tl.NewLAN(t, "ull8", "10.88.0.1/24")
	u.mustHook(t, "createRuntime", b, network)
	if got, _ := eth0Addr(b.Pid); got != "10.88.0.2/24" {
		t.Errorf("attach after the parent came back got %q, want 10.88.0.2/24", got)
	}
}

// `underlay endpoint prune` releases, on demand, the endpoints of
// containers that died without any detach, and only those; the addresses
// are free again at once.
func TestPrivilegedEndpointPrune(t *testing.T) {
	require(t)
	_, u, network := newNetwork(t, "ullp", "10.94.0")
	fs := newFakes(t)
	a, b := fs.mustStart(t, "ullp-a"), fs.mustStart(t, "ullp-b")
	for _, f := range []*fake{a, b} {
		u.mustHook(t, "createRuntime", f, network)
	}
	addrA, _ := eth0Addr(a.Pid)
	a.Kill() // no poststop, no event
	if _, ok := u.endpointOf(t, network, a.ID); !ok {
		t.Fatalf("%s released before the prune", a.ID)
	}
	out := u.MustCLI(t, "endpoint", "prune")
	mustContain(t, "endpoint prune", out, "released 1 ")
	if _, ok := u.endpointOf(t, network, a.ID); ok {
		t.Errorf("%s is dead, but endpoint ls lists it after the prune", a.ID)
	}
	if _, ok := u.endpointOf(t, network, b.ID); !ok {
		t.Errorf("the prune released live %s", b.ID)
	}
	c := fs.mustStart(t, "ullp-c")
	if out, err := u.hook("createRuntime", c.state("", map[string]string{"io.underlay.network": network, "io.underlay.ip": addrOf(addrA)})); err != nil {
		t.Errorf("%s asking for the pruned %s: %v: %s", c.ID, addrA, err, out)
	}
	mustContain(t, "second prune", u.MustCLI(t, "endpoint", "prune"), "released 0 ")
}
