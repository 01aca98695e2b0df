package nerdctl

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	tl "github.com/underlay/underlay/integration/testlab"
)

const (
	// ns is the containerd namespace of every container the tests make.
	ns       = "ulnd"
	imageRef = "localhost/underlay/busybox:latest"

	cmdTimeout = 60 * time.Second
)

// require skips unless UNDERLAY_PRIVILEGED=1 and, when it is set, fails on
// anything missing. It returns the directory of make build's binaries.
func require(t *testing.T) string {
	t.Helper()
	tl.Require(t)
	bin, err := filepath.Abs(tl.BinDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"underlayd", "underlay", "underlay-hook", "underlay-runc"} {
		if fi, err := os.Stat(filepath.Join(bin, b)); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s/%s missing or not executable: run make build (or set UNDERLAY_BIN)", bin, b)
		}
	}
	for _, tool := range []string{"ip", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH: apt-get install runc iproute2 busybox-static", tool)
		}
	}
	tl.RequireStaticBusybox(t)
	return bin
}

// lab is everything one test runs on: the LAN, containerd 2.x, underlayd,
// nerdctl, the busybox image and a macvlan network on the LAN's uplink.
type lab struct {
	bin     string // make build's binaries
	dir     string
	lan     *tl.LAN
	router  netip.Prefix
	network string
	ctrd    *containerd
	uld     *underlayd
	nd      *nerdctl
	// hookSocket is the UNDERLAY_SOCKET containerd (and so underlay-runc
	// and the hooks it adds) has: the daemon's socket, or a symlink to it.
	hookSocket string
}

type labOpts struct {
	prefix string // links and the LAN's netns: "ulnd" + one letter
	router string // the router's address on the LAN, CIDR
	// events: underlayd follows containerd's events.
	events bool
	// hookLink: containerd's UNDERLAY_SOCKET is a symlink to the daemon's
	// socket, which the test may remove to cut the hooks off.
	hookLink bool
	// eventDelay > 0: underlayd follows containerd's events through a
	// proxy that holds everything containerd sends it for that long.
	eventDelay time.Duration
}

