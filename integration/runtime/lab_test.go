package runtime_test

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// lab is a LAN for macvlan containers that never touches a real interface:
//
//	host netns                          netns <prefix>-lan
//	<prefix>up  <------- veth ------->  lan0 (router, e.g. 10.77.1.1/24)
//	  ^ macvlan parent of the network under test
//
// Slaves of <prefix>up (moved into containers) reach lan0 over the veth and,
// in bridge mode, each other.
type lab struct {
	prefix string
	netns  string       // holds the router
	uplink string       // the macvlan parent, in the host netns
	router netip.Prefix // the router's address on lan0
}

// newLab builds the lab LAN (removing a crashed run's leftovers with the
// same prefix first) and registers its removal.
func newLab(t *testing.T, prefix, routerCIDR string) *lab {
	t.Helper()
	router, err := netip.ParsePrefix(routerCIDR)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{prefix: prefix, netns: prefix + "-lan", uplink: prefix + "up", router: router}
	l.remove()
	t.Cleanup(l.remove)
	peer := prefix + "dn"
	for _, args := range [][]string{
		{"netns", "add", l.netns},
		{"link", "add", l.uplink, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", l.netns},
		{"-n", l.netns, "link", "set", peer, "name", "lan0"},
		{"-n", l.netns, "addr", "add", routerCIDR, "dev", "lan0"},
		{"-n", l.netns, "link", "set", "lo", "up"},
		{"-n", l.netns, "link", "set", "lan0", "up"},
		{"link", "set", l.uplink, "up"},
	} {
		mustRun(t, nil, "ip", args...)
	}
	return l
}

// remove deletes only this lab's objects; deleting the netns takes the veth
// with it, and any macvlan slaves still on the uplink.
func (l *lab) remove() {
	_ = exec.Command("ip", "link", "del", l.uplink).Run()
	_ = exec.Command("ip", "netns", "del", l.netns).Run()
}

// routerIP is the router's address as a string.
func (l *lab) routerIP() string { return l.router.Addr().String() }

// host returns the n-th address of the lab subnet (10.77.1.0/24, 50 ->
// 10.77.1.50).
func (l *lab) host(n int) string {
	a := l.router.Masked().Addr().As4()
	a[3] += byte(n)
	return netip.AddrFrom4(a).String()
}

// routerPing pings addr from the router's namespace.
func (l *lab) routerPing(addr string) error {
	return tl.Retry(3, func() error {
		_, err := run(nil, "ip", "netns", "exec", l.netns, busybox, "ping", "-c", "1", "-W", "2", addr)
		return err
	})
}

// execFunc runs a command inside one container and returns its stdout.
type execFunc func(args ...string) (string, error)

// checkEth0 asserts, from inside a container, that eth0 has an IPv4 address
// in the lab subnet (want, when not empty) and that the default route goes
// via the router. It returns the address.
func (l *lab) checkEth0(t *testing.T, name string, exec execFunc, want string) string {
	t.Helper()
	got := tl.Eth0IPv4(t, name, exec)
	if want != "" && got.Addr().String() != want {
		t.Errorf("%s: eth0 has %s, want %s", name, got, want)
	}
	if got.Masked() != l.router.Masked() {
		t.Errorf("%s: eth0 has %s, want an address in %s", name, got, l.router.Masked())
	}
	if got.Addr() == l.router.Addr() {
		t.Errorf("%s: eth0 has the router's address %s", name, got)
	}
	routes, err := exec("ip", "-4", "route")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !hasLine(routes, "default via "+l.routerIP()+" dev eth0") {
		t.Errorf("%s: no `default via %s dev eth0` route:\n%s", name, l.routerIP(), routes)
	}
	return got.Addr().String()
}

// checkMAC asserts eth0's MAC address inside a container.
func checkMAC(t *testing.T, name string, exec execFunc, want string) {
	t.Helper()
	out, err := exec("cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got := strings.TrimSpace(out); !strings.EqualFold(got, want) {
		t.Errorf("%s: eth0 MAC %s, want %s", name, got, want)
	}
}

// checkPing asserts that a container reaches addr. The first packet may
// wait for ARP, so a few tries are allowed.
func checkPing(t *testing.T, name string, exec execFunc, addr string) {
	t.Helper()
	err := tl.Retry(3, func() error {
		_, err := exec("ping", "-c", "1", "-W", "2", addr)
		return err
	})
	if err != nil {
		t.Errorf("%s cannot ping %s: %v", name, addr, err)
	}
}

func hasLine(out, prefix string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), prefix) {
			return true
		}
	}
	return false
}
