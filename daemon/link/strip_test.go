package link

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// Strip leaves the interface where it is, under its name, without any
// address (ipvlan counts a down slave's addresses as taken), so its
// addresses are free before it is deleted; DeleteSlave then removes it.
// It runs twice: with the netlink library's socket per request (the CLI)
// and with the kept host socket (underlayd).
func TestPrivilegedStrip(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulkr", "10.57.0.1/24")
	t.Run("socket per request", func(t *testing.T) { stripTest(t, lan, "ulkr-c0") })
	t.Run("kept host socket", func(t *testing.T) {
		if err := OpenHostHandle(); err != nil {
			t.Fatal(err)
		}
		defer CloseHostHandle()
		if hostHandle.Load() == nil {
			t.Fatal("no kept socket after OpenHostHandle")
		}
		stripTest(t, lan, "ulkr-c1")
	})
}

func stripTest(t *testing.T, lan *tl.LAN, id string) {
	c, parent, ns := containerOn(t, lan, id)
	mac, _ := net.ParseMAC("02:00:00:00:57:02")
	err := CreateSlave(ns, Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "eth0", MAC: mac, MTU: 1500,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.57.0.2/24"), netip.MustParsePrefix("2001:db8:57::2/64")}})
	if err != nil {
		t.Fatal(err)
	}
	if found, err := Strip(ns, "eth0"); err != nil || !found {
		t.Fatalf("Strip: found %v, %v", found, err)
	}
	out, _ := c.Exec("ip", "-o", "addr", "show", "eth0")
	if strings.Contains(out, "inet") {
		t.Errorf("stripped interface still holds an address:\n%s", out)
	}
	if out, _ := c.Exec("ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "eth0@") {
		t.Errorf("eth0 gone after Strip, want it kept until deleted:\n%s", out)
	}
	// What a crash between Strip and the deletion leaves must still be
	// recognised as the attach's own.
	if err := DeleteSlaveMatching(ns, "eth0", "02:00:00:00:57:03", nil); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Exec("ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "eth0@") {
		t.Errorf("DeleteSlaveMatching took an interface with another MAC:\n%s", out)
	}
	if err := DeleteSlaveMatching(ns, "eth0", mac.String(), []string{"10.57.0.2/24"}); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Exec("ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("stripped interface left after DeleteSlaveMatching:\n%s", out)
	}
	if found, err := Strip(ns, "eth0"); found || err != nil {
		t.Errorf("Strip of a name that is gone: found %v, %v", found, err)
	}
}
