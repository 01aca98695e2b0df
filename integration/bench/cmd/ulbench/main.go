// Command ulbench is underlay's benchmark (make bench): attach and detach
// latency side by side with CNI macvlan + host-local and netavark, IPAM
// allocation at scale against host-local, underlayd's footprint, restart
// and reconcile time, and the hook's start-up against a bare Go binary. It
// prints one table and writes the same figures as JSON. It asserts nothing:
// the targets are printed beside the figures.
//
// It needs root. Everything it makes in the kernel is prefixed "ulb" and
// lives on veth parents it creates; it never touches the host's
// interfaces, and it removes what it made, even when interrupted.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

type config struct {
	bin, floor, work, shm, out, profiles string
	n, conc, gone, events, ipamN, hlN    int
	hookN, restartN                      int
	settle, hlBudget                     time.Duration
	noContainerd, noVM                   bool
	repo                                 string
	only                                 string
	binB, lab                            string
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == gateArg {
		gateChild(os.Args[2:])
	}
	var c config
	stamp := time.Now().Format("20060102-150405")
	flag.StringVar(&c.bin, "bin", "bin", "directory holding underlayd, underlay and underlay-hook")
	flag.StringVar(&c.floor, "floor", "", "the bare Go binary (integration/bench/cmd/ulfloor), built with the same flags")
	flag.StringVar(&c.out, "out", filepath.Join(os.TempDir(), "ulbench-"+stamp+".json"), "JSON results file")
	flag.StringVar(&c.profiles, "profiles", filepath.Join(os.TempDir(), "ulbench-"+stamp+"-pprof"), "directory for CPU profiles of the in-process runs")
	flag.IntVar(&c.n, "n", 200, "sequential attaches (and detaches) per contender")
	flag.IntVar(&c.conc, "c", 50, "concurrent attaches (and detaches) per contender")
	flag.IntVar(&c.gone, "gone", 50, "poststop hooks run after the container's netns is gone")
	flag.IntVar(&c.events, "events", 50, "releases timed from containerd delete events")
	flag.IntVar(&c.ipamN, "ipam-n", 400, "in-process allocations per fill level")
	flag.IntVar(&c.hlN, "hostlocal-n", 100, "host-local ADDs per fill level")
	flag.DurationVar(&c.hlBudget, "hostlocal-budget", 10*time.Second, "time allowed per fill level for host-local ADDs (at least 5 are run)")
	flag.IntVar(&c.hookN, "hook-n", 200, "execs of each binary in the start-up comparison")
	flag.IntVar(&c.restartN, "restart-n", 5, "restarts of underlayd with 10,000 live endpoints")
	flag.DurationVar(&c.settle, "settle", 3*time.Second, "wait after start before reading underlayd's RSS")
	flag.BoolVar(&c.noContainerd, "no-containerd", false, "skip the containerd event benchmark")
	flag.BoolVar(&c.noVM, "no-vm", false, "skip the VM stage (1,000 VLAN parents in make test-vm's qemu guest)")
	flag.StringVar(&c.repo, "repo", ".", "the repository, for the VM stage")
	flag.StringVar(&c.only, "only", "", "run only one part: latency (exec'd attach/detach, hook start-up, events), scale (IPAM, RSS, restart) or global (etcd: local vs global attach, compare-and-swap floor, 3-host contention) or dhcp (--ipam-driver dhcp beside CNI's dhcp plugin on one dnsmasq)")
	flag.StringVar(&c.binB, "bin-b", "", "a second build (directory like -bin) run beside the first, interleaved, for A/B comparisons of the latency part")
	flag.StringVar(&c.lab, "lab", "ulb", "prefix of the lab's netns and links, so that two benches on one host keep apart")
	flag.Parse()
	if err := setLab(c.lab); err != nil {
		fmt.Fprintln(os.Stderr, "ulbench:", err)
		os.Exit(2)
	}
	if err := main1(&c); err != nil {
		fmt.Fprintln(os.Stderr, "ulbench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func main1(c *config) (err error) {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, macvlan)")
	}
	// The in-process managers use the kept netlink socket, as underlayd does.
	if err := link.OpenHostHandle(); err != nil {
		return err
	}
	defer link.CloseHostHandle()
	if c.bin, err = filepath.Abs(c.bin); err != nil {
		return err
	}
	if c.binB != "" {
		if c.binB, err = filepath.Abs(c.binB); err != nil {
			return err
		}
		for _, b := range []string{"underlayd", "underlay", "underlay-hook", "underlay-cni"} {
			if _, err := os.Stat(filepath.Join(c.binB, b)); err != nil {
				return fmt.Errorf("-bin-b: %w", err)
			}
		}
	}
	for _, p := range []string{filepath.Join(c.bin, "underlayd"), filepath.Join(c.bin, "underlay"),
		filepath.Join(c.bin, "underlay-hook"), c.floor, filepath.Join(cniBin, "macvlan"),
		filepath.Join(cniBin, "host-local"), netavarkBin} {
		if _, err := os.Stat(p); err != nil || p == "" {
			return fmt.Errorf("missing %q (run integration/bench/run.sh, which builds and installs what is needed)", p)
		}
	}
	for _, p := range []string{"ip", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			return err
		}
	}
	// Work on the disk (where /var/lib/underlay lives); templates on tmpfs.
	if c.work, err = os.MkdirTemp("/var/tmp", "ulbench."); err != nil {
		return err
	}
	defer os.RemoveAll(c.work)
	if c.shm, err = os.MkdirTemp("/dev/shm", "ulbench."); err != nil {
		return err
	}
	defer os.RemoveAll(c.shm)
	if err := os.MkdirAll(sub(c.work, "tmp"), 0o755); err != nil {
		return err
	}

	cleanup := func() {
		started.killAll()
		teardownLab()
		teardownEtcdLab()
	}
	defer cleanup()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		logf("%v: cleaning up", s)
		cleanup()
		os.RemoveAll(c.work)
		os.RemoveAll(c.shm)
		os.Exit(130)
	}()

	rep := &Report{Meta: meta(c)}
	t0 := time.Now()
	if err := setupLab(); err != nil {
		return err
	}
	if c.only != "" && c.only != "latency" && c.only != "scale" && c.only != "global" && c.only != "dhcp" {
		return fmt.Errorf("-only %q: want latency, scale, global or dhcp", c.only)
	}
	if c.only == "" || c.only == "latency" {
		if err := latency(c, rep); err != nil {
			return err
		}
	}
	if c.only == "" || c.only == "scale" {
		if err := scale(c, rep); err != nil {
			return err
		}
	}
	if c.only == "" || c.only == "global" {
		if err := global(c, rep); err != nil {
			return err
		}
	}
	if c.only == "" || c.only == "dhcp" {
		if err := dhcpStage(c, rep); err != nil {
			return err
		}
	}
	rep.Meta["duration"] = time.Since(t0).Round(time.Second).String()
	rep.Meta["loadavg_end"] = loadavg()
	vmRows(c, rep)
	rep.Notes = append(rep.Notes, fmt.Sprintf("load average at start %s, at end %s (on %d CPUs): other work on the host inflates every row; ratios are fairer than absolute times, since contenders are interleaved",
		rep.Meta["loadavg_start"], rep.Meta["loadavg_end"], runtime.NumCPU()))
	targets(rep)
	fmt.Println()
	rep.Print(os.Stdout)
	if err := rep.WriteJSON(c.out); err != nil {
		return err
	}
	fmt.Printf("\nJSON: %s\nCPU profiles: %s (go tool pprof -top FILE)\nrun time: %s\n", c.out, c.profiles, rep.Meta["duration"])
	return nil
}

