package network

import (
	"fmt"
	"sync"
	"testing"

	"github.com/underlay/underlay/daemon/link"
)

// fakeNames records which namespaces have a name server.
type fakeNames struct {
	mu      sync.Mutex
	serving map[uint64]bool
}

func (f *fakeNames) Serve(ns *link.Netns) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serving[ns.Inode] = true
	return nil
}

func (f *fakeNames) Stop(inode uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.serving, inode)
}

// Names resolve for the containers that share a network, with aliases;
// each container has a name server from its first endpoint on a network
// with DNS to the release of its last; a restart keeps the names.
func TestFakeDNSNames(t *testing.T) {
	h := newFakeHost(t)
	names := &fakeNames{serving: map[uint64]bool{}}
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
	inode := func(id string) uint64 {
		for _, ep := range h.m.Endpoints() {
			if ep.ContainerID == id {
				return ep.NetnsInode
			}
		}
		return 0
	}
	i1, i2, i3 := inode("c1"), inode("c2"), inode("c3")
	resolve := func(asker uint64, name string) string {
		addrs, known := h.m.Resolve(asker, name)
		return fmt.Sprint(addrs, known)
	}
	same(t, "ipv1 asks for ipv2", resolve(i1, "ipv2"), "[10.1.0.3] true")
	same(t, "ipv1 asks for the alias db", resolve(i1, "db"), "[10.1.0.3] true")
	same(t, "ipv3 asks for ipv1 (another network)", resolve(i3, "ipv1"), "[] true")
	same(t, "ipv1 asks for hush (dns=false)", resolve(i1, "hush"), "[] false")
	same(t, "name servers", fmt.Sprint(len(names.serving), names.serving[inode("c4")]), "3 false")

	h.restart()
	h.m.SetNameServer(names)
	same(t, "after a restart", resolve(i1, "ipv2"), "[10.1.0.3] true")
	eventually(t, func() bool { names.mu.Lock(); defer names.mu.Unlock(); return len(names.serving) == 3 })
	h.stop("", "c2")
	same(t, "ipv2 after its detach", resolve(i1, "ipv2"), "[] false")
	same(t, "c2's name server after its detach", fmt.Sprint(names.serving[i2]), "false")
}
