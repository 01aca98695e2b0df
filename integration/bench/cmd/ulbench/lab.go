package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Every kernel object the bench makes is named with this prefix, and only
// objects it made are removed: the lab netns, and veth parents whose peers
// live in that netns. Fake containers are processes in fresh network
// namespaces; their interfaces die with them.
//
// The prefix is "ulb" unless -lab says otherwise (setLab), so that two
// benches on one host, or a bench beside tests that use ulb names, do not
// delete each other's lab.
var (
	labPrefix = "ulb"
	labNS     = "ulb-lan"
)

// Parents, one per contender, so no tool sees another's slaves. All are the
// host end of a veth whose peer is up in labNS: a real carrier, the same
// kind of parent for everyone.
var (
	parentUnderlay    = "ulbpa" // underlayd (the daemon the hook talks to)
	parentCNI         = "ulbpb" // CNI macvlan + host-local
	parentNetavark    = "ulbpc" // netavark
	parentInproc      = "ulbpd" // in-process network.Manager (breakdown)
	parentUnderlayCNI = "ulbpg" // underlay-cni, the CNI plugin, to the same underlayd
	parentUnderlayB   = "ulbph" // -bin-b: the second underlayd, hook and underlay-cni
	allParents        = []string{parentUnderlay, parentCNI, parentNetavark, parentInproc, parentUnderlayCNI, parentUnderlayB}
)

// setLab renames the lab's netns and links with prefix p (at most 9
// characters, so that link names fit IFNAMSIZ).
func setLab(p string) error {
	if p == "" || len(p) > 9 || strings.ContainsAny(p, "/ ") {
		return fmt.Errorf("-lab %q: want 1-9 characters, no slash or space", p)
	}
	labPrefix, labNS = p, p+"-lan"
	for _, v := range []*string{&parentUnderlay, &parentCNI, &parentNetavark, &parentInproc, &parentUnderlayCNI,
		&parentUnderlayB, &parentDHCPUnderlay, &parentDHCPCNI} {
		*v = p + "p" + (*v)[len(*v)-1:]
	}
	allParents = []string{parentUnderlay, parentCNI, parentNetavark, parentInproc, parentUnderlayCNI, parentUnderlayB}
	return nil
}

func peerOf(parent string) string { return labPrefix + "q" + parent[len(parent)-1:] }

