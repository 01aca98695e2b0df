package link

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// An interface asks for its ifindex at creation, so none is looked up
// after it. A fresh container's eth0 gets 2, as Docker's do; an index
// that is taken falls back to the kernel's choice, and the interface is
// made all the same, with its address and route.
func TestPrivilegedIndexHint(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulki", "10.58.0.1/24")
	if err := OpenHostHandle(); err != nil {
		t.Fatal(err)
	}
	defer CloseHostHandle()
	c := tl.NewContainer(t, "ulki-c0")
	parent, err := Lookup(lan.Uplink)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := OpenPid(c.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
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
