// Package dhcp holds the privileged tests of --ipam-driver dhcp: the real
// underlayd, CLI and hook against real DHCP servers from Debian (dnsmasq,
// and ISC Kea for leases short enough to renew within a test) on the
// router of a LAN in a throwaway namespace. Names start with "uld".
package dhcp

import (
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

func eth0Addr(t *testing.T, c *tl.Container) string {
	t.Helper()
	out, err := c.Exec("ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("%s: %v", c.ID, err)
	}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
			return p.String()
		}
	}
	return ""
}

func attach(t *testing.T, d *tl.Daemon, c *tl.Container, net, name string) {
	t.Helper()
	ann := map[string]string{"io.underlay.network": net}
	if name != "" {
		ann["io.underlay.name"] = name
	}
	if out, err := d.Attach(c, ann); err != nil {
		t.Fatalf("attach %s: %v: %s", c.ID, err, out)
	}
}

func detach(t *testing.T, d *tl.Daemon, c *tl.Container, net string) {
	t.Helper()
	if out, err := d.Detach(c, map[string]string{"io.underlay.network": net}); err != nil {
		t.Fatalf("detach %s: %v: %s", c.ID, err, out)
	}
}

// A container leases its address from dnsmasq through its own interface:
// the lease carries underlay's client id and the container's name as
// hostname, the default route is the lease's router, and endpoint ls shows
// the lease's DNS server and domain. A second container gets another
// address; detach releases the lease on the server, with the namespace
// alive and with it gone; a container made again under its name gets its
// old address back.
func TestPrivilegedDHCPLeaseAndRelease(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "uld1", "10.81.0.1/24")
	srv := tl.StartDnsmasq(t, lan, 100, 150, "2m")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "macvlan", "--ipam-driver", "dhcp", "-o", "parent="+lan.Uplink, "lan")

	c1 := tl.NewContainer(t, "uld1-web")
	attach(t, d, c1, "lan", "web1")
	addr1 := lan.CheckEth0(t, c1.ID, c1.Exec, "")
	if got := eth0Addr(t, c1); !strings.HasSuffix(got, "/24") {
		t.Errorf("eth0 has %s: want the lease's /24", got)
	}
	live := srv.WaitLive(func(m map[string]tl.Lease) bool { return m[addr1].Address != "" })
	l, ok := live[addr1]
	if !ok {
		t.Fatalf("no lease for %s in dnsmasq's file: %v\n%s", addr1, live, srv.Log())
	}
	if l.Hostname != "web1" || !strings.HasPrefix(l.ClientID, "ff:") {
		t.Errorf("lease %+v: want hostname web1 and an RFC 4361 client id (ff:...)", l)
	}
	rows := d.MustCLI(t, "endpoint", "ls")
	for _, w := range []string{"LEASE", "until ", lan.Router.Addr().String(), "lan.test"} {
		if !strings.Contains(rows, w) {
			t.Errorf("endpoint ls: want %q in\n%s", w, rows)
		}
	}
	if err := lan.RouterPing(addr1); err != nil {
		a, _ := c1.Exec("ip", "addr")
		r, _ := c1.Exec("ip", "route")
		n, _ := tl.Run("ip", "-n", lan.NS, "neigh")
		t.Errorf("the router cannot reach the container at its leased address: %v\n%s\n%s\nrouter's neighbours:\n%s", err, a, r, n)
	}

	c2 := tl.NewContainer(t, "uld1-db")
	attach(t, d, c2, "lan", "db1")
	addr2 := lan.CheckEth0(t, c2.ID, c2.Exec, "")
	if addr2 == addr1 {
		t.Fatalf("both containers leased %s", addr1)
	}

	detach(t, d, c1, "lan")
	if live := srv.WaitLive(func(m map[string]tl.Lease) bool { _, ok := m[addr1]; return !ok }); live[addr1].Address != "" {
		t.Errorf("lease of %s still on the server after detach (netns alive):\n%s", addr1, srv.Log())
	}

	c2.Kill() // its namespace goes with it
	detach(t, d, c2, "lan")
	if live := srv.WaitLive(func(m map[string]tl.Lease) bool { _, ok := m[addr2]; return !ok }); live[addr2].Address != "" {
		t.Errorf("lease of %s still on the server after detach (netns gone):\n%s", addr2, srv.Log())
	}

	// web1 again, in a new container: the same client, the same address.
	c3 := tl.NewContainer(t, "uld1-web-again")
	attach(t, d, c3, "lan", "web1")
	lan.CheckEth0(t, c3.ID, c3.Exec, addr1)
	detach(t, d, c3, "lan")
	if out := d.MustCLI(t, "endpoint", "ls"); strings.Contains(out, "uld1") {
		t.Errorf("endpoints left:\n%s", out)
	}
}

