package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// An interface asks for its ifindex at creation, so none is looked up
// after it. A fresh container's eth0 gets 2, as Docker's do; an index
// that is taken falls back to the kernel's choice, and the interface is
// made all the same, with its address and route.
func TestPrivilegedIndexHint(t *testing.T) {
	_, c, parent, ns := slaveLab(t, "ulki", "10.58.0.1/24")
	for i, s := range []Slave{
		{Name: "eth0", Index: 2, MAC: net.HardwareAddr{2, 0, 0, 0, 0x58, 2}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.58.0.2/24")}},
		{Name: "eth1", Index: 2, MAC: net.HardwareAddr{2, 0, 0, 0, 0x58, 3}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.58.0.3/24")},
			Gateways: []netip.Addr{netip.MustParseAddr("10.58.0.1")}},
	} {
		s.Kind, s.Mode, s.ParentIndex, s.MTU = "macvlan", "bridge", parent.Index, 1500
		if err := CreateSlave(ns, s); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		out, _ := c.Exec("ip", "-o", "addr", "show", "dev", s.Name)
		if !strings.Contains(out, s.Addrs[0].String()) {
			t.Errorf("%s lacks %s:\n%s", s.Name, s.Addrs[0], out)
		}
		out, _ = c.Exec("ip", "-o", "link", "show", "dev", s.Name)
		// The line of the link, not a complaint of ip's about a named
		// namespace another test is making or removing meanwhile
		// ("Error: Peer netns reference is invalid."), which comes first.
		if at := strings.Index(out, s.Name+"@"); at >= 0 {
			out = out[strings.LastIndexByte(out[:at], '\n')+1:]
		}
		if i == 0 && !strings.HasPrefix(out, "2: eth0@") {
			t.Errorf("eth0 of a fresh container: want ifindex 2, got\n%s", out)
		}
		if i == 1 && (strings.HasPrefix(out, "2: ") || !strings.Contains(out, "state UP") && !strings.Contains(out, ",UP")) {
			t.Errorf("eth1 asked for a taken index: want another one, up, got\n%s", out)
		}
	}
	if out, _ := c.Exec("ip", "route", "show", "default"); !strings.Contains(out, "via 10.58.0.1 dev eth1") {
		t.Errorf("no default route through eth1:\n%s", out)
	}
	if _, err := c.Exec("ping", "-c1", "-W2", "10.58.0.1"); err != nil {
		t.Errorf("eth1 does not reach the router: %v", err)
	}
}

// A macvlan is made under its final name, even where the kernel refuses
// that name because underlayd's own namespace has an interface of the same
// name (kernels that look it up there): it then goes through a temporary
// name and a rename. Either way the container gets it, with its address,
// and the host's interface of that name is left alone.
func TestPrivilegedFinalName(t *testing.T) {
	lan, c, parent, ns := slaveLab(t, "ulkf", "10.61.0.1/24")
	// The host's own interface named like the container's.
	hostMAC := net.HardwareAddr{2, 0, 0, 0, 0x61, 0xfe}
	if out, err := exec.Command("ip", "link", "add", "ulkfx", "address", hostMAC.String(), "link", lan.Uplink, "type", "macvlan", "mode", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("host interface: %v: %s", err, out)
	}
	defer exec.Command("ip", "link", "del", "ulkfx").Run()
	for _, name := range []string{"ulkfy", "ulkfx"} {
		var steps []string
		s := Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: name, MTU: 1500, Index: 2,
			MAC: net.HardwareAddr{2, 0, 0, 0, 0x61, 2}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.61.0.2/24")},
			Steps: func(step string, _ time.Duration) { steps = append(steps, step) }}
		if name == "ulkfx" {
			s.MAC[5], s.Addrs[0] = 3, netip.MustParsePrefix("10.61.0.3/24")
		}
		if err := CreateSlave(ns, s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: steps %v", name, steps)
		out, _ := c.Exec("ip", "-o", "addr", "show", "dev", name)
		if !strings.Contains(out, s.Addrs[0].String()) {
			t.Errorf("%s lacks %s:\n%s", name, s.Addrs[0], out)
		}
		if out, _ := c.Exec("ip", "-o", "link", "show", "dev", name); !strings.Contains(out, s.MAC.String()) || !strings.Contains(out, ",UP") {
			t.Errorf("%s: want MAC %s, up:\n%s", name, s.MAC, out)
		}
	}
	// A name the container has already: refused, and nothing is left.
	before, _ := c.Exec("ip", "-o", "link")
	err := CreateSlave(ns, Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "ulkfy", MTU: 1500, Index: 2,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0x61, 4}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.61.0.4/24")}})
	if err == nil || !strings.Contains(err.Error(), "the container already has an interface ulkfy") {
		t.Errorf("a second ulkfy: want the container's name refused, got %v", err)
	}
	if after, _ := c.Exec("ip", "-o", "link"); strings.Count(after, "\n") != strings.Count(before, "\n") || strings.Count(after, "@") != strings.Count(before, "@") {
		t.Errorf("a refused create left something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	out, err := exec.Command("ip", "-o", "link", "show", "dev", "ulkfx").CombinedOutput()
	if err != nil || !strings.Contains(string(out), hostMAC.String()) {
		t.Errorf("the host's ulkfx changed: %v\n%s", err, out)
	}
	// What was refused only because the host has it is not asked for
	// again: a fresh container's ulkfx is made with no refused try.
	c1, _, ns1 := containerOn(t, lan, "ulkf-c1")
	var steps []string
	err = CreateSlave(ns1, Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "ulkfx", MTU: 1500, Index: 2,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0x61, 5}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.61.0.5/24")},
		Steps: func(step string, _ time.Duration) { steps = append(steps, step) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ulkfx in a second container: steps %v", steps)
	if slices.Contains(steps, "create refused") {
		t.Errorf("a second ulkfx was refused again: steps %v", steps)
	}
	if out, _ := c1.Exec("ip", "-o", "addr", "show", "dev", "ulkfx"); !strings.Contains(out, "10.61.0.5/24") {
		t.Errorf("second ulkfx lacks its address:\n%s", out)
	}
}

// The settings an interface gets before it comes up, read back inside the
// container: disable_ipv6 on an IPv4-only one (made with IPv6 off through
// the namespace's default, which is put back), ndisc_notify on one with
// IPv6, and arp_notify on neither (underlayd announces IPv4 itself, off
// the attach's path: TestPrivilegedAnnounce).
func TestPrivilegedDevConf(t *testing.T) {
	_, c, parent, ns := slaveLab(t, "ulkd", "10.62.0.1/24")
	want := map[string]map[string]string{
		"eth0": {"ipv4/conf/eth0/arp_notify": "0", "ipv6/conf/eth0/disable_ipv6": "1"},
		"eth1": {"ipv4/conf/eth1/arp_notify": "0", "ipv6/conf/eth1/disable_ipv6": "0", "ipv6/conf/eth1/ndisc_notify": "1"},
	}
	for i, name := range []string{"eth0", "eth1"} {
		s := Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: name, MTU: 1500, DisableIPv6: name == "eth0",
			MAC: net.HardwareAddr{2, 0, 0, 0, 0x62, byte(2 + i)}, Addrs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.62.0.%d/24", 2+i))}}
		if err := CreateSlave(ns, s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for key, v := range want[name] {
			if out, err := c.Exec("cat", "/proc/sys/net/"+key); err != nil || strings.TrimSpace(out) != v {
				t.Errorf("%s: want %s, got %q (%v)", key, v, out, err)
			}
		}
	}
	const dflt = "/proc/sys/net/ipv6/conf/default/disable_ipv6"
	if out, _ := c.Exec("cat", dflt); strings.TrimSpace(out) != "0" {
		t.Errorf("the namespace's default disable_ipv6 after the creates: want 0 back, got %q", out)
	}
	// During the create the default is 1; a failed create puts it back
	// too, and its error is the create's.
	errCreate := errors.New("ulkd create failed")
	var during string
	err := ns.Do(func() error {
		return withIPv6Off(true, "ulkdx", func() error {
			during, _ = readSysctl(dflt)
			return errCreate
		})
	})
	if !errors.Is(err, errCreate) || during != "1" {
		t.Errorf("a failed create with IPv6 off: default %q during it (want 1), error %v", during, err)
	}
	if out, _ := c.Exec("cat", dflt); strings.TrimSpace(out) != "0" {
		t.Errorf("the default after a failed create: want 0 back, got %q", out)
	}
	// A namespace whose default is already 1 keeps it.
	if _, err := c.Exec("sh", "-c", "echo 1 > "+dflt); err != nil {
		t.Fatal(err)
	}
	s := Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "eth2", MTU: 1500, DisableIPv6: true,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0x62, 4}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.62.0.4/24")}}
	if err := CreateSlave(ns, s); err != nil {
		t.Fatal(err)
	}
	for key, v := range map[string]string{"ipv6/conf/eth2/disable_ipv6": "1", "ipv6/conf/default/disable_ipv6": "1"} {
		if out, err := c.Exec("cat", "/proc/sys/net/"+key); err != nil || strings.TrimSpace(out) != v {
			t.Errorf("%s: want %s, got %q (%v)", key, v, out, err)
		}
	}
	// A setting for an interface the namespace lacks names both.
	err = ns.Do(func() error { return writeDevConf("ulkdnone", []devConf{{"ipv4", "arp_notify", "1"}}) })
	if err == nil || !strings.Contains(err.Error(), "ipv4.arp_notify=1 on ulkdnone") {
		t.Errorf("arp_notify on a missing interface: want an error naming both, got %v", err)
	}
}

// LookupParent's ioctls agree with the netlink lookup on what an attach
// uses, with the kept socket and without; a missing link is ErrNotFound.
func TestPrivilegedLookupParent(t *testing.T) {
	lan, _, _, _ := slaveLab(t, "ulkp", "10.63.0.1/24")
	if out, err := exec.Command("ip", "link", "set", "dev", lan.Uplink, "mtu", "1400").CombinedOutput(); err != nil {
		t.Fatalf("mtu: %v: %s", err, out)
	}
	want, err := Lookup(lan.Uplink)
	if err != nil {
		t.Fatal(err)
	}
	for _, kept := range []bool{true, false} {
		if !kept {
			CloseHostHandle()
		}
		got, err := LookupParent(lan.Uplink)
		if err != nil {
			t.Fatalf("kept socket %v: %v", kept, err)
		}
		if got.Index != want.Index || got.MTU != 1400 || got.MAC.String() != want.MAC.String() || got.Up != want.Up || got.Name != lan.Uplink {
			t.Errorf("kept socket %v: LookupParent %+v, netlink %+v", kept, got, want)
		}
		if _, err := LookupParent("ulkpnone"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ulkpnone") {
			t.Errorf("kept socket %v: a missing link: want ErrNotFound naming it, got %v", kept, err)
		}
	}
	// A link that is not Ethernet has no MAC to give.
	if lo, err := LookupParent("lo"); err != nil || lo.Index != 1 || lo.MAC != nil || !lo.Up {
		t.Errorf("lo: want index 1, up, no MAC, got %+v (%v)", lo, err)
	}
	if _, err := LookupParent("ulkp/x"); err == nil || !strings.Contains(err.Error(), `invalid interface name "ulkp/x"`) {
		t.Errorf("a bad name: got %v", err)
	}
}

// slaveLab is a LAN named prefix with a router at cidr, underlayd's kept
// host socket, and a container (prefix-c0) on it.
func slaveLab(t *testing.T, prefix, cidr string) (*tl.LAN, *tl.Container, Info, *Netns) {
	t.Helper()
	tl.Require(t)
	lan := tl.NewLAN(t, prefix, cidr)
	if err := OpenHostHandle(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(CloseHostHandle)
	c, parent, ns := containerOn(t, lan, prefix+"-c0")
	return lan, c, parent, ns
}

// containerOn is a container named id, the LAN's uplink (the parent) and
// the container's namespace, open until the test ends.
func containerOn(t *testing.T, lan *tl.LAN, id string) (*tl.Container, Info, *Netns) {
	t.Helper()
	c := tl.NewContainer(t, id)
	parent, err := Lookup(lan.Uplink)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := OpenPid(c.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return c, parent, ns
}
