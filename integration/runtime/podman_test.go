package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	tl "github.com/underlay/underlay/integration/testlab"
)

// podman is a private podman: its own containers.conf and storage.conf,
// root, runroot, tmpdir, network config dir and events log under the test's
// directory, with what this kind of host needs (runc, cgroupfs, file events,
// ulimits no higher than the host's; see DESIGN.md).
type podman struct {
	dir      string
	hooksDir string
	env      []string
}

// newPodman sets podman up in a directory of its own, named prefix...:
// podman refuses a runroot longer than 50 characters, which t.TempDir's
// paths can exceed.
func newPodman(t *testing.T, prefix string) *podman {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{dir: dir, hooksDir: filepath.Join(dir, "hooks.d")}
	for _, d := range []string{"root", "runroot", "tmp", "net", "hooks.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	containersConf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
[network]
network_config_dir = %q
`, filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"), filepath.Join(dir, "net"))
	storageConf := fmt.Sprintf(`[storage]
driver = "overlay"
graphroot = %q
runroot = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "runroot"))
	write(t, filepath.Join(dir, "containers.conf"), containersConf)
	write(t, filepath.Join(dir, "storage.conf"), storageConf)
	p.env = testEnv(
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
	)
	t.Cleanup(func() {
		// podman runs poststop hooks when it removes a container.
		if out, err := p.podman("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			if _, err := p.podman(append([]string{"rm", "-f", "-t", "0"}, strings.Fields(out)...)...); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		_, _ = p.podman("rmi", "-a", "-f")
		tl.KillStrays(t, dir)
		tl.UnmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

// writeHooks writes hooks.d JSON (schema 1.0.0, as in contrib/) running
// hook at createRuntime and poststop for containers that carry the
// io.underlay.network annotation, in the hook's environment (api.HookEnv)
// with UNDERLAY_SOCKET=sock.
func (p *podman) writeHooks(t *testing.T, hook, sock string) {
	t.Helper()
	for _, stage := range []string{"createRuntime", "poststop"} {
		b, err := json.MarshalIndent(map[string]any{
			"version": "1.0.0",
			"hook": map[string]any{
				"path":    hook,
				"args":    []string{"underlay-hook", stage},
				"env":     append(slices.Clone(api.HookEnv), "UNDERLAY_SOCKET="+sock),
				"timeout": 30,
			},
			"when":   map[string]any{"annotations": map[string]string{`^io\.underlay\.network$`: ".*"}},
			"stages": []string{stage},
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(p.hooksDir, "underlay-"+stage+".json"), string(b))
	}
}

// podman runs podman with the private configuration.
func (p *podman) podman(args ...string) (string, error) {
	global := []string{
		"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "runroot"),
		"--tmpdir", filepath.Join(p.dir, "tmp"), "--hooks-dir", p.hooksDir,
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
	}
	return run(p.env, "podman", append(global, args...)...)
}

func (p *podman) mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(p.podman(args...))
}

// runContainer is `podman run -d --network none` with annotations, running
// `sleep 3600`.
func (p *podman) runContainer(name, image string, annotations ...string) error {
	args := []string{"run", "-d", "--network", "none", "--name", name}
	for _, a := range annotations {
		args = append(args, "--annotation", a)
	}
	_, err := p.podman(append(args, image, "sleep", "3600")...)
	return err
}

func (p *podman) exec(name string) tl.ExecFunc {
	return func(args ...string) (string, error) {
		return p.podman(append([]string{"exec", name}, args...)...)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRuntimePodman runs two containers through podman with the hooks.d
// hook on a macvlan network (one dynamic, one static address), checks what
// they see and that they reach each other and the router, then removes them
// with podman rm (podman runs the poststop hook) and checks that the
// addresses are released and the static one can be taken again.
func TestRuntimePodman(t *testing.T) {
	bin := requirePrivileged(t, "podman", "conmon")
	const (
		prefix  = "ulrtp"
		network = "ulrt-podman"
	)
	dir := t.TempDir()
	lan := tl.NewLAN(t, prefix, "10.77.2.1/24")
	static := lan.Host(50)

	uld := newUnderlayd(t, filepath.Join(dir, "underlayd"))
	uld.Start()

	pm := newPodman(t, "ulrtp")
	pm.writeHooks(t, filepath.Join(bin, "underlay-hook"), uld.Socket)
	image := filepath.Join(dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	pm.mustPodman(t, "load", "-q", "-i", image)

	uld.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", lan.Router.Masked().String(),
		"--gateway", lan.Router.Addr().String(), "-o", "parent="+lan.Uplink, network)
	networkRemoved := false
	t.Cleanup(func() {
		if !networkRemoved {
			if _, err := uld.CLI("network", "rm", network); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})

	const a, b = "ulrt-a", "ulrt-b"
	if err := pm.runContainer(a, imageRef, "io.underlay.network="+network); err != nil {
		t.Fatalf("run %s: %v", a, err)
	}
	if err := pm.runContainer(b, imageRef, "io.underlay.network="+network, "io.underlay.ip="+static); err != nil {
		t.Fatalf("run %s: %v", b, err)
	}

	ipA := lan.CheckEth0(t, a, pm.exec(a), "")
	if ipA == static {
		t.Errorf("%s got the static address %s reserved for %s", a, ipA, b)
	}
	ipB := lan.CheckEth0(t, b, pm.exec(b), static)

	tl.CheckPing(t, a, pm.exec(a), ipB)
	tl.CheckPing(t, b, pm.exec(b), ipA)
	tl.CheckPing(t, a, pm.exec(a), lan.Router.Addr().String())
	tl.CheckPing(t, b, pm.exec(b), lan.Router.Addr().String())
	if err := lan.RouterPing(ipB); err != nil {
		t.Errorf("router cannot ping %s: %v", b, err)
	}

	// podman's container id, not its name, is what the OCI state carries.
	idA := strings.TrimSpace(pm.mustPodman(t, "inspect", "-f", "{{.Id}}", a))
	idB := strings.TrimSpace(pm.mustPodman(t, "inspect", "-f", "{{.Id}}", b))
	checkPodmanEndpoint(t, uld, network, a, idA, ipA)
	checkPodmanEndpoint(t, uld, network, b, idB, ipB)

	pm.mustPodman(t, "rm", "-f", "-t", "0", a, b)
	uld.waitNoEndpoints(t, ipA, ipB, a, b, shortID(idA), shortID(idB))

	// The static address is free again at once.
	const c = "ulrt-c"
	if err := pm.runContainer(c, imageRef, "io.underlay.network="+network, "io.underlay.ip="+static); err != nil {
		t.Fatalf("run %s with the released %s: %v", c, static, err)
	}
	lan.CheckEth0(t, c, pm.exec(c), static)
	pm.mustPodman(t, "rm", "-f", "-t", "0", c)
	uld.waitNoEndpoints(t, static, c)

	uld.MustCLI(t, "network", "rm", network)
	networkRemoved = true
}

// checkPodmanEndpoint accepts the container's name, full id or 12-character
// short id in endpoint ls, as long as the line has the network and address.
func checkPodmanEndpoint(t *testing.T, uld *underlayd, network, name, id, ip string) {
	t.Helper()
	for _, line := range uld.endpoints(t, name, id, shortID(id)) {
		if tl.ContainsWord(line, network) && strings.Contains(line, ip) {
			return
		}
	}
	t.Errorf("endpoint ls has no line with %s, %s (%s) and %s:\n%s", network, name, shortID(id), ip,
		uld.MustCLI(t, "endpoint", "ls"))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
