package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/store"
	tl "github.com/underlay/underlay/integration/testlab"
)

// bin is the absolute path of one of make build's binaries.
func bin(name string) string {
	p, err := filepath.Abs(filepath.Join(tl.BinDir(), name))
	if err != nil {
		return filepath.Join(tl.BinDir(), name)
	}
	return p
}

// require is testlab.Require plus the host tools these tests call.
func require(t *testing.T, tools ...string) {
	t.Helper()
	tl.Require(t)
	for _, tool := range append([]string{"ip", "unshare", "nsenter"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH (apt-get install containerd runc iproute2 util-linux busybox-static)", tool)
		}
	}
}

// tempDir is a world-traversable (0755) directory under /tmp with a short
// path: unix socket paths are limited to 107 bytes, and the access tests run
// the CLI as other users.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ull")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return dir
}

// run runs a command with a timeout and returns its combined output; the
// error carries the command line and the output.
func run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	// A child that keeps our pipes open (a shim) must not hang us.
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err,
			strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// waitFor polls cond every step until it returns nil or timeout passes, and
// returns how long it took.
func waitFor(timeout, step time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), err
		}
		time.Sleep(step)
	}
}

// underlayd is bin/underlayd with its socket and state in a directory of the
// test. It can be killed and started again on the same state; every start
// appends to one log file.
type underlayd struct {
	t        *testing.T
	Socket   string
	StateDir string
	args     []string
	logPath  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// newUnderlayd prepares a daemon in dir without starting it.
func newUnderlayd(t *testing.T, dir string, args ...string) *underlayd {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &underlayd{t: t, Socket: filepath.Join(dir, "underlay.sock"), StateDir: filepath.Join(dir, "state"),
		args: args, logPath: filepath.Join(dir, "underlayd.log")}
	t.Cleanup(func() {
		if err := u.stop(); err != nil {
			t.Errorf("underlayd: %v", err)
		}
		if t.Failed() {
			t.Logf("underlayd log (%s), last lines:\n%s", u.logPath, tailFile(u.logPath, 40))
		}
	})
	return u
}

// startUnderlayd starts a daemon and fails the test if it does not answer.
func startUnderlayd(t *testing.T, dir string, args ...string) *underlayd {
	t.Helper()
	u := newUnderlayd(t, dir, args...)
	if err := u.start(); err != nil {
		t.Fatal(err)
	}
	return u
}

// start starts the daemon and waits until it answers /ping. Safe to call
// from any goroutine; it never fails the test itself.
func (u *underlayd) start() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd != nil {
		return errors.New("underlayd already running")
	}
	f, err := os.OpenFile(u.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	u.starts++
	fmt.Fprintf(f, "--- test: start #%d at %s\n", u.starts, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"--socket", u.Socket, "--state-dir", u.StateDir, "--log-level", "debug"}, u.args...)
	cmd := exec.Command(bin("underlayd"), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start underlayd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	u.cmd, u.done = cmd, done
	c := &api.Client{Socket: u.Socket, Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			u.cmd = nil
			return fmt.Errorf("underlayd exited during start-up: %s", tailFile(u.logPath, 10))
		default:
		}
		if err := c.Do("GET", "/ping", nil, nil); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("underlayd did not answer within 10s: %s", tailFile(u.logPath, 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill SIGKILLs the daemon (a crash) and waits until it is gone.
func (u *underlayd) kill() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return
	}
	_ = u.cmd.Process.Kill()
	<-u.done
	u.cmd = nil
}

// stop sends SIGTERM and waits; underlayd must exit cleanly within 10s.
func (u *underlayd) stop() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return nil
	}
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
	defer func() { u.cmd = nil }()
	select {
	case <-u.done:
		if st := u.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("underlayd exited with %v after SIGTERM", st)
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = u.cmd.Process.Kill()
		<-u.done
		return errors.New("underlayd ignored SIGTERM for 10s")
	}
}

// log is everything the daemon printed, over all its starts.
func (u *underlayd) log() string {
	b, _ := os.ReadFile(u.logPath)
	return string(b)
}

// cli runs the underlay CLI against this daemon.
func (u *underlayd) cli(args ...string) (string, error) {
	return run(30*time.Second, nil, bin("underlay"), append([]string{"--socket", u.Socket}, args...)...)
}

