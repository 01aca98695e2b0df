package lifecycle

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// fake is a fake container: a process in a fresh network namespace.
type fake struct{ *tl.Container }

// state is the OCI state of the fake for a hook; ns, when set, makes the
// bundle path look like a containerd shim's.
func (f *fake) state(ns string, ann map[string]string) ociState {
	bundle := "/nonexistent/" + f.ID
	if ns != "" {
		bundle = "/run/ull-none/io.containerd.runtime.v2.task/" + ns + "/" + f.ID
	}
	return ociState{ID: f.ID, Pid: f.Pid, Bundle: bundle, Annotations: ann}
}

// fakes kills every fake container registered with it at cleanup.
type fakes struct {
	mu  sync.Mutex
	all []*fake
}

func newFakes(t *testing.T) *fakes {
	fs := &fakes{}
	t.Cleanup(func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		for _, f := range fs.all {
			f.Kill()
		}
	})
	return fs
}

// start starts a fake container that is killed at cleanup; it never
// fails the test, so goroutines may call it.
func (fs *fakes) start(id string) (*fake, error) {
	c, err := tl.StartContainer(id)
	if err != nil {
		return nil, err
	}
	f := &fake{c}
	fs.mu.Lock()
	fs.all = append(fs.all, f)
	fs.mu.Unlock()
	return f, nil
}

func (fs *fakes) mustStart(t *testing.T, id string) *fake {
	t.Helper()
	f, err := fs.start(id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// nsLink is an interface inside a network namespace, as `ip -j addr` shows it.
type nsLink struct {
	Name  string
	MAC   string
	Addrs []string // CIDR, global scope only
}

// linksIn lists the interfaces (but lo) in the network namespace of pid.
func linksIn(pid int) ([]nsLink, error) {
	return linksVia("nsenter", "-t", strconv.Itoa(pid), "-n", "--", "ip", "-j", "addr", "show")
}

// linksInNetns lists the interfaces (but lo) in a named network namespace.
func linksInNetns(name string) ([]nsLink, error) {
	return linksVia("ip", "-n", name, "-j", "addr", "show")
}

func linksVia(name string, args ...string) ([]nsLink, error) {
	out, err := run(10*time.Second, nil, name, args...)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		IfName   string `json:"ifname"`
		Address  string `json:"address"`
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("ip -j addr: %w: %s", err, out)
	}
	var links []nsLink
	for _, r := range raw {
		if r.IfName == "lo" {
			continue
		}
		l := nsLink{Name: r.IfName, MAC: r.Address}
		for _, a := range r.AddrInfo {
			if a.Scope == "global" {
				l.Addrs = append(l.Addrs, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
			}
		}
		sort.Strings(l.Addrs)
		links = append(links, l)
	}
	return links, nil
}

// eth0Addr is the IPv4 address (CIDR) on eth0 inside pid's namespace.
func eth0Addr(pid int) (string, error) {
	links, err := linksIn(pid)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		if l.Name == "eth0" && len(l.Addrs) > 0 {
			return l.Addrs[0], nil
		}
	}
	return "", fmt.Errorf("pid %d has no eth0 with an address: %+v", pid, links)
}
