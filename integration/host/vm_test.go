package host

import (
	"encoding/json"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// These tests need a kernel with ipvlan, 802.1q and dummy: make test-vm runs
// them in qemu on Debian's kernel.

type inspected struct {
	Parent     string `json:"parent"`
	ParentInfo struct {
		Exists bool   `json:"exists"`
		VLAN   int    `json:"vlan_id"`
		Base   string `json:"vlan_base"`
		Owned  bool   `json:"owned_by_underlay"`
		Kind   string `json:"kind"`
	} `json:"parent_info"`
}

func inspect(t *testing.T, d *tl.Daemon, name string) inspected {
	t.Helper()
	var out []inspected
	if err := json.Unmarshal([]byte(d.MustCLI(t, "network", "inspect", name)), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return out[0]
}

func wantLink(t *testing.T, name string, exists bool) {
	t.Helper()
	if got := tl.LinkExists(name); got != exists {
		t.Fatalf("link %s exists=%v, want %v", name, got, exists)
	}
}

// A NAME.VID parent is created on demand, carries tagged traffic to the
// right VLAN only, stays while endpoints remain, goes with the last one,
// comes back on the next attach, and goes with the network.
func TestVMVLANParents(t *testing.T) {
	tl.RequireVM(t)
	lan := tl.NewLAN(t, "ulv1")
	// The far side of the trunk: VLAN 10 and 20 with a router address each;
	// 10.30.0.1 sits only on VLAN 10.
	tl.MustRun(t, "ip", "-n", lan.NS, "link", "add", "link", "lan0", "name", "lan0.10", "type", "vlan", "id", "10")
	tl.MustRun(t, "ip", "-n", lan.NS, "link", "add", "link", "lan0", "name", "lan0.20", "type", "vlan", "id", "20")
	tl.MustRun(t, "ip", "-n", lan.NS, "addr", "add", "10.10.0.1/24", "dev", "lan0.10")
	tl.MustRun(t, "ip", "-n", lan.NS, "addr", "add", "10.30.0.1/24", "dev", "lan0.10")
	tl.MustRun(t, "ip", "-n", lan.NS, "addr", "add", "10.20.0.1/24", "dev", "lan0.20")
	tl.MustRun(t, "ip", "-n", lan.NS, "link", "set", "lan0.10", "up")
	tl.MustRun(t, "ip", "-n", lan.NS, "link", "set", "lan0.20", "up")

	d := tl.StartDaemon(t)
	v10, v20 := lan.Uplink+".10", lan.Uplink+".20"
	d.MustCLI(t, "network", "create", "--subnet=10.10.0.0/24", "-o", "parent="+v10, "v10")
	d.MustCLI(t, "network", "create", "--subnet=10.20.0.0/24", "--subnet=10.30.0.0/24", "--gateway=10.20.0.1", "-o", "parent="+v20, "v20")
	wantLink(t, v10, true)
	in := inspect(t, d, "v10")
	if !in.ParentInfo.Owned || in.ParentInfo.VLAN != 10 || in.ParentInfo.Base != lan.Uplink || in.ParentInfo.Kind != "vlan" {
		t.Fatalf("inspect v10 parent: %+v", in.ParentInfo)
	}
	a, b := tl.NewContainer(t, "ulv1-a"), tl.NewContainer(t, "ulv1-b")
	attach(t, d, a, "io.underlay.network", "v10")
	attach(t, d, b, "io.underlay.network", "v20", "io.underlay.ip", "10.30.0.9")
	ping(t, a, "10.10.0.1")
	if _, err := b.Exec("ping", "-c", "1", "-W", "1", "10.30.0.1"); err == nil {
		t.Fatal("VLAN 20 reached an address that lives only on VLAN 10")
	}
	c := tl.NewContainer(t, "ulv1-c")
	attach(t, d, c, "io.underlay.network", "v20")
	ping(t, c, "10.20.0.1")

	// Kept while an endpoint remains, removed with the last one.
	a2 := tl.NewContainer(t, "ulv1-a2")
	attach(t, d, a2, "io.underlay.network", "v10")
	if _, err := d.Detach(a, ann("io.underlay.network", "v10")); err != nil {
		t.Fatal(err)
	}
	wantLink(t, v10, true)
	if _, err := d.Detach(a2, ann("io.underlay.network", "v10")); err != nil {
		t.Fatal(err)
	}
	wantLink(t, v10, false)
	// Made again on the next attach (the same path a reboot takes).
	a3 := tl.NewContainer(t, "ulv1-a3")
	attach(t, d, a3, "io.underlay.network", "v10")
	wantLink(t, v10, true)
	ping(t, a3, "10.10.0.1")
	// And after a daemon restart the ownership is remembered.
	d.Stop()
	d.Start()
	if _, err := d.Detach(a3, ann("io.underlay.network", "v10")); err != nil {
		t.Fatal(err)
	}
	wantLink(t, v10, false)
	d.MustCLI(t, "network", "rm", "v10")
	for _, x := range []*tl.Container{b, c} {
		if _, err := d.Detach(x, ann("io.underlay.network", "v20")); err != nil {
			t.Fatal(err)
		}
	}
	wantLink(t, v20, false)
	d.MustCLI(t, "network", "rm", "v20")
}

// A parent that existed before is never changed or removed, whatever its
// name.
func TestVMUserParentsLeftAlone(t *testing.T) {
	tl.RequireVM(t)
	lan := tl.NewLAN(t, "ulv2", "10.40.0.1/24")
	user := lan.Uplink + ".40"
	tl.MustRun(t, "ip", "link", "add", "link", lan.Uplink, "name", user, "type", "vlan", "id", "40")
	tl.MustRun(t, "ip", "link", "add", "ulv2dum", "type", "dummy")
	t.Cleanup(func() { tl.Run("ip", "link", "del", user); tl.Run("ip", "link", "del", "ulv2dum") })
	tl.MustRun(t, "ip", "link", "set", user, "up")
	before := linkConfig(t, user)

	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet=10.40.0.0/24", "-o", "parent="+user, "u40")
	d.MustCLI(t, "network", "create", "--subnet=10.41.0.0/24", "-o", "parent=ulv2dum", "udum")
	if in := inspect(t, d, "u40"); in.ParentInfo.Owned || !in.ParentInfo.Exists {
		t.Fatalf("user's parent reported as owned: %+v", in.ParentInfo)
	}
	a, b := tl.NewContainer(t, "ulv2-a"), tl.NewContainer(t, "ulv2-b")
	attach(t, d, a, "io.underlay.network", "u40")
	attach(t, d, b, "io.underlay.network", "udum")
	d.Detach(a, ann("io.underlay.network", "u40"))
	d.Detach(b, ann("io.underlay.network", "udum"))
	d.MustCLI(t, "network", "rm", "u40", "udum")
	wantLink(t, user, true)
	wantLink(t, "ulv2dum", true)
	if after := linkConfig(t, user); after != before {
		t.Fatalf("user's parent changed:\n%s\n->\n%s", before, after)
	}
}

// linkConfig is `ip -d link show` without the operational state, which the
// kernel changes on its own as slaves come and go.
func linkConfig(t *testing.T, name string) string {
	t.Helper()
	f := strings.Fields(tl.MustRun(t, "ip", "-d", "link", "show", name))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "state" {
			f[i+1] = "-"
		}
	}
	return strings.Join(f, " ")
}

func TestVMIpvlanL2(t *testing.T) {
	tl.RequireVM(t)
	lan := tl.NewLAN(t, "ulv3", "10.50.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "ipvlan", "--subnet=10.50.0.0/24", "-o", "parent="+lan.Uplink, "ipv2")
	a, b := tl.NewContainer(t, "ulv3-a"), tl.NewContainer(t, "ulv3-b")
	attach(t, d, a, "io.underlay.network", "ipv2")
	attach(t, d, b, "io.underlay.network", "ipv2")
	mustContain(t, "route", exec(t, a, "ip", "-4", "route"), "default via 10.50.0.1 dev eth0")
	ping(t, a, "10.50.0.1")
	ping(t, a, "10.50.0.3")
	parentMAC := macOf(t, tl.MustRun(t, "ip", "link", "show", lan.Uplink))
	for _, c := range []*tl.Container{a, b} {
		if got := macOf(t, exec(t, c, "ip", "link", "show", "eth0")); got != parentMAC {
			t.Fatalf("%s MAC %s, parent %s", c.ID, got, parentMAC)
		}
	}
	mustContain(t, "mode", exec(t, a, "ip", "-d", "link", "show", "eth0"), "ipvlan", "mode l2")
	// ipvlan refuses an address that any slave of the parent holds, so a
	// detach with the namespace alive frees b's before it answers: a new
	// container gets it while b's slave may still be being deleted.
	if _, err := d.Detach(b, ann("io.underlay.network", "ipv2")); err != nil {
		t.Fatal(err)
	}
	// The router knew .3 at another MAC: the announcement out of the
	// parent, at the parent's MAC that ipvlan shares, puts it right when
	// the attach answers.
	tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "replace", "10.50.0.3", "lladdr", "02:00:5e:00:50:03", "dev", "lan0", "nud", "stale")
	b2 := tl.NewContainer(t, "ulv3-b2")
	attach(t, d, b2, "io.underlay.network", "ipv2", "io.underlay.ip", "10.50.0.3")
	if got := tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "show", "10.50.0.3"); !strings.Contains(got, "lladdr "+parentMAC) {
		t.Errorf("router's entry for 10.50.0.3 not announced at the parent's MAC %s: %s", parentMAC, got)
	}
	ping(t, a, "10.50.0.3")
	c := tl.NewContainer(t, "ulv3-c")
	out, err := d.Attach(c, ann("io.underlay.network", "ipv2", "io.underlay.mac", "02:00:00:00:00:09"))
	if err == nil || !strings.Contains(out, "share the parent's MAC") {
		t.Fatalf("custom MAC on ipvlan: %v %s", err, out)
	}
	// One ipvlan network per parent, and no macvlan beside it.
	for _, args := range [][]string{
		{"-d", "ipvlan", "--subnet=10.51.0.0/24", "-o", "parent=" + lan.Uplink, "x"},
		{"-d", "macvlan", "--subnet=10.52.0.0/24", "-o", "parent=" + lan.Uplink, "y"},
	} {
		if out, err := d.CLI(append([]string{"network", "create"}, args...)...); err == nil || !strings.Contains(out, "already carries ipvlan network ipv2") {
			t.Fatalf("second network on ipvlan parent: %v %s", err, out)
		}
	}
}