// Bad input and faults get one line and leave nothing: a static address
// on a DHCP network, and a LAN where no server answers (bounded by
// -o dhcp_timeout, naming the network and the parent).
func TestPrivilegedDHCPRefusals(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "uld2", "10.82.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--ipam-driver", "dhcp", "-o", "parent="+lan.Uplink, "-o", "dhcp_timeout=1s", "quiet")
	c := tl.NewContainer(t, "uld2-c")

	out, err := d.Attach(c, map[string]string{"io.underlay.network": "quiet", "io.underlay.ip": "10.82.0.9"})
	if err == nil || !strings.Contains(out, "comes from the LAN's DHCP server") && !strings.Contains(out, "come from the LAN's DHCP server") {
		t.Errorf("static address on a DHCP network: err %v, output %q", err, out)
	}
	start := time.Now()
	out, err = d.Attach(c, map[string]string{"io.underlay.network": "quiet"})
	took := time.Since(start)
	if err == nil || !strings.Contains(out, "network quiet") || !strings.Contains(out, "no DHCP lease on parent "+lan.Uplink) {
		t.Errorf("no server: err %v, output %q", err, out)
	}
	if took > 10*time.Second {
		t.Errorf("the attach with no server took %s, with dhcp_timeout=1s", took)
	}
	if links, _ := c.Exec("ip", "-o", "link"); strings.Contains(links, "eth0") {
		t.Errorf("an interface is left in the container:\n%s", links)
	}
	if rows := d.Endpoints(t); len(rows) != 0 {
		t.Errorf("endpoints left: %v", rows)
	}
	if out, err := d.CLI("network", "create", "--ipam-driver", "dhcp", "--ip-range", "10.82.0.0/28",
		"--subnet", "10.82.0.0/24", "-o", "parent="+lan.Uplink, "ranged"); err == nil || !strings.Contains(out, "the DHCP server decides") {
		t.Errorf("--ip-range with dhcp: err %v, output %q", err, out)
	}
}

// 50 containers attached at once all get distinct leases from one server.
func TestPrivilegedDHCPFiftyAtOnce(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "uld3", "10.83.0.1/24")
	srv := tl.StartDnsmasq(t, lan, 10, 200, "2m", "--no-ping")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--ipam-driver", "dhcp", "-o", "parent="+lan.Uplink, "many")
	const n = 50
	cs := make([]*tl.Container, n)
	for i := range cs {
		cs[i] = tl.NewContainer(t, "uld3-c"+string(rune('a'+i/26))+string(rune('a'+i%26)))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([]string, n)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = d.Attach(c, map[string]string{"io.underlay.network": "many", "io.underlay.name": c.ID})
		}()
	}
	wg.Wait()
	seen := map[string]string{}
	for i, c := range cs {
		if errs[i] != nil {
			t.Fatalf("attach %s: %v: %s", c.ID, errs[i], outs[i])
		}
		a := eth0Addr(t, c)
		if other, dup := seen[a]; dup {
			t.Fatalf("%s and %s both have %s", other, c.ID, a)
		}
		seen[a] = c.ID
	}
	live := srv.WaitLive(func(m map[string]tl.Lease) bool { return len(m) == n })
	if len(live) != n {
		t.Errorf("the server holds %d leases, want %d", len(live), n)
	}
	for _, c := range cs {
		detach(t, d, c, "many")
	}
	if live := srv.WaitLive(func(m map[string]tl.Lease) bool { return len(m) == 0 }); len(live) != 0 {
		t.Errorf("%d leases left on the server after every detach", len(live))
	}
}