func (u *underlayd) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := u.cli(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ociState is the state a runtime gives a hook on stdin.
type ociState struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// hook runs bin/underlay-hook STAGE with st on stdin against this daemon.
func (u *underlayd) hook(stage string, st ociState) (string, error) {
	if st.Version == "" {
		st.Version = "1.0.2"
	}
	if st.Status == "" {
		st.Status = map[string]string{"createRuntime": "creating", "poststop": "stopped"}[stage]
	}
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("underlay-hook"), stage)
	cmd.Env = append(os.Environ(), "UNDERLAY_SOCKET="+u.Socket)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// endpointRow is one line of `underlay endpoint ls`, what the user sees.
type endpointRow struct {
	Network, Container, IfName, MAC, State string
	Addresses                              []string
}

func (r endpointRow) String() string {
	return fmt.Sprintf("%s %s %s %s %s %s", r.Network, r.Container, r.IfName, strings.Join(r.Addresses, ","), r.MAC, r.State)
}

// endpoints parses `underlay endpoint ls`.
func (u *underlayd) endpoints() ([]endpointRow, error) {
	out, err := u.cli("endpoint", "ls")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NETWORK") {
		return nil, fmt.Errorf("endpoint ls: no header:\n%s", out)
	}
	var rows []endpointRow
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("endpoint ls: unexpected line %q", l)
		}
		rows = append(rows, endpointRow{Network: f[0], Container: f[1], IfName: f[2],
			Addresses: strings.Split(f[3], ","), MAC: f[4], State: f[5]})
	}
	return rows, nil
}

func (u *underlayd) mustEndpoints(t *testing.T) []endpointRow {
	t.Helper()
	rows, err := u.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// endpointOf returns the row of container (as endpoint ls names it:
// "namespace/id" for containerd containers) on network, if any.
func (u *underlayd) endpointOf(t *testing.T, network, container string) (endpointRow, bool) {
	t.Helper()
	for _, r := range u.mustEndpoints(t) {
		if r.Network == network && r.Container == container {
			return r, true
		}
	}
	return endpointRow{}, false
}

// waitGone polls endpoint ls until container has no endpoint, and returns
// how long that took after the call.
func (u *underlayd) waitGone(t *testing.T, container string, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	return waitFor(timeout, 20*time.Millisecond, func() error {
		rows, err := u.endpoints()
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Container == container {
				return fmt.Errorf("endpoint ls still lists %s: %s", container, r)
			}
		}
		return nil
	})
}

// fake is a fake container: a process in a fresh network namespace.
type fake struct {
	id    string
	pid   int
	inode uint64
	cmd   *exec.Cmd
	done  chan struct{}
}

