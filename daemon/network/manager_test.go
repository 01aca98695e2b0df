package network

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/store"
	tl "github.com/underlay/underlay/integration/testlab"
)

func newManager(t *testing.T, dir string) (*Manager, *store.Store) {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(s, link.Host{}, slog.New(slog.DiscardHandler))
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(m.Wait)
	return m, s
}

// 100 containers attach at once across three networks: all succeed, every
// address is distinct, and the store holds exactly those leases; then they
// all detach at once and every lease is free. Run with -race.
func TestPrivilegedConcurrentAttach(t *testing.T) {
	tl.Require(t)
	const perNet, nets = 34, 3
	m, s := newManager(t, t.TempDir())
	defer s.Close()
	for i := 0; i < nets; i++ {
		lan := tl.NewLAN(t, fmt.Sprintf("ulm%d", i), fmt.Sprintf("10.8%d.0.1/24", i))
		_, err := m.Create(api.NetworkCreate{Name: fmt.Sprintf("n%d", i), Subnets: []string{fmt.Sprintf("10.8%d.0.0/24", i)},
			Options: map[string]string{"parent": lan.Uplink}})
		if err != nil {
			t.Fatal(err)
		}
	}
	var cs []*tl.Container
	for i := 0; i < perNet*nets; i++ {
		cs = append(cs, tl.NewContainer(t, fmt.Sprintf("ulm-c%d", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c *tl.Container) {
			defer wg.Done()
			_, err := m.Attach(api.AttachRequest{ContainerID: c.ID, Pid: c.Pid,
				Networks: []api.NetworkAttach{{Name: fmt.Sprintf("n%d", i%nets)}}})
			errs <- err
		}(i, c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, ep := range m.Endpoints() {
		if seen[ep.Addresses[0]] {
			t.Fatalf("address %s handed out twice", ep.Addresses[0])
		}
		seen[ep.Addresses[0]] = true
	}
	if len(seen) != len(cs) {
		t.Fatalf("%d endpoints for %d containers", len(seen), len(cs))
	}
	for i := 0; i < nets; i++ {
		leases, _ := s.Leases(fmt.Sprintf("n%d", i))
		if len(leases) != perNet {
			t.Fatalf("network n%d has %d leases, want %d", i, len(leases), perNet)
		}
	}
	// The address inside a container is the one recorded.
	ep := m.Endpoints()[0]
	for _, c := range cs {
		if c.ID == ep.ContainerID {
			out, _ := c.Exec("ip", "-4", "addr", "show", "eth0")
			if p := netip.MustParsePrefix(ep.Addresses[0]); !strings.Contains(out, p.String()) {
				t.Fatalf("%s: store says %s, container has:\n%s", c.ID, p, out)
			}
		}
	}
	for _, c := range cs {
		wg.Add(1)
		go func(c *tl.Container) {
			defer wg.Done()
			if _, err := m.Detach(api.DetachRequest{ContainerID: c.ID, Pid: c.Pid}); err != nil {
				t.Error(err)
			}
		}(c)
	}
	wg.Wait()
	for i := 0; i < nets; i++ {
		if leases, _ := s.Leases(fmt.Sprintf("n%d", i)); len(leases) != 0 {
			t.Fatalf("leases left on n%d: %v", i, leases)
		}
	}
}

// An attach cut short after its interface was made but before the endpoint
// was committed leaves only its intent file: the restart deletes the
// interface (whatever name it had reached) and forgets the intent; an
// interface of the same name but another MAC is someone else's and stays.
// An intent whose endpoint was committed is only forgotten.
func TestPrivilegedInterruptedIntentUndone(t *testing.T) {
	tl.Require(t)
	dir := t.TempDir()
	lan := tl.NewLAN(t, "ulmi", "10.88.0.1/24")
	m, s := newManager(t, dir)
	if _, err := m.Create(api.NetworkCreate{Name: "x", Subnets: []string{"10.88.0.0/24"}, Options: map[string]string{"parent": lan.Uplink}}); err != nil {
		t.Fatal(err)
	}
	parent, err := link.Lookup(lan.Uplink)
	if err != nil {
		t.Fatal(err)
	}
	// cut: an interface made and renamed, its endpoint never committed.
	// early: an attach cut before the rename, under its temporary name.
	// foreign: an intent naming eth0, where eth0 has another MAC.
	// twin: eth0 has the intent's MAC but not its address (ipvlan slaves
	// all have their parent's MAC): someone else's.
	// stripped: a detach committed, its interface stripped of its
	// addresses, not yet deleted; or an attach cut between the create of
	// a macvlan under its final name and its address (the same state).
	// done: a committed attach whose intent was not yet removed.
	cut, foreign, done := tl.NewContainer(t, "ulmi-cut"), tl.NewContainer(t, "ulmi-foreign"), tl.NewContainer(t, "ulmi-done")
	stripped, twin := tl.NewContainer(t, "ulmi-stripped"), tl.NewContainer(t, "ulmi-twin")
	early := tl.NewContainer(t, "ulmi-early")
	mkIntent := func(c *tl.Container, mac, made string, renamed bool, has, want string) api.Endpoint {
		ns, err := link.OpenPid(c.Pid)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		hw, _ := net.ParseMAC(made)
		tmp, _ := link.NewTempName()
		name := "eth0"
		if renamed {
			name = tmp
		}
		sl := link.Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: name, MAC: hw, MTU: 1500}
		if has != "" {
			sl.Addrs = []netip.Prefix{netip.MustParsePrefix(has)}
		}
		if err := link.CreateSlave(ns, sl); err != nil {
			t.Fatal(err)
		}
		ep := api.Endpoint{Network: "x", ContainerID: c.ID, IfName: "eth0", MAC: mac, NetnsInode: ns.Inode, NetnsCookie: ns.Cookie,
			Addresses: []string{want}, Parent: lan.Uplink, TempName: tmp, State: stateAttached, Created: "2026-11-22T00:00:00Z"}
		if err := s.BeginIntent(ep); err != nil {
			t.Fatal(err)
		}
		return ep
	}
	mkIntent(cut, "02:00:00:00:00:01", "02:00:00:00:00:01", false, "10.88.0.51/24", "10.88.0.51/24")
	mkIntent(foreign, "02:00:00:00:00:02", "02:00:00:00:00:99", false, "10.88.0.52/24", "10.88.0.52/24")
	mkIntent(early, "02:00:00:00:00:05", "02:00:00:00:00:05", true, "10.88.0.55/24", "10.88.0.55/24")
	mkIntent(stripped, "02:00:00:00:00:03", "02:00:00:00:00:03", false, "", "10.88.0.53/24")
	mkIntent(twin, "02:00:00:00:00:04", "02:00:00:00:00:04", false, "10.88.0.64/24", "10.88.0.54/24")
	resp, err := m.Attach(api.AttachRequest{ContainerID: done.ID, Pid: done.Pid, Networks: []api.NetworkAttach{{Name: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	committed := resp.Endpoints[0]
	committed.TempName = "ul00000000aa"
	if err := s.BeginIntent(committed); err != nil {
		t.Fatal(err)
	}
	s.Close()

	m, s = newManager(t, dir)
	defer s.Close()
	for _, c := range []*tl.Container{cut, early, stripped} {
		if out, _ := c.Exec("ip", "-o", "link", "show"); strings.Contains(out, ": eth0@") || strings.Contains(out, ": ul") {
			t.Errorf("%s: interrupted attach or detach left an interface: %s", c.ID, out)
		}
	}
	if out, _ := foreign.Exec("ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "02:00:00:00:00:99") {
		t.Errorf("an eth0 with another MAC was deleted: %q", out)
	}
	if out, _ := twin.Exec("ip", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.88.0.64/24") {
		t.Errorf("an eth0 with the intent's MAC but another address was deleted: %q", out)
	}
	if out, _ := done.Exec("ip", "-o", "addr", "show", "eth0"); !strings.Contains(out, committed.Addresses[0]) {
		t.Errorf("committed endpoint's eth0 lost its address %s: %q", committed.Addresses[0], out)
	}
	if eps := m.Endpoints(); len(eps) != 1 || eps[0].ContainerID != done.ID {
		t.Errorf("endpoints after restart: %+v, want only %s", eps, done.ID)
	}
	if left, _ := s.Intents(); len(left) != 0 {
		t.Errorf("intents left after restart: %+v", left)
	}
}

// A detach while the container's namespace lives on (a pod, a pinned
// namespace): when Detach returns, eth0 has no address left and its address
// is free for the next container; the interface is deleted in the
// background, an attach into the same namespace waits for that, and
// nothing is left once it is done.
func TestPrivilegedDetachLiveNamespace(t *testing.T) {
	tl.Require(t)
	dir := t.TempDir()
	lan := tl.NewLAN(t, "ulmd", "10.87.0.1/24")
	m, s := newManager(t, dir)
	defer s.Close()
	if _, err := m.Create(api.NetworkCreate{Name: "x", Subnets: []string{"10.87.0.0/24"}, Options: map[string]string{"parent": lan.Uplink}}); err != nil {
		t.Fatal(err)
	}
	a, b := tl.NewContainer(t, "ulmd-a"), tl.NewContainer(t, "ulmd-b")
	const mac = "02:00:00:87:00:02"
	resp, err := m.Attach(api.AttachRequest{ContainerID: a.ID, Pid: a.Pid, Networks: []api.NetworkAttach{{Name: "x", MAC: mac}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := resp.Endpoints[0].Addresses[0]
	if _, err := m.Detach(api.DetachRequest{ContainerID: a.ID, Pid: a.Pid}); err != nil {
		t.Fatal(err)
	}
	if out, _ := a.Exec("ip", "-o", "addr", "show"); strings.Contains(out, strings.Split(addr, "/")[0]) {
		t.Errorf("after Detach the container still has %s:\n%s", addr, out)
	}
	// The address is free at once; the MAC, which the stripped interface
	// holds on the parent until it is deleted, and eth0 in the same
	// namespace are free once the attach has waited for that.
	if resp, err := m.Attach(api.AttachRequest{ContainerID: b.ID, Pid: b.Pid, Networks: []api.NetworkAttach{{Name: "x", MAC: mac}}}); err != nil || resp.Endpoints[0].Addresses[0] != addr {
		t.Errorf("attach with the same MAC right after the detach: %v %+v, want %s", err, resp, addr)
	}
	if _, err := m.Attach(api.AttachRequest{ContainerID: "ulmd-a2", Pid: a.Pid, Networks: []api.NetworkAttach{{Name: "x"}}}); err != nil {
		t.Errorf("attach into the same namespace right after the detach: %v", err)
	}
	m.Wait()
	if out, _ := a.Exec("ip", "-o", "link", "show"); strings.Contains(out, ": ul") || strings.Count(out, "@") != 1 {
		t.Errorf("after the background deletion the namespace should hold lo and the new eth0 only:\n%s", out)
	}
	if left, _ := s.Intents(); len(left) != 0 {
		t.Errorf("intents left: %+v", left)
	}
}

// endpoint ls (EachEndpoint, streamed) lists endpoints by network, then
// namespace, then container, each with what attach recorded.
func TestPrivilegedEndpointListOrder(t *testing.T) {
	tl.Require(t)
	m, s := newManager(t, t.TempDir())
	defer s.Close()
	for i, name := range []string{"zz", "aa"} {
		lan := tl.NewLAN(t, fmt.Sprintf("ulme%d", i), fmt.Sprintf("10.7%d.0.1/24", i))
		if _, err := m.Create(api.NetworkCreate{Name: name, Subnets: []string{fmt.Sprintf("10.7%d.0.0/24", i)}, Options: map[string]string{"parent": lan.Uplink}}); err != nil {
			t.Fatal(err)
		}
	}
	attached := map[string]api.Endpoint{}
	for i, id := range []string{"ulme-c", "ulme-a", "ulme-b"} {
		c := tl.NewContainer(t, id)
		ns := []string{"", "k8s.io", "default"}[i]
		resp, err := m.Attach(api.AttachRequest{Namespace: ns, ContainerID: c.ID, Pid: c.Pid,
			Networks: []api.NetworkAttach{{Name: "zz"}, {Name: "aa"}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range resp.Endpoints {
			attached[ep.Network+"/"+ep.Namespace+"/"+ep.ContainerID] = ep
		}
	}
	var got []string
	err := m.EachEndpoint(func(ep api.Endpoint) error {
		key := ep.Network + "/" + ep.Namespace + "/" + ep.ContainerID
		if want := attached[key]; fmt.Sprint(ep) != fmt.Sprint(want) {
			t.Errorf("listed %+v, attach recorded %+v", ep, want)
		}
		got = append(got, key)
		return nil
	})
	want := []string{"aa//ulme-c", "aa/default/ulme-b", "aa/k8s.io/ulme-a", "zz//ulme-c", "zz/default/ulme-b", "zz/k8s.io/ulme-a"}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed %v (%v), want %v", got, err, want)
	}
}

// A released address is free again at once, even while the interface that
// had it, in a namespace that lives on, is being deleted in the background:
// ipvlan refuses an address that any slave of the parent holds, up or down
// (a detach strips the addresses before answering), and a passthru parent
// takes one slave at a time (there a detach deletes before answering).
// (VM: ipvlan.)
func TestVMReleasedAtOnceWhileDeleting(t *testing.T) {
	tl.RequireVM(t)
	m, s := newManager(t, t.TempDir())
	defer s.Close()
	lan := tl.NewLAN(t, "ulmv", "10.59.0.1/24")
	if _, err := m.Create(api.NetworkCreate{Name: "ipr", Driver: "ipvlan", Subnets: []string{"10.59.0.0/24"},
		Options: map[string]string{"parent": lan.Uplink}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		a, b := tl.NewContainer(t, fmt.Sprintf("ulmv-a%d", i)), tl.NewContainer(t, fmt.Sprintf("ulmv-b%d", i))
		want := []api.NetworkAttach{{Name: "ipr", IP: "10.59.0.9"}}
		if _, err := m.Attach(api.AttachRequest{ContainerID: a.ID, Pid: a.Pid, Networks: want}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Detach(api.DetachRequest{ContainerID: a.ID, Pid: a.Pid}); err != nil {
			t.Fatal(err)
		}
		// a's namespace lives on, its interface is still being deleted,
		// and nothing in it holds the address any more; b asks for the
		// same address at once and gets it.
		if out, _ := a.Exec("ip", "-o", "addr", "show"); strings.Contains(out, "10.59.0.9") {
			t.Fatalf("round %d: after detach a's namespace still holds the address:\n%s", i, out)
		}
		if _, err := m.Attach(api.AttachRequest{ContainerID: b.ID, Pid: b.Pid, Networks: want}); err != nil {
			t.Fatalf("round %d: the address a just released: %v", i, err)
		}
		if out, _ := b.Exec("ip", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.59.0.9/24") {
			t.Fatalf("round %d: b's eth0 lacks 10.59.0.9/24:\n%s", i, out)
		}
		if _, err := m.Detach(api.DetachRequest{ContainerID: b.ID, Pid: b.Pid}); err != nil {
			t.Fatal(err)
		}
	}
	m.Wait()
	lan2 := tl.NewLAN(t, "ulmw", "10.58.0.1/24")
	if _, err := m.Create(api.NetworkCreate{Name: "pt", Subnets: []string{"10.58.0.0/24"},
		Options: map[string]string{"parent": lan2.Uplink, "macvlan_mode": "passthru"}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c := tl.NewContainer(t, fmt.Sprintf("ulmw-c%d", i))
		if _, err := m.Attach(api.AttachRequest{ContainerID: c.ID, Pid: c.Pid, Networks: []api.NetworkAttach{{Name: "pt"}}}); err != nil {
			t.Fatalf("passthru round %d: %v", i, err)
		}
		if _, err := m.Detach(api.DetachRequest{ContainerID: c.ID, Pid: c.Pid}); err != nil {
			t.Fatal(err)
		}
	}
}
