package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
)

// A contender attaches a fake container to its macvlan network on its own
// veth parent, and detaches it, by exec'ing its real binary from the
// bench's (the host's) network namespace, as a runtime would.
type contender struct {
	Name   string
	Subnet string // "10.200." : what checkAttached looks for
	Attach func(c *container, i int) (time.Duration, error)
	Detach func(c *container, i int) (time.Duration, error)
}

const basePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ociState is the state a runtime gives a hook on stdin.
func ociState(id string, pid int, status, bundle string, ann map[string]string) []byte {
	st := map[string]any{"ociVersion": "1.0.2", "id": id, "status": status, "pid": pid, "bundle": bundle}
	if ann != nil {
		st["annotations"] = ann
	}
	b, _ := json.Marshal(st)
	return b
}

// hookRunner execs bin/underlay-hook against one underlayd.
type hookRunner struct {
	tmp, hook string
	env       []string
	ann       map[string]string
	d         *daemon

	mu      sync.Mutex
	commits []time.Duration // createRuntime: hook exec -> endpoint committed
}

func (h *hookRunner) run(stage, status, bundle string, c *container) (time.Duration, error) {
	d, _, err := c.exec(h.tmp, h.hook, []string{stage}, h.env, ociState(c.ID, c.Pid, status, bundle, h.ann))
	return d, err
}

// attach runs createRuntime and also records when underlayd committed the
// endpoint (its "attached" log line, written right after the commit), so
// that the time from hook exec to configured-and-committed is known apart
// from the answer and the hook's exit.
func (h *hookRunner) attach(c *container, bundle string) (time.Duration, error) {
	committed := h.d.WaitCommit(c.ID)
	if i := strings.Index(bundle, "/io.containerd.runtime.v2.task/"); i >= 0 {
		committed = h.d.WaitCommit(strings.TrimPrefix(bundle[i:], "/io.containerd.runtime.v2.task/"))
	}
	t0 := time.Now()
	d, err := h.run("createRuntime", "creating", bundle, c)
	if err != nil {
		return d, err
	}
	select {
	case tc := <-committed:
		h.mu.Lock()
		h.commits = append(h.commits, tc.Sub(t0))
		h.mu.Unlock()
	case <-time.After(5 * time.Second):
		return d, fmt.Errorf("attach of %s: no \"attached\" line from underlayd", c.ID)
	}
	return d, nil
}

// takeCommits returns and forgets the exec -> commit times recorded.
func (h *hookRunner) takeCommits() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.commits
	h.commits = nil
	return out
}

func newHookRunner(tmp, bin string, d *daemon, net string) *hookRunner {
	return &hookRunner{tmp: tmp, hook: filepath.Join(bin, "underlay-hook"), d: d,
		env: hookEnv(d.Socket), ann: map[string]string{"io.underlay.network": net}}
}

// hookEnv is the environment runc gives the hook as underlay-runc and the
// hooks.d file define it: api.HookEnv and the socket, nothing else.
func hookEnv(socket string) []string {
	return append(slices.Clone(api.HookEnv), "UNDERLAY_SOCKET="+socket)
}

// underlayContender runs the hook as runc does: createRuntime attaches,
// poststop detaches.
func underlayContender(h *hookRunner) *contender {
	return &contender{
		Name: "underlay", Subnet: "10.200.",
		Attach: func(c *container, _ int) (time.Duration, error) { return h.attach(c, "/x") },
		Detach: func(c *container, _ int) (time.Duration, error) { return h.run("poststop", "stopped", "/x", c) },
	}
}

const cniBin = "/usr/lib/cni"

// cniContender runs the CNI macvlan plugin with host-local IPAM (which
// macvlan execs), with the same routes underlay sets: a default route via
// the gateway.
func cniContender(tmp, dataDir string) *contender {
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "ulbcni", "type": "macvlan", "master": parentCNI, "mode": "bridge",
		"ipam": map[string]any{"type": "host-local", "subnet": "10.201.0.0/16", "gateway": "10.201.0.1",
			"dataDir": dataDir, "routes": []map[string]string{{"dst": "0.0.0.0/0"}}},
	})
	do := cniMacvlan(tmp, conf)
	return &contender{
		Name: "CNI", Subnet: "10.201.",
		Attach: func(c *container, _ int) (time.Duration, error) { return do("ADD", c) },
		Detach: func(c *container, _ int) (time.Duration, error) { return do("DEL", c) },
	}
}

