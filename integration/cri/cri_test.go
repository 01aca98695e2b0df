// Package cri proves the Kubernetes path against real software:
// containerd 2.x with its CRI plugins on, driven by crictl (cri-tools) as
// the kubelet drives it, attaches a pod sandbox through underlay-cni to a
// macvlan network that `underlay network create --cni-conf-dir` put in
// CRI's conf dir. The pod gets an address of the LAN that the router
// reaches, `underlay endpoint ls` lists it under the sandbox id (CRI's CNI
// container id), and crictl stopp + rmp release it.
//
// Nothing touches the host's defaults: containerd runs with a private
// root, state, socket and config (version 3, CRI on, NRI off), its CNI bin
// and conf dirs, runc root and pod network namespaces in the test's
// directory; the pod's cgroups go under /ulcr; crictl gets a config file
// of its own. There is no registry: the sandbox image is a busybox-static
// docker-archive whose command is `sleep 3600`, imported with ctr into
// the k8s.io namespace and pinned as CRI's sandbox image. Links,
// namespaces and cgroups start with "ulcr"; t.Cleanup removes them, and
// only what the test started, even on failure.
//
// containerd comes from testlab's cache (Containerd2Dir); crictl is built
// through the Go module proxy the first time into UNDERLAY_CRICTL_CACHE
// (default /var/cache/underlay-crictl)/<version>. The test needs root,
// containernetworking-plugins (for loopback) and busybox-static, and skips
// unless UNDERLAY_PRIVILEGED=1:
//
//	make build
//	sudo UNDERLAY_PRIVILEGED=1 go test -v -count=1 ./integration/cri/
package cri

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

const (
	// crictlVersion is the cri-tools the module proxy serves here; it
	// matches containerd 2.4's CRI API (k8s.io/cri-api v0.37).
	crictlVersion = "v1.37.0"
	crictlPkg     = "sigs.k8s.io/cri-tools/cmd/crictl"

	prefix = "ulcr"
	// cgroupParent holds the pod's cgroups (cgroupfs: /ulcr/<sandbox id>
	// in every hierarchy), so that cleanup knows which are ours.
	cgroupParent = "/" + prefix
	sandboxImage = "localhost/underlay/busybox-sleep:latest"
	network      = prefix + "net"
	cmdTimeout   = 60 * time.Second
)