func macOf(t *testing.T, ipLink string) string {
	t.Helper()
	f := strings.Fields(ipLink[strings.Index(ipLink, "link/ether"):])
	return f[1]
}

// L3: no gateway route (a given gateway is logged as not routed),
// `default dev eth0`, and containers on different subnets of the network
// reach each other without a router. The gateway is still never handed
// out, as in Docker: the seed's first l3 container is .2.
func TestVMIpvlanL3(t *testing.T) {
	tl.RequireVM(t)
	for _, mode := range []string{"l3", "l3s"} {
		t.Run(mode, func(t *testing.T) {
			p := "ulv4" + mode[1:]
			lan := tl.NewLAN(t, p)
			d := tl.StartDaemon(t)
			d.MustCLI(t, "network", "create", "-d", "ipvlan", "--subnet=192.168.214.0/24", "--subnet=10.1.214.0/24",
				"--gateway=192.168.214.1", "-o", "ipvlan_mode="+mode, "-o", "parent="+lan.Uplink, "ipnet210")
			if !strings.Contains(d.Log(), "gateway not routed") {
				t.Fatalf("unrouted gateway not logged:\n%s", d.Log())
			}
			a, b := tl.NewContainer(t, p+"-a"), tl.NewContainer(t, p+"-b")
			attach(t, d, a, "io.underlay.network", "ipnet210", "io.underlay.ip", "192.168.214.10")
			attach(t, d, b, "io.underlay.network", "ipnet210", "io.underlay.ip", "10.1.214.10")
			mustContain(t, "a route", exec(t, a, "ip", "-4", "route"), "default dev eth0")
			mustContain(t, "b route", exec(t, b, "ip", "-4", "route"), "default dev eth0")
			ping(t, a, "10.1.214.10")
			ping(t, b, "192.168.214.10")
			// The gateway is not handed out: the first free address is .2.
			c := tl.NewContainer(t, p+"-c")
			attach(t, d, c, "io.underlay.network", "ipnet210")
			mustContain(t, "c", exec(t, c, "ip", "-4", "addr", "show", "eth0"), "192.168.214.2/24")
		})
	}
}