// cniMacvlan execs the CNI macvlan plugin with conf, timed.
func cniMacvlan(tmp string, conf []byte) func(cmd string, c *container) (time.Duration, error) {
	return func(cmd string, c *container) (time.Duration, error) {
		env := []string{basePath, "CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + c.ID, "CNI_NETNS=" + c.NetnsPath(),
			"CNI_IFNAME=eth0", "CNI_PATH=" + cniBin}
		d, _, err := c.exec(tmp, filepath.Join(cniBin, "macvlan"), nil, env, conf)
		return d, err
	}
}

// underlayCNIContender execs underlay-cni, the CNI plugin, as a runtime
// does: the same exec as the CNI macvlan plugin's, to the same underlayd
// as the hook's.
func underlayCNIContender(tmp, bin, socket string) *contender {
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "ulbucni", "type": "underlay", "socket": socket})
	do := func(cmd string, c *container) (time.Duration, error) {
		env := []string{basePath, "CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + c.ID, "CNI_NETNS=" + c.NetnsPath(),
			"CNI_IFNAME=eth0", "CNI_PATH=" + bin}
		d, out, err := c.exec(tmp, filepath.Join(bin, "underlay-cni"), nil, env, conf)
		if err != nil {
			return d, fmt.Errorf("%w: %s", err, out)
		}
		return d, nil
	}
	return &contender{
		Name: "underlay-cni", Subnet: "10.207.",
		Attach: func(c *container, _ int) (time.Duration, error) { return do("ADD", c) },
		Detach: func(c *container, _ int) (time.Duration, error) { return do("DEL", c) },
	}
}

const netavarkBin = "/usr/lib/podman/netavark"

// netavarkContender runs netavark setup/teardown with a static address, as
// podman does after doing IPAM itself: netavark gets no IPAM work.
func netavarkContender(tmp, confDir string) *contender {
	opts := func(c *container, i int) []byte {
		ip := netip.AddrFrom4([4]byte{10, 202, byte((i + 2) >> 8), byte(i + 2)})
		b, _ := json.Marshal(map[string]any{
			"container_id": fmt.Sprintf("%064x", i+1), "container_name": c.ID,
			"networks": map[string]any{"ulbnv": map[string]any{"static_ips": []string{ip.String()}, "interface_name": "eth0"}},
			"network_info": map[string]any{"ulbnv": map[string]any{
				"name": "ulbnv", "id": fmt.Sprintf("%064x", 0xb0b), "driver": "macvlan", "network_interface": parentNetavark,
				"subnets":      []map[string]string{{"subnet": "10.202.0.0/16", "gateway": "10.202.0.1"}},
				"ipv6_enabled": false, "internal": false, "dns_enabled": false,
				"ipam_options": map[string]string{"driver": "host-local"},
			}},
		})
		return b
	}
	do := func(cmd string, c *container, i int) (time.Duration, error) {
		d, _, err := c.exec(tmp, netavarkBin, []string{"--config", confDir, cmd, c.NetnsPath()}, []string{basePath}, opts(c, i))
		return d, err
	}
	return &contender{
		Name: "netavark", Subnet: "10.202.",
		Attach: func(c *container, i int) (time.Duration, error) { return do("setup", c, i) },
		Detach: func(c *container, i int) (time.Duration, error) { return do("teardown", c, i) },
	}
}

// opTimes are one contender's samples for one phase.
type opTimes struct {
	attach, detach []time.Duration
	attachWall     time.Duration
	detachWall     time.Duration
	// gone is, per sequential detach, exec to the moment the netns held
	// nothing but lo: for underlay that includes the background deletion.
	gone []time.Duration
}

// quiet is the pause between two timed operations, outside the timing, so
// that work the kernel defers after one contender's operation (RCU, link
// teardown) does not land in the next contender's time.
const quiet = 10 * time.Millisecond

