package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// TestRuntimePodmanCNI runs podman with its CNI backend on underlay-cni:
// network create --cni-conf-dir puts the network where podman reads CNI
// configs, podman network ls lists it, podman run --network NAME [--ip X]
// attaches through the plugin (no hook, no annotation), and podman rm
// releases the addresses.
func TestRuntimePodmanCNI(t *testing.T) {
	bin := requirePrivileged(t, "podman", "conmon")
	const prefix, network = "ulrtq", "ulrt-pcni"
	dir := t.TempDir()
	lan := tl.NewLAN(t, prefix, "10.77.3.1/24")
	static := lan.Host(50)
	uld := newUnderlayd(t, filepath.Join(dir, "underlayd"))
	uld.Start()

	pm := newPodman(t, "ulrtp")
	plugins := filepath.Join(pm.dir, "cni-bin")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(bin, "underlay-cni"), filepath.Join(plugins, "underlay")); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(pm.dir, "containers.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	write(t, conf, string(b)+"network_backend = \"cni\"\ncni_plugin_dirs = [\""+plugins+"\", \"/usr/lib/cni\"]\n")
	image := filepath.Join(dir, "busybox.tar")
	tl.BuildBusyboxImage(t, image, imageRef)
	pm.mustPodman(t, "load", "-q", "-i", image)

	uld.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", lan.Router.Masked().String(),
		"--gateway", lan.Router.Addr().String(), "--cni-conf-dir", filepath.Join(pm.dir, "net"), "-o", "parent="+lan.Uplink, network)
	t.Cleanup(func() { _, _ = uld.CLI("network", "rm", network) })
	if out := pm.mustPodman(t, "network", "ls"); !strings.Contains(out, network) {
		t.Fatalf("podman network ls does not list %s:\n%s", network, out)
	}
	runOn := func(name string, args ...string) {
		t.Helper()
		full := append(append([]string{"run", "-d", "--name", name, "--network", network}, args...), imageRef, "sleep", "3600")
		if out, err := pm.podman(full...); err != nil {
			t.Fatalf("podman run --network %s %v: %v: %s", network, args, err, out)
		}
	}
	const a, c = "ulrtq-a", "ulrtq-b"
	runOn(a, "--ip", static)
	runOn(c)
	lan.CheckEth0(t, a, pm.exec(a), static)
	ipC := lan.CheckEth0(t, c, pm.exec(c), "")
	tl.CheckPing(t, c, pm.exec(c), static)
	if err := lan.RouterPing(ipC); err != nil {
		t.Errorf("router cannot ping %s: %v", c, err)
	}
	id := strings.TrimSpace(pm.mustPodman(t, "inspect", "-f", "{{.Id}}", a))
	checkPodmanEndpoint(t, uld, network, a, id, static)
	pm.mustPodman(t, "rm", "-f", "-t", "0", a, c)
	uld.waitNoEndpoints(t, static, ipC)
}
