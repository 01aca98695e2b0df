package testlab

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// LAN is a veth pair: Uplink in the host namespace is the parent for
// networks under test; its peer lan0 sits in namespace NS with the router's
// address.
//
//	host netns                        netns NS
//	Uplink  <------- veth ------->  lan0 (the router)
type LAN struct {
	Uplink string
	NS     string
	// Router is the first of the router's addresses, with its prefix.
	Router netip.Prefix
}

// NewLAN makes a LAN whose router holds each of routerCIDRs, removing a
// crashed run's leftovers with the same prefix first.
func NewLAN(t testing.TB, prefix string, routerCIDRs ...string) *LAN {
	t.Helper()
	l := &LAN{Uplink: prefix + "up", NS: prefix + "-lan"}
	if len(routerCIDRs) > 0 {
		p, err := netip.ParsePrefix(routerCIDRs[0])
		if err != nil {
			t.Fatalf("router address: %v", err)
		}
		l.Router = p
	}
	l.remove()
	t.Cleanup(l.remove)
	MustRun(t, "ip", "netns", "add", l.NS)
	MustRun(t, "ip", "link", "add", l.Uplink, "type", "veth", "peer", "name", prefix+"dn")
	MustRun(t, "ip", "link", "set", prefix+"dn", "netns", l.NS)
	MustRun(t, "ip", "-n", l.NS, "link", "set", prefix+"dn", "name", "lan0")
	for _, c := range routerCIDRs {
		args := []string{"-n", l.NS, "addr", "add", c, "dev", "lan0"}
		if strings.Contains(c, ":") {
			args = append(args, "nodad")
		}
		MustRun(t, "ip", args...)
	}
	MustRun(t, "ip", "-n", l.NS, "link", "set", "lo", "up")
	MustRun(t, "ip", "-n", l.NS, "link", "set", "lan0", "up")
	MustRun(t, "ip", "link", "set", l.Uplink, "up")
	return l
}

// remove deletes only this LAN's objects; deleting the netns takes the
// veth with it, and any slaves still on the uplink.
func (l *LAN) remove() {
	_ = exec.Command("ip", "link", "del", l.Uplink).Run()
	_ = exec.Command("ip", "netns", "del", l.NS).Run()
}

// Ping pings addr from the router's namespace.
func (l *LAN) Ping(addr string) error {
	_, err := Run("ip", "netns", "exec", l.NS, "ping", "-c", "1", "-W", "2", addr)
	return err
}

// ExecFunc runs a command inside one container and returns its output.
type ExecFunc func(args ...string) (string, error)

// CheckEth0 asserts, through exec inside container name, that eth0 has an
// IPv4 address of the router's subnet other than the router's (want, if not
// empty) and that the default route goes via the router. It returns the
// address.
func (l *LAN) CheckEth0(t testing.TB, name string, exec ExecFunc, want string) string {
	t.Helper()
	got := eth0IPv4(t, name, exec)
	if want != "" && got.Addr().String() != want {
		t.Errorf("%s: eth0 has %s, want %s", name, got, want)
	}
	if got.Masked() != l.Router.Masked() || got.Addr() == l.Router.Addr() {
		t.Errorf("%s: eth0 has %s, want an address of %s other than the router's", name, got, l.Router.Masked())
	}
	routes, err := exec("ip", "-4", "route")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	route := "default via " + l.Router.Addr().String() + " dev eth0"
	for _, line := range strings.Split(routes, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), route) {
			return got.Addr().String()
		}
	}
	t.Errorf("%s: no `%s` route:\n%s", name, route, routes)
	return got.Addr().String()
}

// eth0IPv4 runs `ip -4 -o addr show dev eth0` through exec and returns
// eth0's first IPv4 address with its prefix length; it fails t if there is
// none.
func eth0IPv4(t testing.TB, name string, exec ExecFunc) netip.Prefix {
	t.Helper()
	out, err := exec("ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
			return p
		}
	}
	t.Fatalf("%s: eth0 has no IPv4 address:\n%s", name, out)
	return netip.Prefix{}
}

// Host is the n-th address of the router's IPv4 subnet (10.77.1.0/24, 50
// -> 10.77.1.50).
func (l *LAN) Host(n int) string {
	a := l.Router.Masked().Addr().As4()
	a[3] += byte(n)
	return netip.AddrFrom4(a).String()
}

// RouterPing pings addr from the router's namespace with busybox's ping (a
// few tries: the first packet may wait for ARP).
func (l *LAN) RouterPing(addr string) error {
	return Retry(3, func() error {
		_, err := RunStdout(60*time.Second, nil, "ip", "netns", "exec", l.NS, Busybox, "ping", "-c", "1", "-W", "2", addr)
		return err
	})
}

// CheckPing asserts that container name reaches addr through exec (a few
// tries: the first packet may wait for ARP).
func CheckPing(t testing.TB, name string, exec ExecFunc, addr string) {
	t.Helper()
	err := Retry(3, func() error {
		_, err := exec("ping", "-c", "1", "-W", "2", addr)
		return err
	})
	if err != nil {
		t.Errorf("%s cannot ping %s: %v", name, addr, err)
	}
}