// TestPrivilegedCRI runs a pod sandbox through containerd's CRI and
// underlay-cni: crictl runp gives it an address of the network's subnet,
// which inspectp reports, endpoint ls lists under the sandbox id and the
// router pings; inside the pod's netns eth0 has it, with a default route
// via the router. crictl stopp and rmp release it.
func TestPrivilegedCRI(t *testing.T) {
	tl.Require(t, "ip", "runc", "nsenter")
	tl.RequireStaticBusybox(t)
	const loopback = "/usr/lib/cni/loopback"
	if _, err := os.Stat(loopback); err != nil {
		t.Fatalf("%v: apt-get install containernetworking-plugins", err)
	}
	ctrdBin := tl.Containerd2Dir(t)
	crictl := crictlBin(t)

	dir := tl.ShortTempDir(t, prefix, 0o755)
	binDir, confDir := filepath.Join(dir, "cni-bin"), filepath.Join(dir, "cni-conf")
	for _, d := range []string{binDir, confDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"underlay": filepath.Join(tl.BinDir(), "underlay-cni"), "loopback": loopback} {
		if err := os.Symlink(target, filepath.Join(binDir, link)); err != nil {
			t.Fatal(err)
		}
	}

	lan := tl.NewLAN(t, prefix+"1", "10.97.0.1/24")
	d := tl.StartDaemon(t)
	// Before containerd starts, so that CRI finds the list at once.
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", "10.97.0.0/24", "--gateway", "10.97.0.1",
		"-o", "parent="+lan.Uplink, "--cni-conf-dir", confDir, network)
	t.Cleanup(func() {
		if _, err := d.CLI("network", "rm", network); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if b, err := os.ReadFile(filepath.Join(confDir, "underlay-"+network+".conflist")); err != nil || !bytes.Contains(b, []byte(d.Socket)) {
		t.Fatalf("network create --cni-conf-dir: %v: want a conflist naming the daemon's socket %s, got:\n%s", err, d.Socket, b)
	}

	c := startCRI(t, dir, ctrdBin, binDir, confDir)
	image := filepath.Join(dir, "busybox-sleep.tar")
	sleepImage(t, image, sandboxImage)
	c.mustCtr(t, "images", "import", image)
	cr := newCrictl(t, crictl, c.socket, dir)
	cr.waitReady(t)

	podConfig := filepath.Join(dir, "pod.json")
	pod, err := json.Marshal(map[string]any{
		"metadata":      map[string]any{"name": prefix + "-pod", "namespace": prefix, "uid": prefix + "-uid-1", "attempt": 0},
		"log_directory": filepath.Join(dir, "pod-logs"),
		"linux":         map[string]any{"cgroup_parent": cgroupParent},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(podConfig, pod, 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	id := strings.TrimSpace(cr.must(t, "runp", podConfig))
	t.Logf("crictl runp: %s in %v", id, time.Since(start).Round(time.Millisecond))
	ip, netnsPath := cr.inspect(t, id)
	if got := ip.String(); !lan.Router.Masked().Contains(ip) || ip == lan.Router.Addr() {
		t.Fatalf("crictl inspectp: pod IP %q, want an address of %s other than the router's", got, lan.Router.Masked())
	}
	t.Logf("pod IP %s, netns %s", ip, netnsPath)
	checkEndpoint(t, d, id, ip.String())
	if err := lan.RouterPing(ip.String()); err != nil {
		t.Errorf("the router cannot ping the pod at %s: %v", ip, err)
	}
	inPod := func(args ...string) (string, error) {
		return tl.RunStdout(cmdTimeout, nil, "nsenter", append([]string{"--net=" + netnsPath}, args...)...)
	}
	lan.CheckEth0(t, "pod "+id, inPod, ip.String())

	start = time.Now()
	cr.must(t, "stopp", id)
	cr.must(t, "rmp", id)
	t.Logf("crictl stopp + rmp: %v", time.Since(start).Round(time.Millisecond))
	waitGone(t, d, id, 5*time.Second)
	if out := cr.must(t, "pods", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("crictl pods still lists after rmp:\n%s", out)
	}
}

// checkEndpoint asserts that endpoint ls has exactly one row for the
// sandbox: on the network, eth0, ip/24, attached.
func checkEndpoint(t *testing.T, d *tl.Daemon, id, ip string) {
	t.Helper()
	rows, err := tl.EndpointRows(d.CLI)
	if err != nil {
		t.Fatal(err)
	}
	var mine [][]string
	for _, r := range rows {
		if r[1] == id {
			mine = append(mine, r)
		}
	}
	if len(mine) != 1 || mine[0][0] != network || mine[0][2] != "eth0" || mine[0][3] != ip+"/24" || mine[0][5] != "attached" {
		t.Errorf("endpoint ls for sandbox %s: got %v, want one row: %s %s eth0 %s/24 <mac> attached; all rows:\n%v",
			id, mine, network, id, ip, rows)
	}
}

// waitGone polls endpoint ls until it no longer lists the sandbox.
func waitGone(t *testing.T, d *tl.Daemon, id string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		rows, err := tl.EndpointRows(d.CLI)
		if err != nil {
			t.Fatal(err)
		}
		listed := false
		for _, r := range rows {
			listed = listed || r[1] == id
		}
		if !listed {
			t.Logf("endpoint released %v after rmp", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("endpoint ls still lists sandbox %s %v after crictl rmp:\n%v", id, timeout, rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- crictl

// crictlBin returns the path of crictl, building it into the cache unless
// it is there already. The module has no replace directives, so go
// install ...@version, outside any module, does.
func crictlBin(t *testing.T) string {
	t.Helper()
	cache := tl.EnvOr("UNDERLAY_CRICTL_CACHE", "/var/cache/underlay-crictl")
	dir := tl.Cached(t, "crictl "+crictlVersion, cache, crictlVersion, []string{"crictl"}, func(out string, env []string) (string, error) {
		return tl.RunIn(cache, append(env, "GOBIN="+out, "GOFLAGS=-mod=mod"), "go", "install", "-trimpath", crictlPkg+"@"+crictlVersion)
	})
	return filepath.Join(dir, "crictl")
}

// crictlRunner runs crictl against one containerd, with a config file of
// its own so that the host's /etc/crictl.yaml cannot leak in.
type crictlRunner struct {
	bin  string
	args []string
}

func newCrictl(t *testing.T, bin, socket, dir string) *crictlRunner {
	t.Helper()
	endpoint := "unix://" + socket
	cfg := filepath.Join(dir, "crictl.yaml")
	yaml := fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 30\n", endpoint, endpoint)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cr := &crictlRunner{bin: bin, args: []string{"--config", cfg, "--runtime-endpoint", endpoint, "--image-endpoint", endpoint}}
	// Registered after containerd's start, so it runs before its stop:
	// no pod outlives the test, and underlayd still answers their DELs.
	t.Cleanup(func() { cr.removeAll(t) })
	return cr
}

func (cr *crictlRunner) run(args ...string) (string, error) {
	return tl.RunStdout(cmdTimeout, nil, cr.bin, append(append([]string{}, cr.args...), args...)...)
}

func (cr *crictlRunner) must(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(cr.run(args...))
}

// waitReady waits until CRI reports the runtime and the network ready
// (the latter once it loaded the conf dir's list), and the sandbox image
// imported.
func (cr *crictlRunner) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cr.ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI not ready after 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (cr *crictlRunner) ready() error {
	out, err := cr.run("info")
	if err != nil {
		return err
	}
	var info struct {
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status bool   `json:"status"`
				Reason string `json:"reason"`
				Msg    string `json:"message"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return fmt.Errorf("crictl info: %w", err)
	}
	// Others, such as ContainerdHasNoDeprecationWarnings (cgroup v1 on
	// this host), are not the kubelet's business.
	status := map[string]string{}
	for _, c := range info.Status.Conditions {
		status[c.Type] = "false: " + c.Reason + " " + c.Msg
		if c.Status {
			status[c.Type] = ""
		}
	}
	for _, want := range []string{"RuntimeReady", "NetworkReady"} {
		if st, ok := status[want]; !ok || st != "" {
			return fmt.Errorf("crictl info: %s %s", want, map[bool]string{true: st, false: "missing"}[ok])
		}
	}
	if images, err := cr.run("images", "-q", sandboxImage); err != nil || strings.TrimSpace(images) == "" {
		return fmt.Errorf("CRI does not list %s: %v", sandboxImage, err)
	}
	return nil
}

// inspect returns the pod's IP and the path of its network namespace, as
// crictl inspectp reports them.
func (cr *crictlRunner) inspect(t *testing.T, id string) (netip.Addr, string) {
	t.Helper()
	out := cr.must(t, "inspectp", "-o", "json", id)
	var p struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct{ Type, Path string } `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("crictl inspectp: %v:\n%s", err, out)
	}
	if p.Status.State != "SANDBOX_READY" {
		t.Errorf("crictl inspectp: state %s, want SANDBOX_READY", p.Status.State)
	}
	ip, err := netip.ParseAddr(p.Status.Network.IP)
	if err != nil {
		t.Fatalf("crictl inspectp: pod IP: %v:\n%s", err, out)
	}
	for _, ns := range p.Info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			return ip, ns.Path
		}
	}
	t.Fatalf("crictl inspectp: no network namespace path in the runtime spec:\n%s", out)
	return ip, ""
}

// removeAll stops and removes every pod (cleanup).
func (cr *crictlRunner) removeAll(t *testing.T) {
	out, err := cr.run("pods", "-q")
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	for _, id := range strings.Fields(out) {
		if _, err := cr.run("stopp", id); err != nil {
			t.Logf("cleanup: %v", err)
		}
		if _, err := cr.run("rmp", "-f", id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// ------------------------------------------------------------ containerd

// criContainerd is a private containerd 2.x with the CRI plugins on.
type criContainerd struct {
	dir, socket string
	bin         string
	env         []string
}

// criConfig is config.toml (version 3) of a private containerd with CRI:
// root, state, opt and the runc root under dir, gRPC on sock, no debug or
// metrics listener, NRI off (its socket would be the host's
// /var/run/nri), the CNI bin and conf dirs given, pod netns mounts under
// the state dir (not /var/run/netns), the sandbox image pinned to the
// imported one, runc with cgroupfs. restrict_oom_score_adj keeps CRI from
// asking runc for the sandbox's -998, which only CAP_SYS_RESOURCE may set:
// hosts that drop it (containers, some CI VMs) fail runp otherwise, with
// "can't get final child's PID from pipe".
func criConfig(dir, sock, binDir, confDir string) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri"]
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = %[5]q
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = [%[6]q]
  conf_dir = %[7]q
  max_conf_num = 1
[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = 'runc'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'
  disable_pause_image_pull = true
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = 'runc'
  Root = %[8]q
  SystemdCgroup = false
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, filepath.Join(dir, "opt"),
		sandboxImage, binDir, confDir, filepath.Join(dir, "runc"))
}

// startCRI starts containerd from bin with criConfig in dir/ctrd and
// waits until ctr gets an answer. Cleanup, after containerd's stop, kills
// shims left behind and processes left in the pod cgroups, unmounts what
// is left under dir, removes those cgroups and, if it was ours,
// /run/containerd (where shims put their sockets whatever the config
// says).
func startCRI(t *testing.T, dir, bin, binDir, confDir string) *criContainerd {
	t.Helper()
	cdir := filepath.Join(dir, "ctrd")
	for _, d := range []string{"root", "state", "opt", "runc"} {
		if err := os.MkdirAll(filepath.Join(cdir, d), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	c := &criContainerd{dir: cdir, socket: filepath.Join(cdir, "c.sock"), bin: bin, env: tl.PathFirst(bin)}
	cfg := filepath.Join(cdir, "config.toml")
	if err := os.WriteFile(cfg, []byte(criConfig(cdir, c.socket, binDir, confDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, statErr := os.Stat("/run/containerd")
	hadRunDir := statErr == nil
	t.Cleanup(func() {
		tl.KillStrays(t, cdir+"/")
		tl.KillCgroups(t, strings.TrimPrefix(cgroupParent, "/"))
		tl.UnmountUnder(t, dir)
		tl.RemoveCgroups(t, strings.TrimPrefix(cgroupParent, "/"))
		if !hadRunDir {
			for _, sub := range []string{"s", "runc"} {
				_ = os.Remove(filepath.Join("/run/containerd", sub)) // only if empty
			}
			_ = os.Remove("/run/containerd")
		}
	})
	p := tl.StartProc(t, filepath.Join(cdir, "containerd.log"), c.env, filepath.Join(bin, "containerd"), "--config", cfg)
	p.Poll = 50 * time.Millisecond
	p.WaitFor(t, "answer on "+c.socket, 20*time.Second, func() error {
		_, err := c.ctr("version")
		return err
	})
	return c
}

// ctr runs containerd 2.x's ctr in CRI's namespace, k8s.io.
func (c *criContainerd) ctr(args ...string) (string, error) {
	return tl.RunStdout(cmdTimeout, c.env, filepath.Join(c.bin, "ctr"), append([]string{"--address", c.socket, "--namespace", "k8s.io"}, args...)...)
}

func (c *criContainerd) mustCtr(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(c.ctr(args...))
}

// ----------------------------------------------------------------- image

// sleepImage writes to out testlab's busybox docker-archive tagged ref,
// with `sleep 3600` for command instead of sh: a sandbox must stay up
// with no stdin, as pause does.
func sleepImage(t *testing.T, out, ref string) {
	t.Helper()
	plain := out + ".sh"
	tl.BuildBusyboxImage(t, plain, ref)
	defer os.Remove(plain)
	f, err := os.Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(f), tar.NewWriter(&buf)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "config.json" {
			if data, err = withCmd(data, "sleep", "3600"); err != nil {
				t.Fatal(err)
			}
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// withCmd sets an image config's config.Cmd.
func withCmd(config []byte, cmd ...string) ([]byte, error) {
	var c map[string]any
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	inner, ok := c["config"].(map[string]any)
	if !ok {
		return nil, errors.New("image config has no config object")
	}
	inner["Cmd"] = cmd
	return json.Marshal(c)
}
