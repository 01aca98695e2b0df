package lifecycle

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onFirstLink runs fn the moment a link appears in the namespace of pid,
// which is the first thing of an attach a container can see, and returns a
// channel that yields the link's name (or "" if none appeared before stop
// is closed).
func onFirstLink(t *testing.T, pid int, stop <-chan struct{}, fn func()) <-chan string {
	t.Helper()
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	err = netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{Namespace: &ns})
	ns.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		defer close(done)
		for {
			select {
			case upd := <-ch:
				if upd.Header.Type == unix.RTM_NEWLINK && upd.Attrs().Name != "lo" {
					fn()
					got <- upd.Attrs().Name
					return
				}
			case <-stop:
				got <- ""
				return
			}
		}
	}()
	return got
}

// isTempName reports whether name looks like underlayd's temporary name for
// a new interface ("ul" and 10 hex digits).
func isTempName(name string) bool {
	if len(name) != 12 || !strings.HasPrefix(name, "ul") {
		return false
	}
	for _, c := range name[2:] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// SIGKILL underlayd the moment the container's new interface appears (it is
// created under a temporary name, then renamed to eth0), start it again,
// and check that the attach the crash cut short left nothing: no interface
// in the container (the hook failed, so the store has no endpoint for it)
// and no lease (the next container gets the first address). Repeated,
// because the kill lands a little after the event: sometimes before the
// rename, sometimes after.
func TestPrivilegedKilledMidAttach(t *testing.T) {
	require(t)
	_, u, network := newNetwork(t, "ullk", "10.92.0")
	fs := newFakes(t)
	const tries = 12
	var beforeRename, afterRename, late int
	var misleading []string
	for i := 0; i < tries; i++ {
		f := fs.mustStart(t, fmt.Sprintf("ullk-%d", i))
		stop := make(chan struct{})
		got := onFirstLink(t, f.Pid, stop, u.Kill)
		out, hookErr := u.hook("createRuntime", f.state("", annFor(network)))
		close(stop)
		first := <-got
		if first == "" || hookErr == nil {
			// The kill came too late to matter; undo the attach by hand.
			late++
			if err := u.TryStart(); err != nil && !strings.Contains(err.Error(), "already running") {
				t.Fatal(err)
			}
			u.mustHook(t, "poststop", f, network)
			f.Kill()
			continue
		}
		// The hook's one line must say what happened: underlayd went away.
		if !strings.Contains(out, "underlayd") || strings.Contains(out, "malformed") {
			misleading = append(misleading, out)
		}
		links, err := linksIn(f.Pid)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range links {
			names = append(names, l.Name)
		}
		if len(names) == 1 && isTempName(names[0]) {
			beforeRename++
		} else {
			afterRename++
		}
		if err := u.TryStart(); err != nil {
			t.Fatal(err)
		}
		links, err = linksIn(f.Pid)
		if err != nil {
			t.Fatal(err)
		}
		// The kill may land after the commit (a slow machine): then the
		// store holds the endpoint, and the container must have exactly
		// that interface. Otherwise it must have none.
		row, committed := u.endpointOf(t, network, f.ID)
		switch {
		case committed && len(links) == 1 && links[0].Name == row.IfName && strings.Join(links[0].Addrs, ",") == strings.Join(row.Addresses, ","):
			late++
			u.mustHook(t, "poststop", f, network)
		case committed:
			t.Errorf("try %d: after the restart the store has %s but the container has %+v", i, row, links)
		case len(links) != 0:
			t.Errorf("try %d: killed when %s appeared (container had %v; the hook said %q); after the restart the container still has %+v, which the store does not know",
				i, first, names, out, links)
		}
		if rows := u.mustEndpoints(t); len(rows) != 0 {
			t.Errorf("try %d: endpoints left after the interrupted attach: %v", i, rows)
		}
		f.Kill()
	}
	t.Logf("%d tries: killed before the rename %d times, after it %d times (%d of all tries after the commit or not at all)", tries, beforeRename, afterRename, late)
	if len(misleading) > 0 {
		t.Errorf("underlayd died while answering the hook, which then said %q: want a sentence saying underlayd closed the connection without answering (crashed or restarting), not a protocol error", misleading[0])
	}
	if beforeRename == 0 {
		t.Logf("no kill landed between create and rename this time")
	}
	// Nothing leased: the next container gets the first address.
	c := fs.mustStart(t, "ullk-c")
	u.mustHook(t, "createRuntime", c, network)
	if got, _ := eth0Addr(c.Pid); got != "10.92.0.2/24" {
		t.Errorf("attach after the crashes got %q, want the first address 10.92.0.2/24", got)
	}
}

// Network namespace inodes are reused as soon as a namespace dies. A
// container that died without any detach, whose namespace inode a new
// container then got, must still be recognised as gone: reconciliation
// gives its address back, and its late detach leaves the new container's
// interface alone.
func TestPrivilegedNetnsInodeReused(t *testing.T) {
	require(t)
	_, u, network := newNetwork(t, "ullr", "10.93.0")
	fs := newFakes(t)
	a := fs.mustStart(t, "ullr-a")
	u.mustHook(t, "createRuntime", a, network)
	addrA, _ := eth0Addr(a.Pid)
	inode := a.Inode
	a.Kill() // no poststop, no event

	// The kernel hands out the lowest free namespace inode: keep starting
	// containers until one gets a's.
	var b *fake
	for i := 0; i < 100 && b == nil; i++ {
		f := fs.mustStart(t, fmt.Sprintf("ullr-b%d", i))
		if f.Inode == inode {
			b = f
		}
	}
	if b == nil {
		t.Skipf("no new namespace got inode %d in 100 tries", inode)
	}
	u.mustHook(t, "createRuntime", b, network)
	addrB, err := eth0Addr(b.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a (dead) had %s in namespace %d; %s now has %s in a new namespace with the same inode", addrA, inode, b.ID, addrB)

	// Reconciliation, on demand and at start, must see that a is gone.
	u.MustCLI(t, "endpoint", "prune")
	if row, ok := u.endpointOf(t, network, "ullr-a"); ok {
		t.Errorf("ullr-a died, but after endpoint prune endpoint ls still lists it (%s): its namespace inode now belongs to %s", row, b.ID)
	}
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := u.TryStart(); err != nil {
		t.Fatal(err)
	}
	if row, ok := u.endpointOf(t, network, "ullr-a"); ok {
		t.Errorf("ullr-a died, but after reconciliation endpoint ls still lists it (%s): its namespace inode now belongs to %s", row, b.ID)
	}

	// a's late poststop must not touch b.
	if out, err := u.hook("poststop", a.state("", annFor(network))); err != nil {
		t.Errorf("late detach of a: %v: %s", err, out)
	}
	if got, err := eth0Addr(b.Pid); err != nil || got != addrB {
		t.Errorf("after dead ullr-a's detach, %s's eth0 is gone or changed (%q, %v): the detach went by a reused namespace inode", b.ID, got, err)
	}
	if _, ok := u.endpointOf(t, network, b.ID); !ok {
		t.Errorf("%s is no longer listed", b.ID)
	}
}

// A container whose network namespace vanishes in the middle of its attach
// (its process is killed the moment its interface appears): the hook
// either fails or succeeds, and either way nothing is lost: once
// reconciled (endpoint prune), no endpoint is left and the next container
// gets the first address.
func TestPrivilegedNetnsVanishesMidAttach(t *testing.T) {
	require(t)
	_, u, network := newNetwork(t, "ullv", "10.95.0")
	fs := newFakes(t)
	for i := 0; i < 5; i++ {
		f := fs.mustStart(t, fmt.Sprintf("ullv-%d", i))
		stop := make(chan struct{})
		got := onFirstLink(t, f.Pid, stop, f.Kill)
		out, err := u.hook("createRuntime", f.state("", annFor(network)))
		close(stop)
		<-got
		if f.Alive() {
			t.Fatalf("try %d: the container was not killed mid-attach", i)
		}
		t.Logf("try %d: container killed mid-attach; hook: %v %s", i, err, out)
		u.MustCLI(t, "endpoint", "prune")
		if rows := u.mustEndpoints(t); len(rows) != 0 {
			t.Errorf("try %d: endpoints after the container vanished and a prune: %v", i, rows)
		}
	}
	c := fs.mustStart(t, "ullv-c")
	u.mustHook(t, "createRuntime", c, network)
	if got, _ := eth0Addr(c.Pid); got != "10.95.0.2/24" {
		t.Errorf("next container got %q, want the first address 10.95.0.2/24", got)
	}
}