// sequential attaches n containers per contender, interleaved A B C A B C,
// then detaches them the same way, checking each result inside the netns
// (outside the timing). Attaches accumulate, as on a real host.
func sequential(cs []*contender, n, base int) ([]opTimes, error) {
	out := make([]opTimes, len(cs))
	conts := make([][]*container, len(cs))
	defer func() {
		for _, cc := range conts {
			killContainers(cc)
		}
	}()
	for k, c := range cs {
		var err error
		if conts[k], err = newContainers(fmt.Sprintf("ulb-%s-s", c.Name), n); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i++ {
		for k, c := range cs {
			d, err := c.Attach(conts[k][i], base+i)
			if err != nil {
				return nil, fmt.Errorf("%s attach %d: %w", c.Name, i, err)
			}
			if err := checkAttached(conts[k][i], c.Subnet); err != nil {
				return nil, fmt.Errorf("%s attach %d: %w", c.Name, i, err)
			}
			out[k].attach = append(out[k].attach, d)
			time.Sleep(quiet)
		}
	}
	for i := 0; i < n; i++ {
		for k, c := range cs {
			t0 := time.Now()
			d, err := c.Detach(conts[k][i], base+i)
			if err != nil {
				return nil, fmt.Errorf("%s detach %d: %w", c.Name, i, err)
			}
			if err := checkDetached(conts[k][i]); err != nil {
				return nil, fmt.Errorf("%s detach %d: %w", c.Name, i, err)
			}
			empty, err := waitEmpty(conts[k][i], 2*time.Second)
			if err != nil {
				return nil, fmt.Errorf("%s detach %d: %w", c.Name, i, err)
			}
			out[k].detach = append(out[k].detach, d)
			out[k].gone = append(out[k].gone, empty.Sub(t0))
			time.Sleep(quiet)
		}
	}
	return out, nil
}

// concurrent runs n attaches of one contender at once, then n detaches at
// once; contenders take turns. The execs are parked and released together
// (gate.go), and timed from the release to their exit.
func concurrent(cs []*contender, n, base int) ([]opTimes, error) {
	out := make([]opTimes, len(cs))
	for k, c := range cs {
		conts, err := newContainers(fmt.Sprintf("ulb-%s-c", c.Name), n)
		if err != nil {
			return nil, err
		}
		batch := func(op func(*container, int) (time.Duration, error)) ([]time.Duration, time.Duration, error) {
			g, err := newExecGate()
			if err != nil {
				return nil, 0, err
			}
			defer g.close()
			ds := make([]time.Duration, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range conts {
				conts[i].gate = g
				wg.Add(1)
				go func() {
					defer wg.Done()
					ds[i], errs[i] = op(conts[i], base+i)
				}()
			}
			openErr := g.open(n, 30*time.Second)
			wg.Wait()
			wall := time.Since(g.t0)
			for i := range conts {
				conts[i].gate = nil
			}
			for i, err := range errs {
				if err != nil {
					return nil, 0, fmt.Errorf("%s concurrent op %d: %w", c.Name, i, err)
				}
			}
			if openErr != nil {
				return nil, 0, fmt.Errorf("%s concurrent: %w", c.Name, openErr)
			}
			return ds, wall, nil
		}
		if out[k].attach, out[k].attachWall, err = batch(c.Attach); err != nil {
			killContainers(conts)
			return nil, err
		}
		for _, ct := range conts {
			if err := checkAttached(ct, c.Subnet); err != nil {
				killContainers(conts)
				return nil, fmt.Errorf("%s concurrent: %w", c.Name, err)
			}
		}
		if out[k].detach, out[k].detachWall, err = batch(c.Detach); err != nil {
			killContainers(conts)
			return nil, err
		}
		for _, ct := range conts {
			err := checkDetached(ct)
			if err == nil {
				_, err = waitEmpty(ct, 5*time.Second)
			}
			if err != nil {
				killContainers(conts)
				return nil, fmt.Errorf("%s concurrent: %w", c.Name, err)
			}
		}
		killContainers(conts)
		settle()
	}
	return out, nil
}

// poststopGone measures the poststop hook as it usually runs: the
// container's process has exited, so its netns is gone (the kernel tears
// it down, and the interface with it, in the background). One container
// at a time, as a runtime would: exit, then poststop at once.
func poststopGone(u *contender, n int) ([]time.Duration, error) {
	conts, err := newContainers("ulb-underlay-g", n)
	if err != nil {
		return nil, err
	}
	defer killContainers(conts)
	for i, c := range conts {
		if _, err := u.Attach(c, i); err != nil {
			return nil, err
		}
	}
	var ds []time.Duration
	for i, c := range conts {
		killContainers([]*container{c})
		d, err := u.Detach(c, i)
		if err != nil {
			return nil, fmt.Errorf("poststop after exit %d: %w", i, err)
		}
		ds = append(ds, d)
		time.Sleep(20 * time.Millisecond) // let the kernel finish that namespace
	}
	return ds, nil
}
