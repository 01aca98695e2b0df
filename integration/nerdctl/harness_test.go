package nerdctl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
// anything missing.
func require(t *testing.T) {
	t.Helper()
	tl.Require(t, "ip", "runc")
	tl.RequireStaticBusybox(t)
}

// lab is everything one test runs on: the LAN, containerd 2.x, underlayd,
// nerdctl, the busybox image and a macvlan network on the LAN's uplink.
type lab struct {
	dir     string
	lan     *tl.LAN
	network string
	ctrd    *tl.Containerd
	ctr     string // containerd 2.x's ctr
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
	require(t)
	ctrdDir := tl.Containerd2Dir(t)
	ndBin := nerdctlBin(t)

	l := &lab{dir: tempDir(t), network: o.prefix + "-net", ctr: filepath.Join(ctrdDir, "ctr")}
	l.lan = tl.NewLAN(t, o.prefix, o.router)

	l.uld = &underlayd{tl.NewDaemon(t, filepath.Join(l.dir, "uld"))}
	l.hookSocket = l.uld.Socket
	if o.hookLink {
		l.hookSocket = filepath.Join(l.dir, "hook.sock")
		if err := os.Symlink(l.uld.Socket, l.hookSocket); err != nil {
			t.Fatal(err)
		}
	}
	// The shims, and so underlay-runc and the hooks it adds, inherit
	// containerd's UNDERLAY_SOCKET; nerdctl's log forwarders outlive the
	// shims, and carry the lab's directory on their command line.
	l.ctrd = tl.StartContainerd(t, filepath.Join(l.dir, "ctrd"), tl.ContainerdOptions{BinDir: ctrdDir, V3: true,
		Namespace: ns, Env: []string{"UNDERLAY_SOCKET=" + l.hookSocket}, StrayMarker: l.dir + "/"})
	var uldArgs []string
	var late *lateProxy
	switch {
	case o.eventDelay > 0:
		proxy := filepath.Join(l.dir, "late.sock")
		late = newLateProxy(t, proxy, l.ctrd.Socket, o.eventDelay)
		uldArgs = append(uldArgs, "--containerd-address", proxy)
	case o.events:
		uldArgs = append(uldArgs, "--containerd-address", l.ctrd.Socket)
	}
	l.uld.Start(uldArgs...)
	if len(uldArgs) > 0 {
		err := tl.Retry(50, func() error {
			if !strings.Contains(l.uld.Log(), "following containerd events") {
				return errors.New("underlayd does not follow containerd's events yet")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if late != nil {
		late.arm()
	}
	l.nd = newNerdctl(t, ndBin, l.ctrd, filepath.Join(l.dir, "nerdctl"))

	image := filepath.Join(l.dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	l.nd.must(t, "load", "-i", image)

	l.uld.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", l.lan.Router.Masked().String(),
		"--gateway", l.routerIP(), "-o", "parent="+l.lan.Uplink, l.network)
	t.Cleanup(func() {
		if out, _ := l.uld.CLI("network", "ls"); tl.ContainsWord(out, l.network) {
			if _, err := l.uld.CLI("network", "rm", l.network); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	// Registered last, so it runs first: no container outlives the test.
	t.Cleanup(func() { l.nd.removeAll(t) })
	return l
}

func (l *lab) routerIP() string { return l.lan.Router.Addr().String() }

// container is one nerdctl container: the name the test gave it and the
// full id nerdctl printed.
type container struct{ name, id string }

// qualified is how endpoint ls names it: containerd namespace / id.
func (c container) qualified() string { return ns + "/" + c.id }

var fullID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// run is README's command: nerdctl run -d --runtime underlay-runc
// --network none, one --annotation per entry of ann, busybox sleep 3600.
func (l *lab) run(name string, ann ...string) (container, error) {
	args := []string{"run", "-d", "--name", name, "--runtime", filepath.Join(tl.BinDir(), "underlay-runc"), "--network", "none"}
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

// exec runs `nerdctl exec` in c.
func (l *lab) exec(c container) tl.ExecFunc {
	return func(args ...string) (string, error) {
		return l.nd.run(append([]string{"exec", c.name}, args...)...)
	}
}

// checkEth0 is testlab's CheckEth0 from inside c.
func (l *lab) checkEth0(t *testing.T, c container, want string) string {
	t.Helper()
	return l.lan.CheckEth0(t, c.name, l.exec(c), want)
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

// checkPing asserts that c reaches addr.
func (l *lab) checkPing(t *testing.T, c container, addr string) {
	t.Helper()
	tl.CheckPing(t, c.name, l.exec(c), addr)
}

// checkRouterPing asserts that the router reaches addr.
func (l *lab) checkRouterPing(t *testing.T, addr string) {
	t.Helper()
	if err := l.lan.RouterPing(addr); err != nil {
		t.Errorf("the router cannot ping %s: %v", addr, err)
	}
}

// checkHooks asserts that the bundle runc got for c has nerdctl's oci-hook
// and underlay-hook at both createRuntime and poststop, and that nerdctl's
// createRuntime hook left no error in its log.
func (l *lab) checkHooks(t *testing.T, c container) {
	t.Helper()
	s, err := l.ctrd.BundleSpec(c.id)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	if s.Hooks == nil {
		t.Fatalf("%s: the bundle's spec has no hooks", c.name)
	}
	ours := filepath.Join(tl.BinDir(), "underlay-hook")
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

func newNerdctl(t *testing.T, bin string, c *tl.Containerd, dir string) *nerdctl {
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
		"--address", c.Socket, "--namespace", ns, "--data-root", paths["data"],
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

// watchEvents runs `ctr events` (every namespace) until cleanup and
// returns a function that counts the events so far whose line has every
// one of words.
func (l *lab) watchEvents(t *testing.T) func(words ...string) int {
	t.Helper()
	d := tl.StartProc(t, filepath.Join(l.ctrd.Dir, "events.log"), nil, l.ctr, "--address", l.ctrd.Socket, "events")
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

// -------------------------------------------------------------- underlayd

// underlayd is testlab's daemon with the checks these tests make of
// endpoint ls and the log.
type underlayd struct{ *tl.Daemon }

// endpoint is one row of `underlay endpoint ls`.
type endpoint struct {
	Network, Container, IfName, Addresses, MAC, State string
}

func (u *underlayd) endpoints() ([]endpoint, error) {
	fields, err := tl.EndpointRows(u.CLI)
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
	var hits []string
	for _, l := range strings.Split(u.Log(), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				hits = append(hits, l)
				break
			}
		}
	}
	return hits
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
