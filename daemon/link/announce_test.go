package link

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// A new interface is not announced on its way up (that would cost the
// attach a copy of the broadcast per container on the parent), and its
// Announcement then updates the neighbour entries that knew its address at
// another MAC: the router's, over the wire, and another container's on
// the same parent, through macvlan's bridge.
func TestPrivilegedAnnounce(t *testing.T) {
	lan, c1, parent, ns1 := slaveLab(t, "ulka", "10.64.0.1/24")
	const addr, old = "10.64.0.10", "02:00:5e:00:64:01"
	sibling := Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "eth0", MTU: 1500,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0x64, 2}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.64.0.2/24")}, DisableIPv6: true}
	if err := CreateSlave(ns1, sibling); err != nil {
		t.Fatal(err)
	}
	tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "replace", addr, "lladdr", old, "dev", "lan0", "nud", "stale")
	if _, err := c1.Exec("ip", "neigh", "replace", addr, "lladdr", old, "dev", "eth0", "nud", "stale"); err != nil {
		t.Fatal(err)
	}
	routerSees := func() string { return tl.MustRun(t, "ip", "-n", lan.NS, "neigh", "show", addr) }
	siblingSees := func() string { out, _ := c1.Exec("ip", "neigh", "show", addr); return out }

	c2, _, ns2 := containerOn(t, lan, "ulka-c2")
	var ann *Announcement
	mac := net.HardwareAddr{2, 0, 0, 0, 0x64, 10}
	s := Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "eth0", MTU: 1500, MAC: mac,
		Addrs: []netip.Prefix{netip.MustParsePrefix(addr + "/24")}, DisableIPv6: true, Gateways: []netip.Addr{netip.MustParseAddr("10.64.0.1")},
		Announce: func(a *Announcement) { ann = a }}
	if err := CreateSlave(ns2, s); err != nil {
		t.Fatal(err)
	}
	if ann == nil {
		t.Fatal("CreateSlave handed over no announcement for an interface with an IPv4 address")
	}
	if out, _ := c2.Exec("ip", "-br", "link", "show", "eth0"); !strings.Contains(out, "UP") {
		t.Fatalf("eth0 is not up before its announcement:\n%s", out)
	}
	time.Sleep(100 * time.Millisecond)
	for who, sees := range map[string]func() string{"router": routerSees, "sibling": siblingSees} {
		if got := sees(); !strings.Contains(got, "lladdr "+old) {
			t.Errorf("%s's entry changed before the announcement was sent (did the kernel announce on the way up?): %s", who, got)
		}
	}
	if err := ann.Send(); err != nil {
		t.Fatal(err)
	}
	for who, sees := range map[string]func() string{"router": routerSees, "sibling": siblingSees} {
		got := sees()
		for end := time.Now().Add(3 * time.Second); !strings.Contains(got, "lladdr "+mac.String()) && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			got = sees()
		}
		if !strings.Contains(got, "lladdr "+mac.String()) {
			t.Errorf("%s's neighbour entry for %s not updated from %s to %s: %s", who, addr, old, mac, got)
		}
	}
	if ann.fd != -1 {
		t.Errorf("the announcement's socket is still open after Send: fd %d", ann.fd)
	}

	// Out of the parent, from underlayd's own namespace: the router
	// learns, the containers on the parent do not (what a parent sends
	// never reaches its own slaves), which is why the second announcement
	// comes from inside.
	mac2 := net.HardwareAddr{2, 0, 0, 0, 0x64, 20}
	for _, keep := range []bool{true, false} { // the kept socket, and one made for the call
		if !keep {
			CloseHostHandle()
		}
		if err := AnnounceOnParent(parent.Index, mac2, []netip.Addr{netip.MustParseAddr(addr)}); err != nil {
			t.Fatal(err)
		}
		got := routerSees()
		for end := time.Now().Add(3 * time.Second); !strings.Contains(got, "lladdr "+mac2.String()) && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			got = routerSees()
		}
		if !strings.Contains(got, "lladdr "+mac2.String()) {
			t.Errorf("kept socket %v: router's entry for %s not updated to %s by the parent's announcement: %s", keep, addr, mac2, got)
		}
		if got := siblingSees(); !strings.Contains(got, "lladdr "+mac.String()) {
			t.Errorf("kept socket %v: the parent's announcement reached a container on it: %s", keep, got)
		}
		mac2 = net.HardwareAddr{2, 0, 0, 0, 0x64, 21}
	}
	if err := AnnounceOnParent(parent.Index, net.HardwareAddr{1, 2, 3}, nil); err == nil || !strings.Contains(err.Error(), "not an Ethernet address") {
		t.Errorf("a 3-byte MAC: want an error saying so, got %v", err)
	}

	// Nothing to announce: an interface without IPv4 gets no socket.
	s = Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "eth1", MTU: 1500, MAC: net.HardwareAddr{2, 0, 0, 0, 0x64, 11},
		Announce: func(*Announcement) { t.Errorf("announcement handed over for an interface without IPv4") }}
	if err := CreateSlave(ns2, s); err != nil {
		t.Fatal(err)
	}
}