// With Kea's 10 s leases, underlayd renews (the lease file shows new
// expiries) and keeps renewing after it is SIGKILLed and started again;
// with the server gone, the lease runs out and the address leaves the
// container.
func TestPrivilegedDHCPRenewAndExpire(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "uld4", "10.84.0.1/24")
	srv := tl.StartKea(t, lan, 100, 150, 10, 3, 6)
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--ipam-driver", "dhcp", "-o", "parent="+lan.Uplink, "short")
	c := tl.NewContainer(t, "uld4-c")
	attach(t, d, c, "short", "renewer")
	addr := lan.CheckEth0(t, c.ID, c.Exec, "")
	expiry := func() string {
		out := d.MustCLI(t, "endpoint", "ls", "--format", "json")
		var eps []struct {
			DHCP struct {
				Expires string `json:"expires"`
			} `json:"dhcp"`
		}
		if err := json.Unmarshal([]byte(out), &eps); err != nil || len(eps) != 1 || eps[0].DHCP.Expires == "" {
			t.Fatalf("no lease expiry in endpoint ls (%v):\n%s", err, out)
		}
		return eps[0].DHCP.Expires
	}
	first := expiry()
	time.Sleep(4 * time.Second) // past T1 (3 s)
	second := expiry()
	if second <= first {
		t.Fatalf("lease not renewed after T1: expiry %s then %s\n%s", first, second, d.Log())
	}
	d.Kill()
	d.Start()
	time.Sleep(4 * time.Second)
	third := expiry()
	if third <= second {
		t.Fatalf("lease not renewed after a restart: expiry %s then %s\n%s", second, third, d.Log())
	}
	lan.CheckEth0(t, c.ID, c.Exec, addr)
	if live := srv.Live(); live[addr].Address == "" {
		t.Errorf("Kea holds no lease of %s: %v", addr, live)
	}

	srv.Stop()
	var got string
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if got = eth0Addr(t, c); got == "" {
			break
		}
	}
	if got != "" {
		t.Fatalf("eth0 still has %s after its lease ran out with the server down\n%s", got, d.Log())
	}
	// The kernel drops the address at the lease's end by itself (its
	// lifetime); underlayd records the loss a moment later.
	var rows string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if rows = d.MustCLI(t, "endpoint", "ls"); strings.Contains(rows, "lost: ") {
			break
		}
	}
	if !strings.Contains(rows, "lost: ") {
		t.Errorf("endpoint ls does not show the lost lease:\n%s", rows)
	}
	if !strings.Contains(d.Log(), "DHCP lease lost") {
		t.Errorf("no log line for the lost lease:\n%s", d.Log())
	}
}

// waitOut polls a command in c until its output holds want, for up to
// 5 s (router advertisements come a moment after the interface is up).
func waitOut(t *testing.T, c *tl.Container, want string, args ...string) string {
	t.Helper()
	var out string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if out, _ = c.Exec(args...); strings.Contains(out, want) {
			break
		}
	}
	return out
}

// On a network with --ipv6, a container leases an IPv6 address from the
// LAN's DHCPv6 server (dnsmasq) beside its IPv4 one, takes its IPv6
// default route from the router's advertisements, reaches the router, and
// gives the lease back at detach.
func TestPrivilegedDHCPv6(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "uld5", "10.85.0.1/24", "2001:db8:85::1/64")
	srv := tl.StartDnsmasq(t, lan, 100, 150, "2m", "--enable-ra", "--ra-param=lan0,10,600",
		"--dhcp-range=2001:db8:85::100,2001:db8:85::1ff,64,2m")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--ipam-driver", "dhcp", "--ipv6", "-o", "parent="+lan.Uplink, "dual")
	c := tl.NewContainer(t, "uld5-c")
	attach(t, d, c, "dual", "web6")
	lan.CheckEth0(t, c.ID, c.Exec, "")
	addrs, _ := c.Exec("ip", "-6", "addr", "show", "dev", "eth0")
	var v6 string
	for _, f := range strings.Fields(addrs) {
		if p, err := netip.ParsePrefix(f); err == nil && strings.HasPrefix(f, "2001:db8:85::") && p.Bits() == 128 {
			v6 = p.Addr().String()
		}
	}
	if v6 == "" {
		t.Fatalf("no DHCPv6 address (2001:db8:85::x/128) on eth0:\n%s\n%s", addrs, srv.Log())
	}
	if got := waitOut(t, c, "default via fe80::", "ip", "-6", "route"); !strings.Contains(got, "default via fe80::") {
		t.Errorf("no IPv6 default route from the router's advertisements:\n%s", got)
	}
	if out, err := c.Exec("ping", "-6", "-c", "1", "-W", "2", "2001:db8:85::1"); err != nil {
		t.Errorf("the container cannot reach the router over IPv6: %v\n%s", err, out)
	}
	if l := srv.WaitLive(func(m map[string]tl.Lease) bool { return m[v6].Address != "" })[v6]; l.Address == "" || l.Hostname != "web6" {
		t.Errorf("dnsmasq's DHCPv6 lease of %s: %+v, want one with hostname web6\n%s", v6, l, srv.Log())
	}
	detach(t, d, c, "dual")
	if live := srv.WaitLive(func(m map[string]tl.Lease) bool { return len(m) == 0 }); len(live) != 0 {
		t.Errorf("leases left on the server after detach: %v\n%s", live, srv.Log())
	}
}