// No parent or --internal: a dummy parent owned by underlayd; containers
// reach only each other; no default route; the dummy goes with the last
// endpoint.
func TestVMInternalNetworks(t *testing.T) {
	tl.RequireVM(t)
	d := tl.StartDaemon(t)
	for _, c := range []struct{ name, driver, prefix string }{{"ulv5m", "macvlan", "dm-"}, {"ulv5i", "ipvlan", "di-"}} {
		t.Run(c.driver, func(t *testing.T) {
			d.MustCLI(t, "network", "create", "-d", c.driver, "--internal", "--subnet=10.60.0.0/24", c.name)
			in := inspect(t, d, c.name)
			if !strings.HasPrefix(in.Parent, c.prefix) || len(in.Parent) != 15 || !in.ParentInfo.Owned || in.ParentInfo.Kind != "dummy" {
				t.Fatalf("internal parent: %s %+v", in.Parent, in.ParentInfo)
			}
			a, b := tl.NewContainer(t, c.name+"-a"), tl.NewContainer(t, c.name+"-b")
			attach(t, d, a, "io.underlay.network", c.name)
			attach(t, d, b, "io.underlay.network", c.name)
			if r := exec(t, a, "ip", "-4", "route"); strings.Contains(r, "default") {
				t.Fatalf("internal network has a default route:\n%s", r)
			}
			ping(t, a, "10.60.0.3")
			d.Detach(a, ann("io.underlay.network", c.name))
			wantLink(t, in.Parent, true)
			d.Detach(b, ann("io.underlay.network", c.name))
			wantLink(t, in.Parent, false)
			d.MustCLI(t, "network", "rm", c.name)
		})
	}
	// With no parent at all, the same; and with no subnet either, the
	// first free 172.x.0.0/16 (the seed's isolated3).
	d.MustCLI(t, "network", "create", "--subnet=10.61.0.0/24", "ulv5n")
	d.MustCLI(t, "network", "create", "-d", "ipvlan", "ulv5s")
	if in := inspect(t, d, "ulv5n"); !strings.HasPrefix(in.Parent, "dm-") {
		t.Fatalf("no-parent network: %s", in.Parent)
	}
	mustContain(t, "default subnet", d.MustCLI(t, "network", "inspect", "ulv5s"), `"subnet": "172.18.0.0/16"`, `"internal": true`)
	a := tl.NewContainer(t, "ulv5s-a")
	attach(t, d, a, "io.underlay.network", "ulv5s")
	mustContain(t, "isolated3", exec(t, a, "ip", "-4", "addr", "show", "eth0"), "172.18.0.2/16")
	if r := exec(t, a, "ip", "-4", "route"); strings.Contains(r, "default") {
		t.Fatalf("no-parent network has a default route:\n%s", r)
	}
	d.Detach(a, ann("io.underlay.network", "ulv5s"))
	d.MustCLI(t, "network", "rm", "ulv5n", "ulv5s")
}

