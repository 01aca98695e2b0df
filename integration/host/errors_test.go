package host

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// hostLinks lists the host's links with a prefix, to prove nothing was left.
func hostLinks(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(tl.MustRun(t, "ip", "-br", "link"), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			out = append(out, strings.SplitN(f[0], "@", 2)[0])
		}
	}
	return out
}

// Every bad network create gets one line naming the problem, and leaves the
// store and the host's links as they were.
func TestPrivilegedCreateBadInput(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh6", "10.66.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet=10.66.0.0/24", "-o", "parent="+lan.Uplink, "taken")
	p := "parent=" + lan.Uplink
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown driver", []string{"-d", "bridge", "--subnet=10.9.0.0/24", "-o", p, "x"}, `unknown driver "bridge"`},
		{"unknown macvlan mode", []string{"--subnet=10.9.0.0/24", "-o", p, "-o", "macvlan_mode=hairpin", "x"}, `unknown macvlan_mode "hairpin"`},
		{"unknown ipvlan mode", []string{"-d", "ipvlan", "--subnet=10.9.0.0/24", "-o", p, "-o", "ipvlan_mode=l4", "x"}, `unknown ipvlan_mode "l4"`},
		{"unknown ipvlan flag", []string{"-d", "ipvlan", "--subnet=10.9.0.0/24", "-o", p, "-o", "ipvlan_flag=loose", "x"}, `unknown ipvlan_flag "loose"`},
		{"mode of the other driver", []string{"--subnet=10.9.0.0/24", "-o", p, "-o", "ipvlan_mode=l2", "x"}, "unknown option -o ipvlan_mode for driver macvlan"},
		{"bad cidr", []string{"--subnet=10.9.0/24", "-o", p, "x"}, `invalid --subnet "10.9.0/24"`},
		{"gateway outside", []string{"--subnet=10.9.0.0/24", "--gateway=10.8.0.1", "-o", p, "x"}, "--gateway 10.8.0.1 is not in any --subnet"},
		{"range outside", []string{"--subnet=10.9.0.0/24", "--ip-range=10.8.0.0/25", "-o", p, "x"}, "--ip-range 10.8.0.0/25 is not in any --subnet"},
		{"aux outside", []string{"--subnet=10.9.0.0/24", "--aux-address=a=10.8.0.5", "-o", p, "x"}, "--aux-address a=10.8.0.5 is not in any --subnet"},
		{"second gateway", []string{"--subnet=10.9.0.0/24", "--gateway=10.9.0.1", "--gateway=10.9.0.2", "-o", p, "x"}, "second --gateway for subnet 10.9.0.0/24"},
		{"second range", []string{"--subnet=10.9.0.0/24", "--ip-range=10.9.0.0/25", "--ip-range=10.9.0.128/25", "-o", p, "x"}, "--ip-range"},
		{"duplicate name", []string{"--subnet=10.9.0.0/24", "-o", p, "taken"}, "network taken: already exists"},
		{"overlap on parent", []string{"--subnet=10.66.0.128/25", "-o", p, "x"}, "overlaps 10.66.0.0/24 of network taken"},
		{"missing parent", []string{"--subnet=10.9.0.0/24", "-o", "parent=ulh6nope", "x"}, "parent interface ulh6nope does not exist"},
		{"loopback parent", []string{"--subnet=10.9.0.0/24", "-o", "parent=lo", "x"}, "loopback interface cannot be a parent"},
		{"parent name too long", []string{"--subnet=10.9.0.0/24", "-o", "parent=ulh6abcdefghijklmnop", "x"}, "longer than 15 characters"},
		{"mtu above parent", []string{"--subnet=10.9.0.0/24", "-o", p, "-o", "mtu=9000", "x"}, "-o mtu=9000 is larger than the MTU 1500"},
		{"bad mtu", []string{"--subnet=10.9.0.0/24", "-o", p, "-o", "mtu=big", "x"}, "-o mtu=big"},
		{"unknown option", []string{"--subnet=10.9.0.0/24", "-o", p, "-o", "colour=red", "x"}, "unknown option -o colour"},
		{"no subnet", []string{"-o", p, "x"}, "at least one --subnet is required"},
		{"ipv6 without v6 subnet", []string{"--ipv6", "--subnet=10.9.0.0/24", "-o", p, "x"}, "--ipv6 needs an IPv6 --subnet"},
		{"bad name", []string{"--subnet=10.9.0.0/24", "-o", p, "x!y"}, `invalid network name "x!y"`},
		{"passthru beside another network", []string{"--subnet=10.9.0.0/24", "-o", p, "-o", "macvlan_mode=passthru", "x"}, "passthru needs the parent to itself"},
		{"ipvlan beside macvlan", []string{"-d", "ipvlan", "--subnet=10.9.0.0/24", "-o", p, "x"}, "a parent takes one driver type"},
	}
	before := d.MustCLI(t, "network", "ls")
	links := hostLinks(t, "ulh6")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := d.CLI(append([]string{"network", "create"}, c.args...)...)
			if err == nil {
				t.Fatalf("accepted: %s", out)
			}
			if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
				t.Fatalf("error is %d lines, want one:\n%s", n+1, out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("want %q in %q", c.want, out)
			}
			if after := d.MustCLI(t, "network", "ls"); after != before {
				t.Fatalf("networks changed:\n%s", after)
			}
			if got := hostLinks(t, "ulh6"); strings.Join(got, ",") != strings.Join(links, ",") {
				t.Fatalf("links changed: %v -> %v", links, got)
			}
		})
	}
	// A name is never read as a URL: "taken?force=1" is not network taken
	// with a query, and ".." is no path.
	for _, c := range []struct{ args []string }{
		{[]string{"network", "rm", "taken?force=1"}}, {[]string{"network", "inspect", "taken?x"}},
		{[]string{"network", "rm", ".."}}, {[]string{"network", "inspect", "taken/x"}},
		{[]string{"network", "connect", "..", "c1"}},
	} {
		out, err := d.CLI(c.args...)
		if err == nil || !strings.Contains(out, "invalid network name") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: %v %q, want one line saying the name is invalid", c.args, err, out)
		}
	}
	if after := d.MustCLI(t, "network", "ls"); after != before {
		t.Fatalf("networks changed:\n%s", after)
	}
}