// run runs a command and returns its combined output, or an error naming it.
func run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// setupLab makes the lab netns and the veth parents.
func setupLab() error {
	teardownLab()
	if _, err := run("ip", "netns", "add", labNS); err != nil {
		return err
	}
	if _, err := run("ip", "-n", labNS, "link", "set", "lo", "up"); err != nil {
		return err
	}
	for _, p := range allParents {
		q := peerOf(p)
		for _, args := range [][]string{
			{"link", "add", p, "type", "veth", "peer", "name", q},
			{"link", "set", q, "netns", labNS},
			{"-n", labNS, "link", "set", q, "up"},
			{"link", "set", p, "up"},
		} {
			if _, err := run("ip", args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// teardownLab removes what setupLab made (deleting a veth end removes both).
func teardownLab() {
	for _, p := range allParents {
		_ = exec.Command("ip", "link", "del", p).Run()
	}
	_ = exec.Command("ip", "netns", "del", labNS).Run()
}

// container is a process in a fresh network namespace, standing in for a
// container at createRuntime.
type container struct {
	ID    string
	Pid   int
	Inode uint64
	cmd   *exec.Cmd
	// gate parks the container's execs during a concurrent batch.
	gate *execGate
}

// NetnsPath is the namespace path CNI and netavark are given.
func (c *container) NetnsPath() string { return "/proc/" + strconv.Itoa(c.Pid) + "/ns/net" }

// procs tracks every process the bench started, so that cleanup kills
// exactly those.
type procs struct {
	mu   sync.Mutex
	live map[int]*exec.Cmd
}

var started = &procs{live: map[int]*exec.Cmd{}}

func (p *procs) add(c *exec.Cmd) {
	p.mu.Lock()
	p.live[c.Process.Pid] = c
	p.mu.Unlock()
}

func (p *procs) kill(c *exec.Cmd) {
	if c == nil || c.Process == nil {
		return
	}
	p.mu.Lock()
	_, ok := p.live[c.Process.Pid]
	delete(p.live, c.Process.Pid)
	p.mu.Unlock()
	if ok {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

func (p *procs) killAll() {
	p.mu.Lock()
	cmds := make([]*exec.Cmd, 0, len(p.live))
	for _, c := range p.live {
		cmds = append(cmds, c)
	}
	p.mu.Unlock()
	for _, c := range cmds {
		p.kill(c)
	}
}

// startTracked starts cmd, killed with the bench if the bench dies.
func startTracked(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return err
	}
	started.add(cmd)
	return nil
}

var selfNetns = func() uint64 {
	var st unix.Stat_t
	_ = unix.Stat("/proc/self/ns/net", &st)
	return st.Ino
}()

func netnsInode(pid int) uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st) != nil {
		return 0
	}
	return st.Ino
}

// newContainers starts n fake containers and waits until each has its own
// network namespace (unshare execs sleep once it has made it).
func newContainers(prefix string, n int) ([]*container, error) {
	cs := make([]*container, n)
	for i := range cs {
		cmd := exec.Command("unshare", "--net", "sleep", "3600")
		if err := startTracked(cmd); err != nil {
			return nil, fmt.Errorf("start fake container: %w", err)
		}
		cs[i] = &container{ID: fmt.Sprintf("%s-%04d", prefix, i), Pid: cmd.Process.Pid, cmd: cmd}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range cs {
		for {
			if ino := netnsInode(c.Pid); ino != 0 && ino != selfNetns {
				c.Inode = ino
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("fake container %s never got its own network namespace", c.ID)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return cs, nil
}

func killContainers(cs []*container) {
	for _, c := range cs {
		started.kill(c.cmd)
	}
	killedMu.Lock()
	killed += len(cs)
	killedMu.Unlock()
}

var (
	killedMu sync.Mutex
	killed   int // fake containers ended since the last settle
)

// settle waits for the kernel to tear down the namespaces of containers
// just ended (it does so in the background, deleting their interfaces), so
// that the next phase is not timed against that work.
func settle() {
	killedMu.Lock()
	n := killed
	killed = 0
	killedMu.Unlock()
	if n > 0 {
		time.Sleep(min(5*time.Second, time.Second+time.Duration(n)*5*time.Millisecond))
	}
}

// ifState is what a container's eth0 looks like from inside.
type ifState struct {
	Exists  bool
	Up      bool
	Addrs   []string // IPv4 CIDRs
	Default bool     // has an IPv4 default route on eth0
}

// inspect reads eth0 inside c's namespace through netlink (no exec).
func inspect(c *container) (ifState, error) {
	var s ifState
	ns, err := netns.GetFromPath(c.NetnsPath())
	if err != nil {
		return s, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return s, err
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return s, nil
		}
		return s, err
	}
	s.Exists = true
	s.Up = l.Attrs().Flags&(1<<0) != 0 // net.FlagUp
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return s, err
	}
	for _, a := range addrs {
		s.Addrs = append(s.Addrs, a.IPNet.String())
	}
	routes, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return s, err
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			s.Default = true
		}
	}
	return s, nil
}

// checkAttached fails unless eth0 is up with an address in subnet prefix
// (e.g. "10.200.") and a default route: the contender really did the work.
func checkAttached(c *container, subnetPrefix string) error {
	s, err := inspect(c)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", c.ID, err)
	}
	ok := false
	for _, a := range s.Addrs {
		ok = ok || strings.HasPrefix(a, subnetPrefix)
	}
	if !s.Exists || !s.Up || !ok || !s.Default {
		return fmt.Errorf("container %s not configured: %+v (want an address %s*, up, default route)", c.ID, s, subnetPrefix)
	}
	return nil
}

// checkDetached fails if c's eth0 still holds an address once the detach
// has answered. underlayd strips the interface before it answers and
// deletes it in the background, so eth0 may still be there, empty.
func checkDetached(c *container) error {
	s, err := inspect(c)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", c.ID, err)
	}
	if len(s.Addrs) > 0 || s.Default {
		return fmt.Errorf("container %s still has an address or a route after detach: %+v", c.ID, s)
	}
	return nil
}

// waitEmpty waits until the container's netns holds nothing but lo, and
// returns when it saw that. underlayd answers a poststop once eth0 has no
// address and is released, and deletes the interface in the background; the
// next contender must not start while the kernel is still busy with it.
func waitEmpty(c *container, limit time.Duration) (time.Time, error) {
	ns, err := netns.GetFromPath(c.NetnsPath())
	if err != nil {
		return time.Time{}, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return time.Time{}, err
	}
	defer h.Close()
	deadline := time.Now().Add(limit)
	for {
		links, err := h.LinkList()
		if err != nil {
			return time.Time{}, err
		}
		if len(links) <= 1 {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("container %s still has %d links %v after detach", c.ID, len(links), linkNames(links))
		}
		time.Sleep(time.Millisecond)
	}
}

func linkNames(ls []netlink.Link) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	return out
}

// stdinFile writes b to a file under dir and returns it opened for reading,
// so an exec'd child reads its stdin straight from the file: no pipe and no
// copying goroutine in the timing.
func stdinFile(dir string, b []byte) (*os.File, error) {
	f, err := os.CreateTemp(dir, "stdin-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// timedExec runs path with args, env and stdin, and returns its wall time
// from just before fork to just after wait, with its output. Stdin and
// output are files, so the timing holds no pipes and no copying goroutines.
func timedExec(tmp, path string, args, env []string, stdin []byte) (time.Duration, []byte, error) {
	wall, _, out, err := timedExecCPU(tmp, path, args, env, stdin)
	return wall, out, err
}

// timedExecCPU is timedExec that also returns the child's CPU time (user +
// system), which load on the host inflates far less than wall time.
func timedExecCPU(tmp, path string, args, env []string, stdin []byte) (wall, cpu time.Duration, output []byte, err error) {
	in, err := stdinFile(tmp, stdin)
	if err != nil {
		return 0, 0, nil, err
	}
	defer in.Close()
	out, err := stdinFile(tmp, nil)
	if err != nil {
		return 0, 0, nil, err
	}
	defer out.Close()
	cmd := exec.Command(path, args...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, in, out, out
	t0 := time.Now()
	err = cmd.Run()
	wall = time.Since(t0)
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	_, _ = out.Seek(0, 0)
	b, _ := io.ReadAll(out)
	if err != nil {
		return wall, cpu, b, fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return wall, cpu, b, nil
}