func TestVMBadParents(t *testing.T) {
	tl.RequireVM(t)
	lan := tl.NewLAN(t, "ulv6", "10.62.0.1/24")
	d := tl.StartDaemon(t)
	u := lan.Uplink
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--subnet=10.9.0.0/24", "-o", "parent=" + u + ".0", "x"}, "VLAN id 0 is outside 1-4094"},
		{[]string{"--subnet=10.9.0.0/24", "-o", "parent=" + u + ".4095", "x"}, "VLAN id 4095 is outside 1-4094"},
		{[]string{"--subnet=10.9.0.0/24", "-o", "parent=ulv6abcdefghi.10", "x"}, "longer than 15 characters"},
		{[]string{"--subnet=10.9.0.0/24", "-o", "parent=ulv6nobase.10", "x"}, "VLAN base interface ulv6nobase does not exist"},
		{[]string{"-d", "ipvlan", "--subnet=10.9.0.0/24", "-o", "parent=" + u, "-o", "ipvlan_flag=strict", "x"}, `unknown ipvlan_flag "strict"`},
	}
	for _, c := range cases {
		out, err := d.CLI(append([]string{"network", "create"}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%v: %v %s", c.args, err, out)
		}
	}
	if got := hostLinks(t, "ulv6"); len(got) != 1 {
		t.Fatalf("links left: %v", got)
	}
}
