package resolver

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/underlay/underlay/daemon/link"
	tl "github.com/underlay/underlay/integration/testlab"
)

type oneName struct{}

func (oneName) Resolve(_ uint64, name string) ([]netip.Addr, bool) {
	if name == "web" {
		return []netip.Addr{netip.MustParseAddr("10.9.0.7")}, true
	}
	return nil, false
}

// A server starts in a namespace where the UDP socket of one stopped a
// moment ago is still open (Stop closes in the background), and answers a
// container's name on 127.0.0.11 over UDP.
func TestPrivilegedServeBesideClosingSocket(t *testing.T) {
	tl.Require(t)
	c := tl.NewContainer(t, "ulrs-c")
	ns, err := link.OpenPid(c.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	// The old server's socket (lo up, as the old server left it), bound
	// with SO_REUSEADDR as every one is.
	var old int
	err = ns.Do(func() error {
		if err := exec(c, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
		var err error
		if old, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(old, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		return unix.Bind(old, &unix.SockaddrInet4{Port: int(Addr.Port()), Addr: Addr.Addr().As4()})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(old)
	r := New(oneName{}, filepath.Join(t.TempDir(), "resolv.conf"))
	if err := r.Serve(ns); err != nil {
		t.Fatalf("Serve beside a closing socket: %v", err)
	}
	defer r.Stop(ns.Inode)
	// The old socket gets no more queries once closed; until then the
	// kernel may hand a query to either, so close it before asking.
	unix.Close(old)
	q := new(dns.Msg)
	q.SetQuestion("web.", dns.TypeA)
	var ans *dns.Msg
	err = ns.Do(func() error {
		var err error
		ans, _, err = (&dns.Client{Net: "udp", Timeout: 2 * time.Second}).Exchange(q, Addr.String())
		return err
	})
	if err != nil || len(ans.Answer) != 1 || ans.Answer[0].(*dns.A).A.String() != "10.9.0.7" {
		t.Fatalf("web over 127.0.0.11: %v %v, want 10.9.0.7", ans, err)
	}
}

func exec(c *tl.Container, args ...string) error {
	_, err := c.Exec(args...)
	return err
}