// Bad attach requests get a one-line error naming the network and leave the
// container, the store and the leases untouched, including a partial
// multi-network attach.
func TestPrivilegedAttachBadInput(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulh7", "10.67.0.1/24")
	lan2 := tl.NewLAN(t, "ulh7b", "10.68.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet=10.67.0.0/24", "-o", "parent="+lan.Uplink, "n1")
	d.MustCLI(t, "network", "create", "--subnet=10.68.0.0/24", "--ip-range=10.68.0.0/30", "-o", "parent="+lan2.Uplink, "-o", "mtu=1400", "n2")
	holder := tl.NewContainer(t, "ulh7-holder")
	attach(t, d, holder, "io.underlay.network", "n1", "io.underlay.ip", "10.67.0.50")

	c := tl.NewContainer(t, "ulh7-c")
	cases := []struct {
		name  string
		state []byte
		want  string
	}{
		{"unknown network", c.State("creating", ann("io.underlay.network", "nonet")), "network nonet: not found"},
		{"second network unknown rolls back the first", c.State("creating", ann("io.underlay.network", "n1,nonet")), "network nonet: not found"},
		{"address in use", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.ip", "10.67.0.50")), "10.67.0.50: address already in use"},
		{"address outside", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.ip", "10.99.0.5")), "10.99.0.5: not in any subnet"},
		{"gateway address", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.ip", "10.67.0.1")), "reserved"},
		{"second fails after first attached", c.State("creating", ann("io.underlay.network", "n1,n2", "io.underlay.ip.n2", "10.68.0.1")), "network n2:"},
		{"v6 on a v4 network", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.ip6", "2001:db8::5")), "has no IPv6 subnet"},
		{"bad ip", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.ip", "10.67.0.300")), "not an IPv4 address"},
		{"bad mac", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.mac", "01:00:5e:00:00:01")), "multicast"},
		{"ip for unlisted network", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.ip.n2", "10.68.0.2")), "not in io.underlay.network"},
		{"unknown annotation", c.State("creating", ann("io.underlay.network", "n1", "io.underlay.colour", "red")), "unknown annotation io.underlay.colour"},
		{"malformed state", []byte(`{"id": "x", "pid": `), "malformed OCI state"},
		{"no id", []byte(`{"pid": 5, "annotations": {"io.underlay.network": "n1"}}`), "no container id"},
		{"host namespace", []byte(fmt.Sprintf(`{"id":"ulh7-host","status":"creating","pid":%d,"annotations":{"io.underlay.network":"n1"}}`, os.Getpid())), "host network namespace"},
		{"process gone", []byte(`{"id":"ulh7-gone","status":"creating","pid":4194304,"annotations":{"io.underlay.network":"n1"}}`), "process is gone"},
	}
	leases := d.Endpoints(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := d.Hook(tc.state, "createRuntime")
			if err == nil {
				t.Fatalf("accepted: %s", out)
			}
			if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.HasPrefix(out, "underlay-hook: ") {
				t.Fatalf("want one line from underlay-hook, got:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("want %q in %q", tc.want, out)
			}
			if got := exec(t, c, "ip", "-br", "link"); strings.Contains(got, "eth") {
				t.Fatalf("container left with an interface:\n%s", got)
			}
			if got := d.Endpoints(t); len(got) != len(leases) {
				t.Fatalf("endpoints changed: %v", got)
			}
		})
	}
	// The range 10.68.0.0/30 has .2 and .3 (network .0, gateway .1): after
	// all the failures above, both are still free.
	a, b := tl.NewContainer(t, "ulh7-a"), tl.NewContainer(t, "ulh7-b")
	attach(t, d, a, "io.underlay.network", "n2")
	attach(t, d, b, "io.underlay.network", "n2")
	mustContain(t, "a", exec(t, a, "ip", "-4", "addr", "show", "eth0"), "10.68.0.2/24", "mtu 1400")
	mustContain(t, "b", exec(t, b, "ip", "-4", "addr", "show", "eth0"), "10.68.0.3/24")
	e := tl.NewContainer(t, "ulh7-e")
	out, err := d.Attach(e, ann("io.underlay.network", "n2"))
	if err == nil || !strings.Contains(out, "no free address in 10.68.0.0/24") {
		t.Fatalf("exhausted pool: %v %s", err, out)
	}
}

// A daemon that is down makes the hook fail at once, saying so.
func TestPrivilegedHookDaemonDown(t *testing.T) {
	tl.Require(t)
	c := tl.NewContainer(t, "ulh8-c")
	d := &tl.Daemon{Socket: filepath.Join(t.TempDir(), "none.sock")}
	start := time.Now()
	out, err := d.Attach(c, ann("io.underlay.network", "n1"))
	if err == nil || !strings.Contains(out, "underlayd is not running") {
		t.Fatalf("want 'underlayd is not running', got %v: %s", err, out)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("hook took %v to fail", el)
	}
	// No annotation: nothing to do, even with the daemon down.
	if out, err := d.Attach(c, nil); err != nil {
		t.Fatalf("unannotated container refused: %v %s", err, out)
	}
}

// A kernel without a driver gets a sentence naming the missing feature at
// network create. The host kernel lacks ipvlan, 802.1q and dummy; the VM's
// has them all: the test follows what `underlay doctor` reports.
func TestPrivilegedMissingKernelFeature(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulhk", "10.74.0.1/24")
	d := tl.StartDaemon(t)
	raw, _ := d.CLI("doctor", lan.Uplink)
	var lines []string
	for _, l := range strings.Split(raw, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	doctor := strings.Join(lines, "\n")
	mustContain(t, "doctor", doctor, "kernel macvlan supported", "parent "+lan.Uplink+" up (veth, mtu 1500)", "answers")
	cases := []struct {
		feature, want string
		args          []string
	}{
		{"ipvlan", "ipvlan interfaces are not supported by this kernel", []string{"-d", "ipvlan", "--subnet=10.74.0.0/24", "-o", "parent=" + lan.Uplink, "k1"}},
		{"vlan", "vlan interfaces are not supported by this kernel", []string{"--subnet=10.75.0.0/24", "-o", "parent=" + lan.Uplink + ".7", "k2"}},
		{"dummy", "dummy interfaces are not supported by this kernel", []string{"--internal", "--subnet=10.76.0.0/24", "k3"}},
	}
	for _, c := range cases {
		missing := !strings.Contains(doctor, "kernel "+c.feature+" supported")
		out, err := d.CLI(append([]string{"network", "create"}, c.args...)...)
		switch {
		case missing && (err == nil || !strings.Contains(out, c.want)):
			t.Errorf("%s missing: want %q, got %v %s", c.feature, c.want, err, out)
		case !missing && err != nil:
			t.Errorf("%s supported, create failed: %s", c.feature, out)
		}
	}
	// Where the kernel has the feature the network was made: remove it, and
	// with it the parent underlayd created.
	for _, n := range []string{"k1", "k2", "k3"} {
		d.CLI("network", "rm", n)
	}
	if got := hostLinks(t, "ulhk"); len(got) != 1 {
		t.Fatalf("links left: %v", got)
	}
}
