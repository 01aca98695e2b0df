// Package cni holds the privileged tests of underlay-cni, driven through
// libcni (the CNI project's own library, which nerdctl, CRI and Multus
// use) against the real underlayd, on a LAN and network namespaces of
// their own. Names start with "ulc".
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	tl "github.com/underlay/underlay/integration/testlab"
)

// pluginDir holds underlay-cni under the name runtimes look for, underlay.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(tl.BinDir(), "underlay-cni"), filepath.Join(dir, "underlay")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// netns makes a named namespace, removed at cleanup, and returns its path.
func netns(t *testing.T, name string) string {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", name).Run()
	tl.MustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

func cniErr(err error) *types.Error {
	var e *types.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

const nerdctlID = "default-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// ADD (with nerdctl's CNI_ARGS and the ips capability), CHECK, DEL (twice,
// and with no netns), GC and STATUS, through libcni and the conflist that
// network create --cni-conf-dir wrote; each failure is a CNI error naming
// the network.
func TestPrivilegedCNIVerbs(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulc1", "10.94.0.1/24", "2001:db8:94::1/64")
	d := tl.StartDaemon(t)
	confDir := t.TempDir()
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", "10.94.0.0/24", "--subnet", "2001:db8:94::/64",
		"--cni-conf-dir", confDir, "-o", "parent="+lan.Uplink, "pub_net")
	file := filepath.Join(confDir, "underlay-pub_net.conflist")
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the conflist network create wrote: %v", err)
	}
	// As written (1.0.0, for every runtime), and as a runtime whose
	// libcni speaks 1.1.0 (STATUS, GC) would have it.
	if _, err := libcni.ConfListFromBytes(written); err != nil {
		t.Fatalf("the conflist network create wrote: %v\n%s", err, written)
	}
	list, err := libcni.ConfListFromBytes([]byte(strings.Replace(string(written), `"cniVersion": "1.0.0"`, `"cniVersion": "1.1.0"`, 1)))
	if err != nil || list.CNIVersion != "1.1.0" {
		t.Fatalf("the conflist as 1.1.0: %v\n%s", err, written)
	}
	if printed := d.MustCLI(t, "network", "cni-config", "pub_net"); !strings.Contains(printed, `"type": "underlay"`) {
		t.Errorf("network cni-config:\n%s", printed)
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{pluginDir(t)}, t.TempDir(), nil)
	ctx := context.Background()

	path := netns(t, "ulc1-a")
	rt := &libcni.RuntimeConf{ContainerID: nerdctlID, NetNS: path, IfName: "eth0",
		Args:           [][2]string{{"IgnoreUnknown", "1"}, {"IP", "10.94.0.50"}, {"NERDCTL_CNI_DHCP_HOSTNAME", "web"}},
		CapabilityArgs: map[string]any{"ips": []string{"2001:db8:94::50"}}}
	res, err := cn.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD: %v\n%s", err, d.Log())
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	for _, w := range []string{`"address":"10.94.0.50/24","gateway":"10.94.0.1"`, `"address":"2001:db8:94::50/64"`, `"name":"eth0"`, `"dst":"0.0.0.0/0","gw":"10.94.0.1"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("ADD result %s lacks %s", b, w)
		}
	}
	addrs, _ := tl.Run("ip", "-n", "ulc1-a", "addr", "show", "dev", "eth0")
	if !strings.Contains(addrs, "10.94.0.50/24") || !strings.Contains(addrs, "2001:db8:94::50/64") {
		t.Errorf("eth0 in the netns:\n%s", addrs)
	}
	if rows := d.MustCLI(t, "endpoint", "ls"); !strings.Contains(rows, "default/0123456789abcdef") {
		t.Errorf("endpoint ls does not list the CNI attachment as default/<id>:\n%s", rows)
	}
	if err := lan.RouterPing("10.94.0.50"); err != nil {
		t.Errorf("router cannot reach the CNI container: %v", err)
	}
	if err := cn.CheckNetworkList(ctx, list, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}

	// The same address for another container: a CNI error naming it.
	rt2 := &libcni.RuntimeConf{ContainerID: "c2", NetNS: netns(t, "ulc1-b"), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"IP", "10.94.0.50"}}}
	_, err = cn.AddNetworkList(ctx, list, rt2)
	if e := cniErr(err); e == nil || e.Code != 100 || !strings.Contains(e.Msg, "network pub_net") || !strings.Contains(e.Msg, "in use") {
		t.Errorf("ADD of a taken address: %v", err)
	}
	// A container of the hook's beside the CNI ones: GC leaves it alone.
	hooked := tl.NewContainer(t, "ulc1-hooked")
	if out, err := d.Attach(hooked, map[string]string{"io.underlay.network": "pub_net"}); err != nil {
		t.Fatalf("hook attach: %v: %s", err, out)
	}
	rt2.Args = nil
	if _, err := cn.AddNetworkList(ctx, list, rt2); err != nil {
		t.Fatalf("ADD c2: %v", err)
	}
	if err := cn.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: nerdctlID, IfName: "eth0"}}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	rows := d.MustCLI(t, "endpoint", "ls")
	if strings.Contains(rows, " c2 ") || !strings.Contains(rows, "ulc1-hooked") || !strings.Contains(rows, "default/0123456789abcdef") {
		t.Errorf("after GC keeping only the first: want c2 gone, the hook's and the first kept:\n%s", rows)
	}

	if err := cn.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if err := cn.DelNetworkList(ctx, list, rt); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	empty := *rt
	empty.NetNS = ""
	if err := cn.DelNetworkList(ctx, list, &empty); err != nil {
		t.Errorf("DEL with no netns: %v", err)
	}
	if links, _ := tl.Run("ip", "-n", "ulc1-a", "-o", "link"); strings.Contains(links, "eth0") {
		t.Errorf("eth0 left in the netns after DEL:\n%s", links)
	}
	if err := cn.GetStatusNetworkList(ctx, list); err != nil {
		t.Errorf("STATUS with underlayd up: %v", err)
	}
	d.Kill()
	if err := cn.GetStatusNetworkList(ctx, list); cniErr(err) == nil || cniErr(err).Code != 50 {
		t.Errorf("STATUS with underlayd down: %v", err)
	}
	_, err = cn.AddNetworkList(ctx, list, rt)
	if e := cniErr(err); e == nil || e.Code != 11 || !strings.Contains(e.Msg, "underlayd is not running") {
		t.Errorf("ADD with underlayd down: %v", err)
	}
	d.Start()
	_, _ = d.Detach(hooked, map[string]string{"io.underlay.network": "pub_net"})
	d.MustCLI(t, "network", "rm", "pub_net")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("network rm left %s (%v)", file, err)
	}
}

// A CNI ADD on a network whose parent is an owned eth0.NN makes the VLAN
// sub-interface, and the DEL of the last attachment removes it (VM only:
// no 802.1q here).
func TestPrivilegedCNIVLAN(t *testing.T) {
	tl.RequireVM(t)
	lan := tl.NewLAN(t, "ulc2", "10.95.0.1/24")
	tl.MustRun(t, "ip", "-n", lan.NS, "link", "add", "link", "lan0", "name", "lan0.50", "type", "vlan", "id", "50")
	tl.MustRun(t, "ip", "-n", lan.NS, "addr", "add", "10.96.0.1/24", "dev", "lan0.50")
	tl.MustRun(t, "ip", "-n", lan.NS, "link", "set", "lan0.50", "up")
	d := tl.StartDaemon(t)
	parent := lan.Uplink + ".50"
	d.MustCLI(t, "network", "create", "--subnet", "10.96.0.0/24", "--gateway", "10.96.0.1", "-o", "parent="+parent, "vlan50")
	list, err := libcni.ConfListFromBytes([]byte(d.MustCLI(t, "network", "cni-config", "vlan50")))
	if err != nil {
		t.Fatal(err)
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{pluginDir(t)}, t.TempDir(), nil)
	ctx := context.Background()
	for round := range 2 {
		rt := &libcni.RuntimeConf{ContainerID: "vlan-c", NetNS: netns(t, "ulc2-a"), IfName: "eth0"}
		if _, err := cn.AddNetworkList(ctx, list, rt); err != nil {
			t.Fatalf("round %d ADD: %v\n%s", round, err, d.Log())
		}
		if !tl.LinkExists(parent) {
			t.Fatalf("round %d: ADD did not make %s", round, parent)
		}
		out, err := tl.Run("ip", "netns", "exec", "ulc2-a", "ping", "-c", "1", "-W", "2", "10.96.0.1")
		if err != nil {
			t.Errorf("round %d: the container cannot reach the VLAN's router: %v\n%s", round, err, out)
		}
		if err := cn.DelNetworkList(ctx, list, rt); err != nil {
			t.Fatalf("round %d DEL: %v", round, err)
		}
		for end := time.Now().Add(2 * time.Second); tl.LinkExists(parent) && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		}
		if tl.LinkExists(parent) {
			t.Fatalf("round %d: %s outlived the last attachment", round, parent)
		}
		_ = exec.Command("ip", "netns", "del", "ulc2-a").Run()
	}
	d.MustCLI(t, "network", "rm", "vlan50")
}

// Multus' case: a pod whose primary network (another plugin's) gave it a
// default route gets underlay networks as net1 and net2. Each ADD works,
// adds its subnet, leaves the pod's default route alone, and reports no
// default route of its own; the kernel's "file exists" was the answer.
func TestPrivilegedCNISecondaryNetworks(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulc3", "10.97.0.1/24", "10.98.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet", "10.97.0.0/24", "-o", "parent="+lan.Uplink, "ulc3a")
	d.MustCLI(t, "network", "create", "--subnet", "10.98.0.0/24", "-o", "parent="+lan.Uplink, "ulc3b")
	cn := libcni.NewCNIConfigWithCacheDir([]string{pluginDir(t)}, t.TempDir(), nil)
	ctx := context.Background()

	// The primary network: a veth with the pod's default route.
	path := netns(t, "ulc3-pod")
	tl.MustRun(t, "ip", "link", "add", "ulc3prim", "type", "veth", "peer", "name", "eth0", "netns", "ulc3-pod")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "ulc3prim").Run() })
	tl.MustRun(t, "ip", "-n", "ulc3-pod", "addr", "add", "192.168.77.2/24", "dev", "eth0")
	tl.MustRun(t, "ip", "-n", "ulc3-pod", "link", "set", "eth0", "up")
	tl.MustRun(t, "ip", "-n", "ulc3-pod", "route", "add", "default", "via", "192.168.77.1")

	var rts []*libcni.RuntimeConf
	for i, net := range []string{"ulc3a", "ulc3b"} {
		list, err := libcni.ConfListFromBytes([]byte(d.MustCLI(t, "network", "cni-config", net)))
		if err != nil {
			t.Fatal(err)
		}
		ifname := fmt.Sprintf("net%d", i+1)
		rt := &libcni.RuntimeConf{ContainerID: "ulc3-pod-id", NetNS: path, IfName: ifname}
		res, err := cn.AddNetworkList(ctx, list, rt)
		if err != nil {
			t.Fatalf("ADD %s as %s: %v", net, ifname, err)
		}
		b, _ := json.Marshal(res)
		if strings.Contains(string(b), `"dst":"0.0.0.0/0"`) || strings.Contains(string(b), `"gateway"`) {
			t.Errorf("ADD %s reports a default route the pod does not have: %s", net, b)
		}
		defer func() {
			if err := cn.DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("DEL %s: %v", net, err)
			}
		}()
		rts = append(rts, rt)
	}
	routes := tl.MustRun(t, "ip", "-n", "ulc3-pod", "-4", "route")
	for _, w := range []string{"default via 192.168.77.1 dev eth0", "10.97.0.0/24 dev net1", "10.98.0.0/24 dev net2"} {
		if !strings.Contains(routes, w) {
			t.Errorf("pod's routes lack %q:\n%s", w, routes)
		}
	}
	if strings.Count(routes, "default") != 1 {
		t.Errorf("pod has more than its own default route:\n%s", routes)
	}
	eps := d.MustCLI(t, "endpoint", "ls", "--format", "{{.IfName}} {{.Gateways}}")
	if strings.Contains(eps, "10.97.0.1") || strings.Contains(eps, "10.98.0.1") {
		t.Errorf("endpoints record gateways they did not route:\n%s", eps)
	}
}