// newLab builds a lab and registers its removal. Cleanup runs in reverse:
// containers, network, underlayd, containerd (and its strays, mounts and
// cgroups), the LAN, the temp directory.
func newLab(t *testing.T, o labOpts) *lab {
	t.Helper()
	bin := require(t)
	ctrdDir := tl.Containerd2Dir(t)
	ndBin := nerdctlBin(t)

	router, err := netip.ParsePrefix(o.router)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{bin: bin, dir: tempDir(t), router: router, network: o.prefix + "-net"}
	l.lan = tl.NewLAN(t, o.prefix, o.router)

	uldSock := filepath.Join(l.dir, "uld", "underlay.sock")
	l.hookSocket = uldSock
	if o.hookLink {
		l.hookSocket = filepath.Join(l.dir, "hook.sock")
		if err := os.Symlink(uldSock, l.hookSocket); err != nil {
			t.Fatal(err)
		}
	}
	l.ctrd = startContainerd(t, ctrdDir, filepath.Join(l.dir, "ctrd"), l.dir+"/", "UNDERLAY_SOCKET="+l.hookSocket)
	var uldArgs []string
	var late *lateProxy
	switch {
	case o.eventDelay > 0:
		proxy := filepath.Join(l.dir, "late.sock")
		late = newLateProxy(t, proxy, l.ctrd.sock, o.eventDelay)
		uldArgs = append(uldArgs, "--containerd-address", proxy)
	case o.events:
		uldArgs = append(uldArgs, "--containerd-address", l.ctrd.sock)
	}
	l.uld = startUnderlayd(t, bin, filepath.Join(l.dir, "uld"), uldArgs...)
	if len(uldArgs) > 0 {
		l.uld.WaitFor(t, "containerd events", 10*time.Second, func() error {
			if b, _ := os.ReadFile(l.uld.Log); !bytes.Contains(b, []byte("following containerd events")) {
				return errors.New("underlayd does not follow containerd's events yet")
			}
			return nil
		})
	}
	if late != nil {
		late.arm()
	}
	l.nd = newNerdctl(t, ndBin, l.ctrd, filepath.Join(l.dir, "nerdctl"))

	image := filepath.Join(l.dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	l.nd.must(t, "load", "-i", image)

	l.uld.must(t, "network", "create", "-d", "macvlan", "--subnet", router.Masked().String(),
		"--gateway", router.Addr().String(), "-o", "parent="+l.lan.Uplink, l.network)
	t.Cleanup(func() {
		if out, _ := l.uld.cli("network", "ls"); containsWord(out, l.network) {
			if _, err := l.uld.cli("network", "rm", l.network); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	// Registered last, so it runs first: no container outlives the test.
	t.Cleanup(func() { l.nd.removeAll(t) })
	return l
}

// host is the n-th address of the LAN's subnet (10.79.1.0/24, 50 ->
// 10.79.1.50).
func (l *lab) host(n int) string {
	a := l.router.Masked().Addr().As4()
	a[3] += byte(n)
	return netip.AddrFrom4(a).String()
}

func (l *lab) routerIP() string { return l.router.Addr().String() }

// container is one nerdctl container: the name the test gave it and the
// full id nerdctl printed.
type container struct{ name, id string }

// qualified is how endpoint ls names it: containerd namespace / id.
func (c container) qualified() string { return ns + "/" + c.id }

var fullID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// run is README's command: nerdctl run -d --runtime underlay-runc
// --network none, one --annotation per entry of ann, busybox sleep 3600.
func (l *lab) run(name string, ann ...string) (container, error) {
	args := []string{"run", "-d", "--name", name, "--runtime", filepath.Join(l.bin, "underlay-runc"), "--network", "none"}
	for _, a := range ann {
		args = append(args, "--annotation", a)
	}
	args = append(args, imageRef, "sleep", "3600")
	start := time.Now()
	out, err := l.nd.run(args...)
	if err != nil {
		return container{name: name}, err
	}
	id := strings.TrimSpace(out)
	if !fullID.MatchString(id) {
		return container{name: name}, fmt.Errorf("nerdctl run -d printed %q, want a container id", out)
	}
	l.nd.t.Logf("nerdctl run -d %s: %v", name, time.Since(start).Round(time.Millisecond))
	return container{name: name, id: id}, nil
}

// mustRun is run on a network of the lab that fails the test on error.
func (l *lab) mustRun(t *testing.T, name string, ann ...string) container {
	t.Helper()
	c, err := l.run(name, append([]string{"io.underlay.network=" + l.network}, ann...)...)
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	return c
}

// rm is `nerdctl rm -f`, timed.
func (l *lab) rm(t *testing.T, names ...string) {
	t.Helper()
	start := time.Now()
	l.nd.must(t, append([]string{"rm", "-f"}, names...)...)
	t.Logf("nerdctl rm -f %s: %v", strings.Join(names, " "), time.Since(start).Round(time.Millisecond))
}

// exec returns an execFunc running `nerdctl exec` in c.
func (l *lab) exec(c container) execFunc {
	return func(args ...string) (string, error) {
		return l.nd.run(append([]string{"exec", c.name}, args...)...)
	}
}

// execFunc runs a command inside one container and returns its stdout.
type execFunc func(args ...string) (string, error)

// checkEth0 asserts, from inside c, that eth0 has an IPv4 address in the
// LAN's subnet (want, if not empty) and that the default route goes via
// the router. It returns the address.
func (l *lab) checkEth0(t *testing.T, c container, want string) string {
	t.Helper()
	exec := l.exec(c)
	got := tl.Eth0IPv4(t, c.name, exec)
	if want != "" && got.Addr().String() != want {
		t.Errorf("%s: eth0 has %s, want %s", c.name, got, want)
	}
	if got.Masked() != l.router.Masked() || got.Addr() == l.router.Addr() {
		t.Errorf("%s: eth0 has %s, want an address of %s other than the router's", c.name, got, l.router.Masked())
	}
	routes, err := exec("ip", "-4", "route")
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if !hasLinePrefix(routes, "default via "+l.routerIP()+" dev eth0") {
		t.Errorf("%s: no `default via %s dev eth0` route:\n%s", c.name, l.routerIP(), routes)
	}
	return got.Addr().String()
}

// mac is eth0's MAC address inside c.
func (l *lab) mac(t *testing.T, c container) string {
	t.Helper()
	out, err := l.exec(c)("cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return strings.TrimSpace(out)
}

// checkPing asserts that c reaches addr; the first packet may wait for
// ARP, so a few tries are allowed.
func (l *lab) checkPing(t *testing.T, c container, addr string) {
	t.Helper()
	if err := tl.Retry(3, func() error { _, err := l.exec(c)("ping", "-c", "1", "-W", "2", addr); return err }); err != nil {
		t.Errorf("%s cannot ping %s: %v", c.name, addr, err)
	}
}

// checkRouterPing asserts that the router reaches addr.
func (l *lab) checkRouterPing(t *testing.T, addr string) {
	t.Helper()
	err := tl.Retry(3, func() error {
		_, err := run(nil, "ip", "netns", "exec", l.lan.NS, tl.Busybox, "ping", "-c", "1", "-W", "2", addr)
		return err
	})
	if err != nil {
		t.Errorf("the router cannot ping %s: %v", addr, err)
	}
}

// checkHooks asserts that the bundle runc got for c has nerdctl's oci-hook
// and underlay-hook at both createRuntime and poststop, and that nerdctl's
// createRuntime hook left no error in its log.
func (l *lab) checkHooks(t *testing.T, c container) {
	t.Helper()
	path := filepath.Join(l.ctrd.dir, "state", "io.containerd.runtime.v2.task", ns, c.id, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: bundle config: %v", c.name, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %s: %v", c.name, path, err)
	}
	if s.Hooks == nil {
		t.Fatalf("%s: %s has no hooks", c.name, path)
	}
	ours := filepath.Join(l.bin, "underlay-hook")
	for stage, hooks := range map[string][]specs.Hook{"createRuntime": s.Hooks.CreateRuntime, "poststop": s.Hooks.Poststop} {
		var nerd, ul int
		for _, h := range hooks {
			if h.Path == l.nd.bin && contains(h.Args, "oci-hook") {
				nerd++
			}
			if h.Path == ours {
				ul++
				if !contains(h.Env, "UNDERLAY_SOCKET="+l.hookSocket) {
					t.Errorf("%s: %s underlay-hook has env %q, want UNDERLAY_SOCKET=%s", c.name, stage, h.Env, l.hookSocket)
				}
			}
		}
		if nerd != 1 || ul != 1 {
			t.Errorf("%s: %s hooks: %d of nerdctl's oci-hook and %d underlay-hook, want one of each:\n%s",
				c.name, stage, nerd, ul, hookList(hooks))
		}
	}
	if s.Annotations["nerdctl/namespace"] != ns {
		t.Errorf("%s: annotation nerdctl/namespace = %q, want %q", c.name, s.Annotations["nerdctl/namespace"], ns)
	}
	stateDir := s.Annotations["nerdctl/state-dir"]
	if !strings.HasPrefix(stateDir, l.nd.dataRoot+"/") {
		t.Errorf("%s: nerdctl's state dir %q is not under the private data root %s", c.name, stateDir, l.nd.dataRoot)
		return
	}
	hookLog, err := os.ReadFile(filepath.Join(stateDir, "oci-hook.createRuntime.log"))
	if err != nil {
		t.Errorf("%s: nerdctl's createRuntime hook left no log: %v", c.name, err)
	} else if bytes.Contains(hookLog, []byte("level=error")) || bytes.Contains(hookLog, []byte("level=fatal")) {
		t.Errorf("%s: nerdctl's createRuntime hook logged an error:\n%s", c.name, hookLog)
	}
}

func contains(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}

func hookList(hooks []specs.Hook) string {
	var lines []string
	for _, h := range hooks {
		lines = append(lines, "  "+h.Path+" "+strings.Join(h.Args, " "))
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------- nerdctl

// nerdctl runs the built nerdctl against the private containerd, in
// namespace ulnd, with every path of its own in the test's directory.
type nerdctl struct {
	t        *testing.T
	bin      string
	dataRoot string
	global   []string
	env      []string
}

func newNerdctl(t *testing.T, bin string, c *containerd, dir string) *nerdctl {
	t.Helper()
	n := &nerdctl{t: t, bin: bin, dataRoot: filepath.Join(dir, "data")}
	paths := map[string]string{}
	for _, d := range []string{"data", "cni", "netconf", "certs.d"} {
		paths[d] = filepath.Join(dir, d)
		if err := os.MkdirAll(paths[d], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// An empty config: /etc/nerdctl/nerdctl.toml is the host's.
	toml := filepath.Join(dir, "nerdctl.toml")
	if err := os.WriteFile(toml, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n.global = []string{
		"--address", c.sock, "--namespace", ns, "--data-root", paths["data"],
		// nerdctl's oci-hook wants CNI paths even with --network none.
		"--cni-path", paths["cni"], "--cni-netconfpath", paths["netconf"],
		"--hosts-dir", paths["certs.d"], "--cgroup-manager", "cgroupfs",
	}
	// None of the host's nerdctl or containerd settings leak in.
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(k, "CONTAINERD_") || strings.HasPrefix(k, "NERDCTL_") || k == "CNI_PATH" || k == "NETCONFPATH" {
			continue
		}
		n.env = append(n.env, e)
	}
	n.env = append(n.env, "NERDCTL_TOML="+toml)
	return n
}

// run runs nerdctl with the global flags and returns its stdout; the error
// carries the command and stderr.
func (n *nerdctl) run(args ...string) (string, error) {
	return run(n.env, n.bin, append(append([]string{}, n.global...), args...)...)
}

func (n *nerdctl) must(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(n.run(args...))
}

// names lists every container of the namespace, running or not.
func (n *nerdctl) names() ([]string, error) {
	out, err := n.run("ps", "-a", "--format", "{{.Names}}")
	return strings.Fields(out), err
}

// removeAll is the test's cleanup: `nerdctl rm -f` of whatever is left.
func (n *nerdctl) removeAll(t *testing.T) {
	names, err := n.names()
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	if len(names) == 0 {
		return
	}
	if _, err := n.run(append([]string{"rm", "-f"}, names...)...); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// ------------------------------------------------------------- containerd

// containerd is a private containerd 2.x: root, state, sockets, config and
// log under dir; CRI disabled; its own shim first on PATH.
type containerd struct {
	dir  string
	sock string
	ctr  string
	*daemon
}

// Cleanup kills leftover processes whose command line has marker (the
// shims and nerdctl's log forwarders, which outlive containerd by design).
func startContainerd(t *testing.T, binDir, dir, marker string, extraEnv ...string) *containerd {
	t.Helper()
	c := &containerd{dir: dir, sock: filepath.Join(dir, "c.sock")}
	cfg := tl.WriteContainerdConfig(t, dir, c.sock, true)
	// The shims keep sockets and runc state under /run/containerd whatever
	// the config says: afterwards remove what was ours.
	removeRunDirs := tl.RunDirRemover()
	t.Cleanup(func() {
		tl.KillStrays(t, marker)
		killCgroup(t, ns) // container processes whose shim is gone
		tl.UnmountUnder(t, dir)
		removeCgroups(t, ns)
		removeShimLeftovers(t, c.sock)
		removeRunDirs("s", "fifo", "runc")
	})
	env := append(tl.PathFirst(binDir), extraEnv...)
	c.daemon = startDaemon(t, filepath.Join(dir, "containerd.log"), env, filepath.Join(binDir, "containerd"), "--config", cfg)
	c.ctr = filepath.Join(binDir, "ctr")
	c.WaitFor(t, "socket "+c.sock, 20*time.Second, func() error {
		_, err := run(nil, c.ctr, "--address", c.sock, "version")
		return err
	})
	return c
}

// watchEvents runs `ctr events` (every namespace) until cleanup and
// returns a function that counts the events so far whose line has every
// one of words.
func (c *containerd) watchEvents(t *testing.T) func(words ...string) int {
	t.Helper()
	d := startDaemon(t, filepath.Join(c.dir, "events.log"), nil, c.ctr, "--address", c.sock, "events")
	return func(words ...string) int {
		b, _ := os.ReadFile(d.Log)
		n := 0
	lines:
		for _, l := range strings.Split(string(b), "\n") {
			for _, w := range words {
				if !strings.Contains(l, w) {
					continue lines
				}
			}
			n++
		}
		return n
	}
}

// removeShimLeftovers removes what killed shims leave under
// /run/containerd for the containers of namespace ns: runc's state
// (/run/containerd/runc/<ns>/<id>) and the shim sockets, named
// sha256(<containerd address>/<ns>/<id>[/debug]). After a clean run there
// is nothing but the empty namespace directory.
func removeShimLeftovers(t *testing.T, address string) {
	runcRoot := filepath.Join("/run/containerd/runc", ns)
	ents, _ := os.ReadDir(runcRoot)
	for _, e := range ents {
		for _, p := range []string{filepath.Join(address, ns, e.Name()), filepath.Join(address, ns, e.Name(), "debug")} {
			sock := fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(p)))
			if err := os.Remove(sock); err == nil {
				t.Logf("cleanup: removed shim socket %s of %s", sock, e.Name())
			}
		}
		t.Logf("cleanup: removing runc state of %s", e.Name())
		if err := os.RemoveAll(filepath.Join(runcRoot, e.Name())); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	_ = os.Remove(runcRoot)
}

// -------------------------------------------------------------- underlayd

type underlayd struct {
	bin  string
	sock string
	*daemon
}

// startUnderlayd starts bin/underlayd (socket and state in dir) and waits
// until the CLI gets an answer.
func startUnderlayd(t *testing.T, bin, dir string, args ...string) *underlayd {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &underlayd{bin: bin, sock: filepath.Join(dir, "underlay.sock")}
	args = append([]string{"--socket", u.sock, "--state-dir", filepath.Join(dir, "state"), "--log-level", "debug"}, args...)
	u.daemon = startDaemon(t, filepath.Join(dir, "underlayd.log"), nil, filepath.Join(bin, "underlayd"), args...)
	u.CleanExit = true
	u.WaitFor(t, "answer on "+u.sock, 10*time.Second, func() error {
		_, err := u.cli("network", "ls")
		return err
	})
	return u
}

func (u *underlayd) cli(args ...string) (string, error) {
	return run(nil, filepath.Join(u.bin, "underlay"), append([]string{"--socket", u.sock}, args...)...)
}

func (u *underlayd) must(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(u.cli(args...))
}

// endpoint is one row of `underlay endpoint ls`.
type endpoint struct {
	Network, Container, IfName, Addresses, MAC, State string
}

func (u *underlayd) endpoints() ([]endpoint, error) {
	fields, err := tl.EndpointRows(u.cli)
	if err != nil {
		return nil, err
	}
	var rows []endpoint
	for _, f := range fields {
		rows = append(rows, endpoint{f[0], f[1], f[2], f[3], f[4], f[5]})
	}
	return rows, nil
}

// checkEndpoint asserts that endpoint ls has exactly one row for c: on
// network, named ulnd/<id>, eth0 with ip and mac, attached.
func (u *underlayd) checkEndpoint(t *testing.T, network string, c container, ip, mac string) {
	t.Helper()
	rows, err := u.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	var mine []endpoint
	for _, r := range rows {
		if r.Container == c.qualified() {
			mine = append(mine, r)
		}
	}
	want := endpoint{network, c.qualified(), "eth0", ip + "/24", strings.ToLower(mac), "attached"}
	if len(mine) != 1 || mine[0] != want {
		t.Errorf("endpoint ls for %s: got %v, want exactly %v; all rows:\n%v", c.name, mine, want, rows)
	}
}

// waitNoEndpoints waits until endpoint ls is empty and says when that was
// seen: at the first look, or after how long.
func (u *underlayd) waitNoEndpoints(t *testing.T, timeout time.Duration) string {
	t.Helper()
	start := time.Now()
	for look := 1; ; look++ {
		rows, err := u.endpoints()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			if look == 1 {
				return "at the first look"
			}
			return "after " + time.Since(start).Round(time.Millisecond).String()
		}
		if time.Since(start) > timeout {
			t.Fatalf("endpoint ls still lists removed containers after %v:\n%v", timeout, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noEndpoints asserts that endpoint ls is empty right now.
func (u *underlayd) noEndpoints(t *testing.T, when string) {
	t.Helper()
	rows, err := u.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Errorf("%s: endpoint ls still lists:\n%v", when, rows)
	}
}

// logLines returns the lines of the daemon's log at level, e.g. "ERROR".
func (u *underlayd) logLines(level string) []string {
	return u.logMatching("level=" + level)
}

// logMatching returns the lines of the daemon's log that contain any of
// words.
func (u *underlayd) logMatching(words ...string) []string {
	b, _ := os.ReadFile(u.Log)
	var hits []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				hits = append(hits, l)
				break
			}
		}
	}
	return hits
}

// ----------------------------------------------------------------- daemon

// daemon is a background process the test started and stops at cleanup.
type daemon = tl.Proc

// startDaemon is testlab.StartProc polling every 50 ms.
func startDaemon(t *testing.T, logPath string, env []string, name string, args ...string) *daemon {
	t.Helper()
	d := tl.StartProc(t, logPath, env, name, args...)
	d.Poll = 50 * time.Millisecond
	return d
}

// ------------------------------------------------------------------ utils

// tempDir is a short (unix socket paths are limited to 107 bytes) private
// directory under /tmp, removed at cleanup after unmounting what is left
// below it.
func tempDir(t *testing.T) string {
	t.Helper()
	return tl.ShortTempDir(t, "ulnd", 0)
}

// run runs a command with a timeout and returns its stdout; the error
// carries the command line, stderr and stdout.
func run(env []string, name string, args ...string) (string, error) {
	return tl.RunStdout(cmdTimeout, env, name, args...)
}

func hasLinePrefix(out, prefix string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), prefix) {
			return true
		}
	}
	return false
}

// containsWord reports whether w occurs in s delimited by anything that
// cannot be part of a name.
func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// cgroupDirs are the /<name> cgroups (cgroupfs: /<namespace>/<id>) of
// every hierarchy.
func cgroupDirs(name string) []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	if fi, err := os.Stat("/sys/fs/cgroup/" + name); err == nil && fi.IsDir() {
		dirs = append(dirs, "/sys/fs/cgroup/"+name)
	}
	return dirs
}

// killCgroup SIGKILLs every process left in the containers' cgroups, so
// that a container whose removal failed cannot outlive the test.
func killCgroup(t *testing.T, name string) {
	killed := map[int]bool{}
	for _, d := range cgroupDirs(name) {
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && !killed[pid] {
					t.Logf("cleanup: killing leftover container process %d (%s)", pid, filepath.Dir(p))
					_ = syscall.Kill(pid, syscall.SIGKILL)
					killed[pid] = true
				}
			}
			return nil
		})
	}
	if len(killed) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
}

// removeCgroups removes the (empty) cgroups under /<name>, deepest first.
func removeCgroups(t *testing.T, name string) {
	for _, d := range cgroupDirs(name) {
		var dirs []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, p := range dirs {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Logf("cleanup: %v", err)
			}
		}
	}
}