// With -o ipv6_mode=slaac the IPv6 address comes from the router's
// advertisements, and underlay reports it.
func TestPrivilegedDHCPSLAAC(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "uld6", "10.86.0.1/24", "2001:db8:86::1/64")
	tl.StartDnsmasq(t, lan, 100, 150, "2m", "--enable-ra", "--ra-param=lan0,10,600", "--dhcp-range=2001:db8:86::,ra-only,64")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--ipam-driver", "dhcp", "--ipv6", "-o", "ipv6_mode=slaac", "-o", "parent="+lan.Uplink, "ra")
	c := tl.NewContainer(t, "uld6-c")
	attach(t, d, c, "ra", "")
	addrs, _ := c.Exec("ip", "-6", "addr", "show", "dev", "eth0")
	var v6 string
	for _, f := range strings.Fields(addrs) {
		if strings.HasPrefix(f, "2001:db8:86::") || strings.HasPrefix(f, "2001:db8:86:0:") {
			v6 = f
		}
	}
	if v6 == "" {
		t.Fatalf("no SLAAC address on eth0:\n%s", addrs)
	}
	if rows := d.MustCLI(t, "endpoint", "ls"); !strings.Contains(rows, v6) {
		t.Errorf("endpoint ls does not report the SLAAC address %s:\n%s", v6, rows)
	}
	if out, err := c.Exec("ping", "-6", "-c", "1", "-W", "2", "2001:db8:86::1"); err != nil {
		t.Errorf("the container cannot reach the router over IPv6: %v\n%s", err, out)
	}
}

// ipvlan slaves all have their parent's MAC, so only the client id tells
// their leases apart: two containers on an ipvlan l2 DHCP network get two
// addresses, reach the router, and release both (VM only: the hosts'
// kernel has no ipvlan).
func TestPrivilegedDHCPIpvlan(t *testing.T) {
	tl.RequireVM(t)
	lan := tl.NewLAN(t, "uld7", "10.87.0.1/24")
	srv := tl.StartDnsmasq(t, lan, 100, 150, "2m", "--no-ping")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "-d", "ipvlan", "-o", "ipvlan_mode=l2", "--ipam-driver", "dhcp",
		"-o", "parent="+lan.Uplink, "ipv")
	c1 := tl.NewContainer(t, "uld7-a")
	c2 := tl.NewContainer(t, "uld7-b")
	attach(t, d, c1, "ipv", "ipv1")
	attach(t, d, c2, "ipv", "ipv2")
	a1 := lan.CheckEth0(t, c1.ID, c1.Exec, "")
	a2 := lan.CheckEth0(t, c2.ID, c2.Exec, "")
	if a1 == a2 {
		t.Fatalf("both ipvlan containers leased %s", a1)
	}
	if err := lan.RouterPing(a2); err != nil {
		t.Errorf("the router cannot reach %s: %v", a2, err)
	}
	live := srv.WaitLive(func(m map[string]tl.Lease) bool { return len(m) == 2 })
	if len(live) != 2 || live[a1].MAC != live[a2].MAC {
		t.Errorf("server leases %v: want two, of one MAC", live)
	}
	detach(t, d, c1, "ipv")
	detach(t, d, c2, "ipv")
	if live := srv.WaitLive(func(m map[string]tl.Lease) bool { return len(m) == 0 }); len(live) != 0 {
		t.Errorf("leases left after detach: %v", live)
	}
}
