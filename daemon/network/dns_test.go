package network

import (
	"fmt"
	"sync"
	"testing"

	"github.com/underlay/underlay/daemon/link"
)

// fakeNames records which containers have a name server.
type fakeNames struct {
	mu      sync.Mutex
	serving map[string]bool
}

func (f *fakeNames) Serve(ns, id string, _ *link.Netns) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serving[ns+"/"+id] = true
	return nil
}

func (f *fakeNames) Stop(ns, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.serving, ns+"/"+id)
}

// Names resolve for the containers that share a network, with aliases;
// each container has a name server from its first endpoint on a network
// with DNS to the release of its last; a restart keeps the names.
func TestFakeDNSNames(t *testing.T) {
	h := newFakeHost(t)
	names := &fakeNames{serving: map[string]bool{}}
	h.m.SetNameServer(names)
	h.create(netReq("a", "macvlan", "10.1.0.0/24", "parent=eth1"), netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1"),
		netReq("q", "macvlan", "10.3.0.0/24", "parent=eth1", "dns=false"))
	named := func(id string, pid int, net, name string) {
		req := on(id, pid, net)
		req.Name = name
		h.start(req)
	}
	named("c1", 101, "a", "ipv1")
	named("c2", 102, "a", "ipv2,db")
	named("c3", 103, "b", "ipv3")
	named("c4", 104, "q", "hush")
	resolve := func(asker, name string) string {
		addrs, known := h.m.Resolve("", asker, name)
		return fmt.Sprint(addrs, known)
	}
	same(t, "ipv1 asks for ipv2", resolve("c1", "ipv2"), "[10.1.0.3] true")
	same(t, "ipv1 asks for the alias db", resolve("c1", "db"), "[10.1.0.3] true")
	same(t, "ipv3 asks for ipv1 (another network)", resolve("c3", "ipv1"), "[] true")
	same(t, "ipv1 asks for hush (dns=false)", resolve("c1", "hush"), "[] false")
	same(t, "name servers", fmt.Sprint(len(names.serving), names.serving["/c4"]), "3 false")

	h.restart()
	h.m.SetNameServer(names)
	same(t, "after a restart", resolve("c1", "ipv2"), "[10.1.0.3] true")
	h.stop("", "c2")
	same(t, "ipv2 after its detach", resolve("c1", "ipv2"), "[] false")
	same(t, "c2's name server after its detach", fmt.Sprint(names.serving["/c2"]), "false")
}