// vmRows adds the VM stage, or a note saying why it did not run.
func vmRows(c *config, rep *Report) {
	if c.noVM || c.only == "latency" {
		rep.Notes = append(rep.Notes, "VM stage (1,000 VLAN parents) not run (-no-vm or -only latency)")
		return
	}
	logf("VM stage: 1,000 802.1q parents created and removed in make test-vm's qemu guest")
	m, err := vmStage(c.repo, 600*time.Second)
	if err != nil {
		rep.Notes = append(rep.Notes, "VM stage (1,000 VLAN parents) failed: "+err.Error())
		logf("VM stage: %v", err)
		return
	}
	note := "in qemu without KVM (emulated CPU): compare runs with each other, not with hardware"
	rep.add(single("vm", "create 1,000 VLAN parents (link.CreateVLAN)", "ms", m["create-ms/1000"])).Note =
		fmt.Sprintf("%.2f ms per parent; %s", m["create-ms/parent"], note)
	rep.add(single("vm", "remove 1,000 VLAN parents (link.Delete)", "ms", m["remove-ms/1000"])).Note =
		fmt.Sprintf("%.2f ms per parent", m["remove-ms/parent"])
}

func meta(c *config) map[string]string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	host, _ := os.Hostname()
	rev, _ := run("git", "-C", filepath.Join(c.bin, ".."), "rev-parse", "--short", "HEAD")
	nv, _ := run(netavarkBin, "--version")
	return map[string]string{
		"time": time.Now().UTC().Format(time.RFC3339), "host": host, "kernel": strings.TrimSpace(string(kernel)),
		"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "underlay_rev": strings.TrimSpace(rev),
		"netavark": strings.TrimSpace(nv), "cni_plugins": dpkgVersion("containernetworking-plugins"),
		"containerd": dpkgVersion("containerd"), "bin": c.bin,
		"n_sequential": fmt.Sprint(c.n), "n_concurrent": fmt.Sprint(c.conc), "loadavg_start": loadavg(),
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func dpkgVersion(pkg string) string {
	out, _ := run("dpkg-query", "-W", "-f=${Version}", pkg)
	return strings.TrimSpace(out)
}

// latency runs everything that execs binaries against a live underlayd:
// hook start-up, attach and detach beside CNI and netavark, and the
// containerd event path.
func latency(c *config, rep *Report) error {
	var ctrd *privateContainerd
	var extra []string
	if !c.noContainerd {
		var err error
		if ctrd, err = startContainerd(sub(c.work, "ctrd")); err != nil {
			rep.Notes = append(rep.Notes, "containerd event benchmark skipped: "+err.Error())
			logf("containerd: %v (event benchmark skipped)", err)
		} else {
			defer ctrd.Stop()
			extra = []string{"--containerd-address", ctrd.Socket}
		}
	}
	d := newDaemon(c.bin, sub(c.work, "ud"), extra...)
	if _, err := d.Start(30 * time.Second); err != nil {
		return err
	}
	defer d.Stop()
	if out, err := d.CLI("network", "create", "-d", "macvlan", "--subnet", "10.200.0.0/16", "--gateway", "10.200.0.1",
		"-o", "parent="+parentUnderlay, "ulbnet"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if out, err := d.CLI("network", "create", "-d", "macvlan", "--subnet", "10.207.0.0/16", "--gateway", "10.207.0.1",
		"-o", "parent="+parentUnderlayCNI, "ulbucni"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	tmp := sub(c.work, "tmp")
	for _, dir := range []string{sub(c.work, "cni"), sub(c.work, "netavark")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}

	var b *sideB
	var socketB string
	if c.binB != "" {
		var err error
		if b, err = startB(c, tmp); err != nil {
			return err
		}
		defer b.d.Stop()
		socketB = b.d.Socket
	}
	logf("hook start-up: %d execs each of the floor, the no-op hook and a round-trip hook", c.hookN)
	su, err := hookStartup(tmp, c.bin, c.floor, d.Socket, c.hookN, c.binB, socketB)
	if err != nil {
		return err
	}
	cpuNote := func(k int) string {
		r := durations("", "", su.cpu[k])
		return fmt.Sprintf("CPU (user+sys) median %s", fmtVal(r.Median, "ms"))
	}
	rep.add(durations("startup", "bare Go binary (floor)", su.wall[0])).Note = cpuNote(0) + "; run in the hook's environment (" + strings.Join(api.HookEnv, " ") + ")"
	rep.add(durations("startup", "underlay-hook, no annotation (exits at once)", su.wall[1])).Note = cpuNote(1)
	rep.add(durations("startup", "underlay-hook poststop, unknown container (socket round trip)", su.wall[2])).Note = cpuNote(2) + "; no kernel or store work"
	over := rep.add(durations("startup", "hook overhead over floor (paired difference)", paired(su.wall[0], su.wall[1])))
	oc := durations("", "", paired(su.cpu[0], su.cpu[1]))
	over.Note = fmt.Sprintf("per run: no-op hook minus the floor run just before it; CPU difference median %s", fmtVal(oc.Median, "ms"))
	if b != nil {
		startupRowsB(rep, su, cpuNote)
	}

	h := newHookRunner(tmp, c.bin, d, "ulbnet")
	cs := []*contender{underlayContender(h), cniContender(tmp, sub(c.work, "cni")), netavarkContender(tmp, sub(c.work, "netavark")),
		underlayCNIContender(tmp, c.bin, d.Socket)}
	if b != nil {
		cs = append(cs, b.cs...)
		b.h.takeCommits()
	}
	logf("sequential: %d attaches per contender, interleaved underlay/CNI/netavark/underlay-cni, then %d detaches", c.n, c.n)
	h.takeCommits()
	seq, err := sequential(cs, c.n, 0)
	if err != nil {
		return fmt.Errorf("%w\nunderlayd log:\n%s", err, d.Tail())
	}
	seqCommits := h.takeCommits()
	var seqCommitsB []time.Duration
	if b != nil {
		seqCommitsB = b.h.takeCommits()
	}
	settle()
	logf("concurrent: %d at once per contender", c.conc)
	conc, err := concurrent(cs, c.conc, c.n)
	if err != nil {
		return fmt.Errorf("%w\nunderlayd log:\n%s", err, d.Tail())
	}
	names := map[string][2]string{
		"underlay":     {"underlay hook createRuntime", "underlay hook poststop (netns alive)"},
		"CNI":          {"CNI macvlan+host-local ADD", "CNI macvlan+host-local DEL"},
		"netavark":     {"netavark setup (static IP)", "netavark teardown"},
		"underlay-cni": {"underlay-cni ADD", "underlay-cni DEL"},
	}
	for k, v := range namesB {
		names[k] = v
	}
	for k, ct := range cs {
		rep.add(durations("attach", names[ct.Name][0]+", sequential", seq[k].attach))
		if ct.Name == "underlay" {
			rep.add(durations("attach", "  underlay: hook exec -> endpoint configured and committed", seqCommits)).Note =
				"the rest is the answer and the hook's exit"
		}
		if ct.Name == "underlayB" {
			rep.add(durations("attach", "  B: hook exec -> endpoint configured and committed", seqCommitsB))
		}
	}
	cmode := fmt.Sprintf(", %d concurrent", c.conc)
	for k, ct := range cs {
		rep.add(durations("attach", names[ct.Name][0]+cmode, conc[k].attach)).Wall = ms(conc[k].attachWall)
	}
	for k, ct := range cs {
		rep.add(durations("detach", names[ct.Name][1]+", sequential", seq[k].detach))
		if ct.Name == "underlay" {
			rep.add(durations("detach", "  underlay: poststop exec -> interface deleted (background)", seq[k].gone)).Note =
				"the hook answers once eth0 has lost its addresses and is released; down and delete follow"
		}
	}
	for k, ct := range cs {
		rep.add(durations("detach", names[ct.Name][1]+cmode, conc[k].detach)).Wall = ms(conc[k].detachWall)
	}
	for _, mode := range []string{", sequential", cmode} {
		for _, ct := range cs {
			rep.compare(names[ct.Name][0]+mode, names["CNI"][0]+mode)
			rep.compare(names[ct.Name][1]+mode, names["CNI"][1]+mode)
		}
	}

	settle()
	logf("poststop after the container is gone: %d", c.gone)
	gone, err := poststopGone(cs[0], c.gone)
	if err != nil {
		return fmt.Errorf("%w\nunderlayd log:\n%s", err, d.Tail())
	}
	rep.add(durations("detach", "underlay hook poststop (netns already gone)", gone)).Note = "the usual case"
	rep.compare("underlay hook poststop (netns already gone)", names["CNI"][1]+", sequential")

	if ctrd != nil {
		settle()
		logf("containerd delete event -> lease released: %d", c.events)
		fromEvent, fromCall, err := eventDetach(ctrd, h, d, c.events)
		if err != nil {
			return fmt.Errorf("%w\nunderlayd log:\n%s", err, d.Tail())
		}
		r := rep.add(durations("detach", "containerd /containers/delete event -> lease released", fromEvent))
		fc := durations("", "", fromCall)
		r.Note = fmt.Sprintf("from the delete call: median %s, p90 %s", fmtVal(fc.Median, "ms"), fmtVal(fc.P90, "ms"))
		rep.compare(r.Name, names["CNI"][1]+", sequential")
	}
	eps, err := d.Endpoints()
	if err != nil {
		return err
	}
	if len(eps) != 0 {
		return fmt.Errorf("%d endpoints left in underlayd after every detach", len(eps))
	}

	settle()
	logf("in-process network.Manager attach/detach breakdown: %d", c.conc)
	ip, err := inprocAttach(sub(c.work, "inproc"), c.conc, filepath.Join(c.profiles, "inproc-attach-detach.pprof"), cs[1:3])
	if err != nil {
		return err
	}
	rep.add(durations("daemon", "Manager.Attach in process (no hook, no HTTP)", ip.attach)).Note = "interleaved with CNI ADD and netavark setup, untimed"
	rep.add(durations("daemon", fmt.Sprintf("  of which store commits (%d per attach)", ip.attachCommits), ip.attachStore))
	rep.add(durations("daemon", "Manager.Detach in process (netns alive)", ip.detach)).Note = "interleaved with CNI DEL and netavark teardown"
	rep.add(durations("daemon", fmt.Sprintf("  of which store commits (%d per detach)", ip.detachCommits), ip.detachStore))
	for _, l := range []struct {
		what string
		log  *stepLog
	}{{"attach", &ip.attachSteps}, {"detach", &ip.detachSteps}} {
		for _, step := range l.log.order {
			rep.add(durations("daemon", "  "+l.what+" step: "+step, l.log.ds[step]))
		}
	}
	settle()
	// More pairs than the other in-process rows: the difference sought
	// is a hundredth of an attach.
	nm := max(c.conc, 200)
	logf("in-process attach/detach with metrics off and on, interleaved: %d", nm)
	mr, err := inprocMetrics(sub(c.work, "metrics"), nm)
	if err != nil {
		return err
	}
	metricsRows(rep, mr)
	lc, ld, err := linkFloor(c.conc)
	if err != nil {
		return err
	}
	rep.add(durations("daemon", "link.CreateSlave alone (netlink work of an attach)", lc)).Note = "create in netns under the final name, sysctls, addr, up, route (the gratuitous ARP follows in the background)"
	rep.add(durations("daemon", "link.DeleteSlave alone (netlink work of a detach)", ld))
	fv, nproc, err := findVanished(20)
	if err != nil {
		return err
	}
	rep.add(durations("daemon", "link.FindNetns of a vanished netns", fv)).Note = fmt.Sprintf("stats /proc/*/ns/net of all %d processes", nproc)
	return nil
}

// scale runs what needs big state: allocation at fill, RSS, restart.
func scale(c *config, rep *Report) error {
	holders, err := newContainers("ulb-holder", 1)
	if err != nil {
		return err
	}
	defer killContainers(holders)
	holder := holders[0]
	hns, err := link.OpenPid(holder.Pid)
	if err != nil {
		return err
	}
	alive := nsID{Inode: hns.Inode, Cookie: hns.Cookie}
	hns.Close()
	dead := nsID{Inode: 1}

	logf("templates: populating state databases through the store package (tmpfs)")
	t0 := time.Now()
	tpl := map[string]*template{}
	mk := func(key, net string, leases []netip.Addr, ns nsID) error {
		t, err := makeTemplate(sub(c.shm, key), net, leases, ns)
		tpl[key] = t
		return err
	}
	if err := mk("empty", fillNet, nil, alive); err != nil {
		return err
	}
	if err := mk("10k", fillNet, randomFill(10000, 10), alive); err != nil {
		return err
	}
	if err := mk("10k-dead", fillNet, randomFill(10000, 10), dead); err != nil {
		return err
	}
	if err := mk("fill50", fillNet, randomFill(65533/2, 50), alive); err != nil {
		return err
	}
	if err := mk("fill99", fillNet, randomFill(65000, 99), alive); err != nil {
		return err
	}
	if err := mk("v6-10k", fill6Net, seq6(10000), alive); err != nil {
		return err
	}
	logf("templates ready in %s", time.Since(t0).Round(time.Millisecond))

	fs, err := fsyncFloor(c.work, 200)
	if err != nil {
		return err
	}
	rep.add(durations("ipam", "disk floor: 4 KiB write + fdatasync", fs)).Note = "state dir disk: every fsynced commit (networks, owned links) pays this at least; endpoint commits are not fsynced"

	tmp := sub(c.work, "tmp")
	levels := []struct{ key, label string }{
		{"empty", "/16 0% full"}, {"fill50", "/16 50% full (32,766)"}, {"fill99", "/16 99.2% full (65,000)"}, {"v6-10k", "/64 10,000 leased"},
	}
	for _, l := range levels {
		logf("ipam %s: %d in-process allocations, %d host-local ADDs", l.label, c.ipamN, c.hlN)
		ts := time.Now()
		ar, err := underlayAlloc(tpl[l.key], sub(c.work, "alloc-"+l.key), c.ipamN)
		if err != nil {
			return err
		}
		tu := time.Since(ts)
		hl, err := hostLocalAlloc(tmp, sub(c.work, "hl-"+l.key), holder.NetnsPath(), l.key == "v6-10k", tpl[l.key].Leases, c.hlN, c.hlBudget)
		if err != nil {
			return err
		}
		logf("  underlay part %s, host-local part %s", tu.Round(time.Millisecond), (time.Since(ts) - tu).Round(time.Millisecond))
		u := rep.add(durations("ipam", "underlay Allocate + bbolt commit, "+l.label, ar.total))
		a := durations("", "", ar.alloc)
		u.Note = fmt.Sprintf("Allocate alone: median %s, p99 %s", fmtVal(a.Median, "ms"), fmtVal(a.P99, "ms"))
		rep.add(durations("ipam", "host-local ADD (exec), "+l.label, hl)).Note = "includes process start"
		rep.compare(u.Name, "host-local ADD (exec), "+l.label)
	}

	logf("Manager.Detach fixed cost at 0, 10,000 and 65,000 endpoints")
	for _, l := range []struct {
		key, label, profile string
		n                   int
	}{{"empty", "0", "", 50}, {"10k", "10,000", "", 50}, {"fill99", "65,000", "detach-65k.pprof", 10}} {
		prof := ""
		if l.profile != "" {
			prof = filepath.Join(c.profiles, l.profile)
		}
		du, err := detachUnknown(tpl[l.key], sub(c.shm, "detach-"+l.key), l.n, prof)
		if err != nil {
			return err
		}
		rep.add(durations("daemon", "Manager.Detach fixed cost, "+l.label+" endpoints loaded", du)).Note = "container with no endpoint"
	}

	logf("footprint: underlayd RSS idle, with 10,000 and with 65,000 leases")
	for _, l := range []struct{ key, label string }{{"empty", "idle (1 network, 0 leases)"}, {"10k", "10,000 leases"}, {"fill99", "65,000 leases"}} {
		m, st, err := rss(c.bin, tpl[l.key], sub(c.work, "rss-"+l.key), c.settle)
		if err != nil {
			return err
		}
		rep.add(single("footprint", "underlayd RSS, "+l.label, "MiB", m.RSS)).Note = fmt.Sprintf(
			"anon %.1f + file %.1f MiB (db file %.1f MiB); peak %.1f MiB; after an endpoint ls %.1f MiB; start-up %s",
			m.Anon, m.File, m.DB, m.HWM, m.AfterList, fmtVal(ms(st), "ms"))
	}
	live, err := inprocHeap(tpl["fill99"], sub(c.shm, "heap"), filepath.Join(c.profiles, "heap-65k.pprof"))
	if err != nil {
		return err
	}
	rep.add(single("footprint", "  in process: live Go heap of network.Manager, 65,000 leases", "MiB", live)).Note = "after load + reconcile + GC; heap profile written"

	logf("restart + reconcile with 10,000 live endpoints: %d restarts", c.restartN)
	rs, err := restarts(c.bin, tpl["10k"], sub(c.work, "restart"), c.restartN)
	if err != nil {
		return err
	}
	rep.add(durations("restart", "restart+reconcile, 10,000 endpoints alive", rs)).Note = "exec -> first answered request"

	logf("restart + reconcile with 10,000 dead endpoints (a reboot)")
	dd, err := deadRestart(c.bin, tpl["10k-dead"], sub(c.work, "dead"), 300*time.Second)
	if err != nil {
		return err
	}
	rep.add(single("restart", "restart+reconcile, 10,000 endpoints dead (reboot)", "ms", ms(dd))).Note = "all 10,000 released before serving"

	logf("in-process reconcile of 10,000 dead endpoints (store commits timed, CPU profile)")
	if err := tpl["10k-dead"].copyTo(sub(c.work, "dead-inproc")); err != nil {
		return err
	}
	total, load, storeTime, commits, released, err := inprocReconcile(sub(c.work, "dead-inproc"), filepath.Join(c.profiles, "reconcile-dead-10k.pprof"))
	if err != nil {
		return err
	}
	r := rep.add(single("restart", "  in process: load + reconcile 10,000 dead", "ms", ms(total)))
	r.Note = fmt.Sprintf("load %s; %d released; %d store commits took %s", fmtVal(ms(load), "ms"), released, commits, fmtVal(ms(storeTime), "ms"))
	return nil
}