// startFake starts one; it never fails the test itself, so goroutines may
// call it. The caller kills it (fakes.add does at cleanup).
func startFake(id string) (*fake, error) {
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &fake{id: id, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(f.done) }()
	self := netnsInode("/proc/self/ns/net")
	for i := 0; i < 400; i++ {
		if ino := netnsInode(fmt.Sprintf("/proc/%d/ns/net", f.pid)); ino != 0 && ino != self {
			f.inode = ino
			return f, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.kill()
	return nil, fmt.Errorf("fake container %s never got its own network namespace", id)
}

// kill ends the fake container; its namespace and interfaces go with it.
func (f *fake) kill() {
	_ = f.cmd.Process.Kill()
	<-f.done
}

func (f *fake) alive() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// state is the OCI state of the fake for a hook; ns, when set, makes the
// bundle path look like a containerd shim's.
func (f *fake) state(ns string, ann map[string]string) ociState {
	bundle := "/nonexistent/" + f.id
	if ns != "" {
		bundle = "/run/ull-none/io.containerd.runtime.v2.task/" + ns + "/" + f.id
	}
	return ociState{ID: f.id, Pid: f.pid, Bundle: bundle, Annotations: ann}
}

// fakes kills every fake container registered with it at cleanup.
type fakes struct {
	mu  sync.Mutex
	all []*fake
}

func newFakes(t *testing.T) *fakes {
	fs := &fakes{}
	t.Cleanup(func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		for _, f := range fs.all {
			f.kill()
		}
	})
	return fs
}

func (fs *fakes) start(id string) (*fake, error) {
	f, err := startFake(id)
	if err != nil {
		return nil, err
	}
	fs.mu.Lock()
	fs.all = append(fs.all, f)
	fs.mu.Unlock()
	return f, nil
}

func (fs *fakes) mustStart(t *testing.T, id string) *fake {
	t.Helper()
	f, err := fs.start(id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func netnsInode(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// nsLink is an interface inside a network namespace, as `ip -j addr` shows it.
type nsLink struct {
	Name  string
	MAC   string
	Addrs []string // CIDR, global scope only
}

// linksIn lists the interfaces (but lo) in the network namespace of pid.
func linksIn(pid int) ([]nsLink, error) {
	return linksVia("nsenter", "-t", strconv.Itoa(pid), "-n", "--", "ip", "-j", "addr", "show")
}

// linksInNetns lists the interfaces (but lo) in a named network namespace.
func linksInNetns(name string) ([]nsLink, error) {
	return linksVia("ip", "-n", name, "-j", "addr", "show")
}

func linksVia(name string, args ...string) ([]nsLink, error) {
	out, err := run(10*time.Second, nil, name, args...)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		IfName   string `json:"ifname"`
		Address  string `json:"address"`
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("ip -j addr: %w: %s", err, out)
	}
	var links []nsLink
	for _, r := range raw {
		if r.IfName == "lo" {
			continue
		}
		l := nsLink{Name: r.IfName, MAC: r.Address}
		for _, a := range r.AddrInfo {
			if a.Scope == "global" {
				l.Addrs = append(l.Addrs, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
			}
		}
		sort.Strings(l.Addrs)
		links = append(links, l)
	}
	return links, nil
}

// eth0Addr is the IPv4 address (CIDR) on eth0 inside pid's namespace.
func eth0Addr(pid int) (string, error) {
	links, err := linksIn(pid)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		if l.Name == "eth0" && len(l.Addrs) > 0 {
			return l.Addrs[0], nil
		}
	}
	return "", fmt.Errorf("pid %d has no eth0 with an address: %+v", pid, links)
}

// storeView is the state database, read after the daemon stopped.
type storeView struct {
	endpoints []api.Endpoint
	leases    map[string]map[netip.Addr]string // network -> address -> endpoint key
	links     []store.OwnedLink
}

// readStore opens the state database; the daemon must not be running.
func readStore(t *testing.T, dir string, networks ...string) storeView {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatalf("open the store after underlayd stopped: %v", err)
	}
	defer s.Close()
	v := storeView{leases: map[string]map[netip.Addr]string{}}
	if v.endpoints, err = s.Endpoints(); err != nil {
		t.Fatal(err)
	}
	for _, n := range networks {
		if v.leases[n], err = s.Leases(n); err != nil {
			t.Fatal(err)
		}
	}
	if v.links, err = s.Links(); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkStoreInvariants reports every way the store contradicts itself: a
// lease without its endpoint or the reverse, an address held twice, an
// endpoint left half-attached, an owned parent without endpoints (or
// missing from the kernel while endpoints use it).
func checkStoreInvariants(v storeView) []string {
	var bad []string
	held := map[string]map[netip.Addr]string{} // network -> address -> endpoint key
	parents := map[string]int{}
	for _, ep := range v.endpoints {
		key := string(store.EndpointKey(ep))
		if ep.State != "attached" {
			bad = append(bad, fmt.Sprintf("endpoint %s is %q after a restart", key, ep.State))
		}
		parents[ep.Parent]++
		if held[ep.Network] == nil {
			held[ep.Network] = map[netip.Addr]string{}
		}
		for _, a := range ep.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				bad = append(bad, fmt.Sprintf("endpoint %s has unparsable address %q", key, a))
				continue
			}
			if other, dup := held[ep.Network][p.Addr()]; dup {
				bad = append(bad, fmt.Sprintf("address %s held by both %s and %s", p.Addr(), other, key))
			}
			held[ep.Network][p.Addr()] = key
			leases, ok := v.leases[ep.Network]
			if !ok {
				continue // network not asked for
			}
			if owner, ok := leases[p.Addr()]; !ok {
				bad = append(bad, fmt.Sprintf("endpoint %s has %s without a lease", key, p.Addr()))
			} else if owner != key {
				bad = append(bad, fmt.Sprintf("endpoint %s has %s, whose lease is %s's", key, p.Addr(), owner))
			}
		}
	}
	for n, leases := range v.leases {
		for a, owner := range leases {
			if held[n][a] != owner {
				bad = append(bad, fmt.Sprintf("lease %s on %s names %s, which does not hold it", a, n, owner))
			}
		}
	}
	for _, l := range v.links {
		if parents[l.Name] == 0 {
			bad = append(bad, fmt.Sprintf("owned parent %s (%s) recorded with no endpoint on it", l.Name, l.Kind))
		}
		if exists := tl.LinkExists(l.Name); parents[l.Name] == 0 && exists {
			bad = append(bad, fmt.Sprintf("owned parent %s still exists with no endpoint on it", l.Name))
		}
	}
	sort.Strings(bad)
	return bad
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// unmountUnder lazily unmounts whatever is mounted below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Logf("cleanup: unmount %s: %v", m, err)
		}
	}
}

// mustContain fails unless out contains every want.
func mustContain(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, out)
		}
	}
}
