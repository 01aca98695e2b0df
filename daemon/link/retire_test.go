package link

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// Retire leaves the interface down, under the temporary name and without
// any address (ipvlan counts a down slave's addresses as taken), so its
// address and its ethN name are free before it is deleted; DeleteSlave then
// removes it.
func TestPrivilegedRetire(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulkr", "10.57.0.1/24")
	c := tl.NewContainer(t, "ulkr-c")
	parent, err := Lookup(lan.Uplink)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := OpenPid(c.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	mac, _ := net.ParseMAC("02:00:00:00:57:02")
	err = CreateSlave(ns, Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: "eth0", MAC: mac, MTU: 1500,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.57.0.2/24"), netip.MustParsePrefix("2001:db8:57::2/64")}})
	if err != nil {
		t.Fatal(err)
	}
	found, err := Retire(ns, "ul57ffffffff", "eth0")
	if err != nil || !found {
		t.Fatalf("Retire: found %v, %v", found, err)
	}
	out, _ := c.Exec("ip", "-o", "addr", "show")
	if strings.Contains(out, "10.57.0.2") || strings.Contains(out, "2001:db8:57::2") {
		t.Errorf("retired interface still holds an address:\n%s", out)
	}
	if out, _ := c.Exec("ip", "-o", "link", "show", "eth0"); strings.Contains(out, "eth0@") {
		t.Errorf("eth0 still there after Retire:\n%s", out)
	}
	out, _ = c.Exec("ip", "-o", "link", "show", "ul57ffffffff")
	if !strings.Contains(out, "ul57ffffffff@") || strings.Contains(out, ",UP") {
		t.Errorf("want ul57ffffffff, down:\n%s", out)
	}
	if found, err := Retire(ns, "ul57eeeeeeee", "eth0"); found || err != nil {
		t.Errorf("Retire of a name that is gone: found %v, %v", found, err)
	}
	if err := DeleteSlave(ns, "ul57ffffffff"); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Exec("ip", "-o", "link", "show"); strings.Contains(out, "ul57") {
		t.Errorf("interface left after DeleteSlave:\n%s", out)
	}
}
