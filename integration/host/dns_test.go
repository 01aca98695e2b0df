package host

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// lookup asks 127.0.0.11 inside c for name, with busybox's nslookup.
func lookup(c *tl.Container, name string) (string, error) {
	return c.Exec(tl.Busybox, "nslookup", name, "127.0.0.11")
}

// Containers resolve each other by name on 127.0.0.11, as Docker's
// embedded DNS: ipv1 and ipv2 on one network find each other (and by
// io.underlay.name's alias), a container on another network gets NXDOMAIN
// for ipv1, other names go to the host's resolver (dnsmasq on the LAN,
// named by --resolv-conf), a name is gone within 1 s of its detach, and
// -o dns=false turns it off.
func TestPrivilegedDNS(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh9", "10.100.0.1/24", "10.101.0.1/24")
	host := "ulh9-host"
	_ = osexec.Command("ip", "netns", "del", host).Run()
	tl.MustRun(t, "ip", "netns", "add", host)
	t.Cleanup(func() { _ = osexec.Command("ip", "netns", "del", host).Run() })
	tl.MustRun(t, "ip", "link", "set", lan.Uplink, "netns", host)
	tl.MustRun(t, "ip", "-n", host, "link", "set", "lo", "up")
	tl.MustRun(t, "ip", "-n", host, "addr", "add", "10.100.0.2/24", "dev", lan.Uplink)
	tl.MustRun(t, "ip", "-n", host, "link", "set", lan.Uplink, "up")
	// The host's resolver: dnsmasq on the LAN's router, knowing one name.
	dir := t.TempDir()
	tl.StartProc(t, filepath.Join(dir, "dnsmasq.log"), nil, "ip", "netns", "exec", lan.NS, "dnsmasq", "--keep-in-foreground",
		"--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=root", "--listen-address=10.100.0.1",
		"--bind-interfaces", "--address=/outside.test/10.1.2.3", "--pid-file="+filepath.Join(dir, "pid"))
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.100.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := tl.NewDaemon(t, t.TempDir())
	d.Wrap = []string{"ip", "netns", "exec", host}
	d.Start("--resolv-conf", resolv)
	d.MustCLI(t, "network", "create", "--subnet", "10.100.0.0/24", "-o", "parent="+lan.Uplink, "front")
	d.MustCLI(t, "network", "create", "--subnet", "10.101.0.0/24", "-o", "parent="+lan.Uplink, "back")
	d.MustCLI(t, "network", "create", "--subnet", "10.102.0.0/24", "-o", "dns=false", "-o", "parent="+lan.Uplink, "quiet")

	c1, c2, c3 := tl.NewContainer(t, "ulh9-c1"), tl.NewContainer(t, "ulh9-c2"), tl.NewContainer(t, "ulh9-c3")
	attach(t, d, c1, "io.underlay.network", "front", "io.underlay.name", "ipv1")
	attach(t, d, c2, "io.underlay.network", "front", "io.underlay.name", "ipv2,db")
	attach(t, d, c3, "io.underlay.network", "back", "io.underlay.name", "ipv3")
	var addr2 string
	for _, row := range d.Endpoints(t) {
		if strings.HasSuffix(row[1], "ulh9-c2") {
			addr2 = strings.Split(row[3], "/")[0]
		}
	}

	for _, name := range []string{"ipv2", "db", "IPV2"} {
		out, err := lookup(c1, name)
		if err != nil || !strings.Contains(out, addr2) {
			t.Errorf("ipv1 looking up %s: %v\n%s", name, err, out)
		}
	}
	if out, err := lookup(c2, "ipv1"); err != nil || !strings.Contains(out, "10.100.0.") {
		t.Errorf("ipv2 looking up ipv1: %v\n%s", err, out)
	}
	if out, err := lookup(c3, "ipv1"); err == nil || strings.Contains(out, "10.100.0.") {
		t.Errorf("ipv3, on another network, resolved ipv1: %v\n%s", err, out)
	}
	// (dnsmasq refuses the AAAA half, having no upstream: only the A
	// answer is read.)
	if out, _ := lookup(c1, "outside.test"); !strings.Contains(out, "10.1.2.3") {
		t.Errorf("an outside name was not forwarded to the host's resolver:\n%s", out)
	}

	detach(t, d, c2, "io.underlay.network", "front")
	start := time.Now()
	for {
		out, err := lookup(c1, "ipv2")
		if err != nil && !strings.Contains(out, addr2) {
			t.Logf("ipv2 gone from DNS %s after its detach", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("ipv2 still resolves 1 s after its detach:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c4 := tl.NewContainer(t, "ulh9-c4")
	attach(t, d, c4, "io.underlay.network", "quiet", "io.underlay.name", "hush")
	if out, err := lookup(c4, "ipv1"); err == nil {
		t.Errorf("a container on a -o dns=false network has a resolver:\n%s", out)
	}
	for _, c := range []*tl.Container{c1, c3, c4} {
		detach(t, d, c, "io.underlay.network", map[*tl.Container]string{c1: "front", c3: "back", c4: "quiet"}[c])
	}
}
