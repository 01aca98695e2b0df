package network

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/store"
	"github.com/underlay/underlay/ipam"
)

// The tests here run the manager on the fake kernel (fakekernel_test.go)
// and a real store, without root, and check what a user would see: the
// error, the interfaces in the containers, the host's links, the leases,
// the endpoints and the intents left behind.

var none []string // what ifs, hostLinks and leased return for nothing

// netReq is a create request; opts are -o key=value pairs.
func netReq(name, driver, subnet string, opts ...string) api.NetworkCreate {
	req := api.NetworkCreate{Name: name, Driver: driver, Options: map[string]string{}}
	if subnet != "" {
		req.Subnets = []string{subnet}
	}
	for _, kv := range opts {
		k, v, _ := strings.Cut(kv, "=")
		req.Options[k] = v
	}
	return req
}

// create creates networks and fails the test if one is refused.
func (h *fakeHost) create(reqs ...api.NetworkCreate) {
	h.t.Helper()
	for _, req := range reqs {
		if _, err := h.m.Create(req); err != nil {
			h.t.Fatalf("create %s: %v", req.Name, err)
		}
	}
}

// on asks to attach container id, whose namespace is pid's, to nets.
func on(id string, pid int, nets ...string) api.AttachRequest {
	req := api.AttachRequest{ContainerID: id, Pid: pid}
	for _, n := range nets {
		req.Networks = append(req.Networks, api.NetworkAttach{Name: n})
	}
	return req
}

// attach runs the prestart hook's request, making pid's namespace first if
// the container has none yet.
func (h *fakeHost) attach(req api.AttachRequest) (api.AttachResponse, error) {
	if !h.k.alive(req.Pid) {
		h.k.container(req.Pid)
	}
	return h.m.Attach(req)
}

// start attaches and fails the test if the attach is refused.
func (h *fakeHost) start(req api.AttachRequest) []api.Endpoint {
	h.t.Helper()
	resp, err := h.attach(req)
	if err != nil {
		h.t.Fatalf("attach %s: %v", req.ContainerID, err)
	}
	return resp.Endpoints
}

// stop runs the poststop hook's detach and waits for the interfaces to go;
// it returns how many endpoints were released.
func (h *fakeHost) stop(ns, id string) int {
	h.t.Helper()
	resp, err := h.m.Detach(api.DetachRequest{Namespace: ns, ContainerID: id})
	if err != nil {
		h.t.Fatalf("detach %s: %v", id, err)
	}
	h.m.Wait()
	return len(resp.Released)
}

// listed fails the test on err, else returns the name of each of vs,
// sorted.
func listed[T any](t *testing.T, vs []T, err error, name func(T) string) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		out = append(out, name(v))
	}
	sort.Strings(out)
	return out
}

// leased lists the addresses the store leases on network.
func (h *fakeHost) leased(network string) []string {
	h.t.Helper()
	ls, err := h.s.Leases(network)
	return listed(h.t, slices.Collect(maps.Keys(ls)), err, netip.Addr.String)
}

// eps lists the endpoints as "network container ifname addresses".
func (h *fakeHost) eps() []string {
	var out []string
	for _, ep := range h.m.Endpoints() {
		out = append(out, strings.Join(append([]string{ep.Network, ep.Container(), ep.IfName}, ep.Addresses...), " "))
	}
	return out
}

// intents lists the temporary names of the intents left in the store.
func (h *fakeHost) intents() []string {
	h.t.Helper()
	in, err := h.s.Intents()
	return listed(h.t, in, err, func(ep api.Endpoint) string { return ep.TempName })
}

// stored lists the links the store says underlayd owns and the networks
// in it, as "link NAME" and "net NAME".
func (h *fakeHost) stored() []string {
	h.t.Helper()
	links, err := h.s.Links()
	owned := listed(h.t, links, err, func(l store.OwnedLink) string { return "link " + l.Name })
	nets, err := h.s.Networks()
	return append(owned, listed(h.t, nets, err, func(n api.Network) string { return "net " + n.Name })...)
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

// wantErr checks that err wraps want and says text.
func wantErr(t *testing.T, err, want error, text string) {
	t.Helper()
	if !errors.Is(err, want) || !strings.Contains(fmt.Sprint(err), text) {
		t.Fatalf("got error %v, want %v saying %q", err, want, text)
	}
}

var errNetlink = errors.New("netlink: no buffer space available")

// An attach that fails at any step leaves nothing: no endpoint, lease,
// intent or interface, and the VLAN parent it made is gone again. A
// bystander on the second network keeps its own. The retry gets the
// addresses the failed attach would have had.
func TestFakeAttachRollback(t *testing.T) {
	for _, c := range []struct {
		name string
		op   string // fails
		skip int    // calls of op that succeed first
		ip2  string // static address on the second network
		want error
	}{
		{"namespace not opened", "OpenPid", 0, "", errNetlink},
		{"parent lookup", "Lookup", 0, "", errNetlink},
		{"VLAN not made again", "CreateVLAN", 0, "", errNetlink},
		{"VLAN made, then not found", "Lookup", 1, "", errNetlink},
		{"intent not recorded", "BeginIntent", 0, "", errNetlink},
		{"interface not created", "CreateSlave", 0, "", errNetlink},
		{"endpoint not committed", "PutEndpoint", 0, "", errNetlink},
		{"second network's interface", "CreateSlave", 1, "", errNetlink},
		{"second network's commit", "PutEndpoint", 1, "", errNetlink},
		{"second network's address taken", "", 0, "10.2.0.2", ErrAddressInUse},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.k.addLink("eth2", "device", 1500)
			h.create(netReq("vlan", "", "10.1.0.0/24", "parent=eth1.10"), netReq("lan", "", "10.2.0.0/24", "parent=eth2"))
			h.start(on("bystander", 1, "lan"))
			// A first container leaves: eth1.10 goes with it, so the
			// attach below makes it again.
			h.start(on("first", 9, "vlan"))
			h.stop("", "first")
			req := on("c", 2, "vlan", "lan")
			req.Networks[1].IP = c.ip2
			if c.op != "" {
				h.k.failAfter(c.op, c.skip, errNetlink)
			}
			_, err := h.attach(req)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			h.m.Wait()
			same(t, "endpoints", h.eps(), []string{"lan bystander eth0 10.2.0.2/24"})
			same(t, "vlan leases", h.leased("vlan"), none)
			same(t, "lan leases", h.leased("lan"), []string{"10.2.0.2"})
			same(t, "intents", h.intents(), none)
			same(t, "interfaces", h.k.ifs(2), none)
			same(t, "host links", h.k.hostLinks(), []string{"eth1", "eth2"})
			same(t, "store", h.stored(), []string{"net lan", "net vlan"})
			h.start(on("c", 2, "vlan", "lan"))
			same(t, "interfaces after retry", h.k.ifs(2), []string{"eth0 10.1.0.2/24", "eth1 10.2.0.3/24"})
			same(t, "host links after retry", h.k.hostLinks(), []string{"eth1", "eth1.10", "eth2"})
		})
	}
}

// An owned VLAN parent stays while an endpoint uses it and goes with the
// last one; a network's removal keeps it while another network's
// container is on it.
func TestFakeOwnedParentLastEndpoint(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("a", "", "10.1.0.0/24", "parent=eth1.10"), netReq("b", "", "10.2.0.0/24", "parent=eth1.10"))
	h.start(on("c1", 1, "a"))
	h.start(on("c2", 2, "a"))
	h.start(on("c3", 3, "b"))
	h.stop("", "c1")
	same(t, "after the first detach", h.k.hostLinks(), []string{"eth1", "eth1.10"})
	h.stop("", "c2")
	if err := h.m.Remove("a"); err != nil {
		t.Fatal(err)
	}
	same(t, "after network a is removed", h.k.hostLinks(), []string{"eth1", "eth1.10"})
	same(t, "c3's interface", h.k.ifs(3), []string{"eth0 10.2.0.2/24"})
	h.stop("", "c3")
	same(t, "after the last detach", h.k.hostLinks(), []string{"eth1"})
	same(t, "store", h.stored(), []string{"net b"})
	h.start(on("c4", 4, "b"))
	same(t, "made again for the next container", h.k.hostLinks(), []string{"eth1", "eth1.10"})
	same(t, "c4's interface", h.k.ifs(4), []string{"eth0 10.2.0.2/24"})
}

// The VLAN made for a network goes with the network when no container
// uses it; one the user made stays through every detach and removal.
func TestFakeParentOnRemove(t *testing.T) {
	for _, c := range []struct {
		name  string
		user  bool // the user made eth1.10
		links []string
	}{
		{"owned", false, []string{"eth1"}},
		{"made by the user", true, []string{"eth1", "eth1.10"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			if c.user {
				h.k.addLink("eth1.10", "vlan", 1500)
			}
			h.create(netReq("a", "", "10.1.0.0/24", "parent=eth1.10"))
			h.start(on("c1", 1, "a"))
			h.stop("", "c1")
			h.start(on("c2", 2, "a"))
			h.stop("", "c2")
			if err := h.m.Remove("a"); err != nil {
				t.Fatal(err)
			}
			same(t, "host links", h.k.hostLinks(), c.links)
			same(t, "store", h.stored(), none)
		})
	}
}

// halfDone writes what an attach cut short by a crash leaves: its intent,
// and its interface in pid's namespace under name (the temporary name, or
// eth0 once renamed).
func (h *fakeHost) halfDone(id string, pid int, addr string, renamed bool) {
	h.t.Helper()
	ns := h.k.container(pid)
	tmp, err := link.NewTempName()
	if err != nil {
		h.t.Fatal(err)
	}
	parent, _ := h.k.Lookup("eth1")
	mac := fmt.Sprintf("02:00:00:00:00:%02x", pid)
	ep := api.Endpoint{Network: "lan", ContainerID: id, IfName: "eth0", MAC: mac, Addresses: []string{addr},
		NetnsInode: ns.Inode, NetnsCookie: ns.Cookie, TempName: tmp, Parent: "eth1",
		Created: time.Now().UTC().Format(time.RFC3339Nano)}
	if err := h.s.BeginIntent(ep); err != nil {
		h.t.Fatal(err)
	}
	name := tmp
	if renamed {
		name = "eth0"
	}
	hw, _ := net.ParseMAC(mac)
	s := link.Slave{Kind: "macvlan", Mode: "bridge", ParentIndex: parent.Index, Name: name, MTU: 1500, MAC: hw,
		Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}}
	if err := h.k.CreateSlave(ns, s); err != nil {
		h.t.Fatal(err)
	}
}

// After a restart and a reconciliation, a live container keeps its
// address, a dead one's is free, and attaches a crash cut short are
// undone: interface, intent and address gone.
func TestFakeRestartReconcile(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
	h.start(on("live", 1, "lan"))
	h.start(on("dead", 2, "lan"))
	h.start(on("other", 3, "lan"))
	h.k.kill(2)
	h.halfDone("half", 4, "10.1.0.5/24", false)
	h.halfDone("renamed", 5, "10.1.0.6/24", true)
	same(t, "intents before the restart", len(h.intents()), 2)
	same(t, "renamed before the restart", h.k.ifs(5), []string{"eth0 10.1.0.6/24"})
	h.restart()
	n, err := h.m.Reconcile()
	if err != nil || n != 1 {
		t.Fatalf("reconcile released %d, %v; want 1", n, err)
	}
	same(t, "endpoints", h.eps(), []string{"lan live eth0 10.1.0.2/24", "lan other eth0 10.1.0.4/24"})
	same(t, "leases", h.leased("lan"), []string{"10.1.0.2", "10.1.0.4"})
	same(t, "live interface", h.k.ifs(1), []string{"eth0 10.1.0.2/24"})
	same(t, "half-done interface", h.k.ifs(4), none)
	same(t, "renamed interface", h.k.ifs(5), none)
	same(t, "intents", h.intents(), none)
	got := h.start(api.AttachRequest{ContainerID: "next", Pid: 6, Networks: []api.NetworkAttach{{Name: "lan", IP: "10.1.0.5"}}})
	same(t, "half-done's address", got[0].Addresses, []string{"10.1.0.5/24"})
	got = h.start(on("after", 7, "lan"))
	same(t, "dead one's address", got[0].Addresses, []string{"10.1.0.3/24"})
}

// lateDelete starts container c again as a new task, in namespace 3, once
// its old task has ended (detached, or only its namespace gone); then the
// old task's delete event arrives.
func lateDelete(detached bool) func(h *fakeHost, req api.AttachRequest) {
	return func(h *fakeHost, req api.AttachRequest) {
		if detached {
			h.stop("default", "c")
		} else {
			h.k.kill(2)
		}
		at := time.Now()
		req.Pid = 3
		h.start(req)
		if err := h.m.ContainerGone("default", "c", at); err != nil {
			h.t.Fatal(err)
		}
	}
}

// Releases that come twice, late or out of order release nothing more,
// and keep what a newer attach made.
func TestFakeReleaseRepeated(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(h *fakeHost, req api.AttachRequest) // after the attach of req
		eps  []string
		ifs  []string // in namespace 2
	}{
		{"detach twice", func(h *fakeHost, _ api.AttachRequest) {
			same(h.t, "first detach", h.stop("default", "c"), 1)
			same(h.t, "second detach", h.stop("default", "c"), 0)
		}, nil, nil},
		{"delete event after detach", func(h *fakeHost, _ api.AttachRequest) {
			h.stop("default", "c")
			if err := h.m.ContainerGone("default", "c", time.Now()); err != nil {
				h.t.Fatal(err)
			}
		}, nil, nil},
		{"late delete event, new task", lateDelete(true), []string{"lan default/c eth0 10.1.0.3/24"}, nil},
		{"late delete event, new task without a detach", lateDelete(false), []string{"lan default/c eth0 10.1.0.3/24"}, nil},
		{"reconcile after detach", func(h *fakeHost, _ api.AttachRequest) {
			h.stop("default", "c")
			if n, err := h.m.ReconcileNetns(); n != 0 || err != nil {
				h.t.Fatalf("reconcile released %d, %v", n, err)
			}
		}, nil, nil},
		{"detach after the namespace died", func(h *fakeHost, _ api.AttachRequest) {
			h.k.kill(2)
			same(h.t, "released", h.stop("default", "c"), 1)
		}, nil, nil},
		{"hook twice", func(h *fakeHost, req api.AttachRequest) {
			first := h.m.Endpoints()
			same(h.t, "second attach", h.start(req), first[1:])
			// Asking again for what it has is the same; asking for
			// something else is refused, not passed over.
			req.Networks[0].IP, req.Networks[0].MAC = "10.1.0.3", strings.ToUpper(first[1].MAC)
			same(h.t, "second attach asking for what it has", h.start(req), first[1:])
			req.Networks[0].IP = "10.1.0.50"
			_, err := h.attach(req)
			wantErr(h.t, err, ErrExists, "is already on network lan as eth0 with 10.1.0.3/24, not 10.1.0.50")
			req.Networks[0].IP, req.Networks[0].MAC = "", "02:00:00:00:00:99"
			_, err = h.attach(req)
			wantErr(h.t, err, ErrExists, "with MAC "+first[1].MAC+", not 02:00:00:00:00:99")
		}, []string{"lan default/c eth0 10.1.0.3/24"}, []string{"eth0 10.1.0.3/24"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
			h.start(on("bystander", 1, "lan"))
			req := on("c", 2, "lan")
			req.Namespace = "default"
			h.start(req)
			c.run(h, req)
			h.m.Wait()
			same(t, "endpoints", h.eps(), append([]string{"lan bystander eth0 10.1.0.2/24"}, c.eps...))
			same(t, "bystander's interface", h.k.ifs(1), []string{"eth0 10.1.0.2/24"})
			same(t, "interfaces", h.k.ifs(2), c.ifs)
			same(t, "leases", len(h.leased("lan")), 1+len(c.eps))
			same(t, "intents", h.intents(), none)
		})
	}
}

// Requests for an address or a MAC that cannot be had are refused with
// the reason, and leave the container with nothing.
func TestFakeAttachRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		na   api.NetworkAttach
		want error
		text string
	}{
		{"address of another container", api.NetworkAttach{Name: "lan", IP: "10.1.0.2"}, ErrAddressInUse, "10.1.0.2"},
		{"address outside the subnet", api.NetworkAttach{Name: "lan", IP: "10.9.0.2"}, ipam.ErrNotInSubnet, "10.9.0.2"},
		{"gateway address", api.NetworkAttach{Name: "lan", IP: "10.1.0.1"}, ipam.ErrReserved, "10.1.0.1"},
		{"not an address", api.NetworkAttach{Name: "lan", IP: "10.1.0"}, ErrInvalid, `static address "10.1.0"`},
		{"IPv6 on an IPv4 network", api.NetworkAttach{Name: "lan", IP6: "fd00::2"}, ErrInvalid, "has no IPv6 subnet"},
		{"bad MAC", api.NetworkAttach{Name: "lan", MAC: "02:00:zz:00:00:01"}, ErrInvalid, "MAC address 02:00:zz:00:00:01"},
		{"MAC of another container", api.NetworkAttach{Name: "lan", MAC: "02:00:00:00:00:01"}, ErrAddressInUse, "MAC address 02:00:00:00:00:01: container bystander (eth0 on network lan) on parent eth1 has it"},
		{"MAC on ipvlan", api.NetworkAttach{Name: "ipv", MAC: "02:00:00:00:00:02"}, ErrInvalid, "ipvlan containers share the parent's MAC"},
		{"exhausted /30", api.NetworkAttach{Name: "tiny"}, ErrExhausted, "10.3.0.0/30"},
		{"passthru parent taken", api.NetworkAttach{Name: "pass"}, ErrParentBusy, "and bystander has it"},
		{"unknown network", api.NetworkAttach{Name: "nope"}, ErrNotFound, "network nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			for _, name := range []string{"eth2", "eth3", "eth4"} {
				h.k.addLink(name, "device", 1500)
			}
			h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"), netReq("ipv", "ipvlan", "10.2.0.0/24", "parent=eth2"),
				netReq("tiny", "", "10.3.0.0/30", "parent=eth3"), netReq("pass", "", "10.4.0.0/24", "parent=eth4", "macvlan_mode=passthru"))
			by := api.AttachRequest{ContainerID: "bystander", Pid: 1, Networks: []api.NetworkAttach{
				{Name: "lan", MAC: "02:00:00:00:00:01"}, {Name: "tiny"}, {Name: "pass"}}}
			h.start(by)
			_, err := h.attach(api.AttachRequest{ContainerID: "c", Pid: 2, Networks: []api.NetworkAttach{c.na}})
			wantErr(t, err, c.want, c.text)
			h.m.Wait()
			same(t, "endpoints", len(h.m.Endpoints()), 3)
			same(t, "interfaces", h.k.ifs(2), none)
			same(t, "leases", [][]string{h.leased("lan"), h.leased("ipv"), h.leased("tiny")},
				[][]string{{"10.1.0.2"}, nil, {"10.3.0.2"}})
			same(t, "intents", h.intents(), none)
		})
	}
}

// A fixed MAC is free again on its parent once its container has left, a
// passthru parent once its one container has, and eth0 in a namespace
// (a pod's, kept) once the container that had it has; even while the
// kernel is slow to delete the old interface.
func TestFakeReuseAfterDetach(t *testing.T) {
	for _, c := range []struct {
		name string
		na   api.NetworkAttach
		pid  int // of the second container; the first's is 1
		ifs  []string
	}{
		{"fixed MAC", api.NetworkAttach{Name: "lan", MAC: "02:00:00:00:00:aa"}, 2, []string{"eth0 10.1.0.2/24"}},
		{"passthru parent", api.NetworkAttach{Name: "pass"}, 2, []string{"eth0 10.4.0.2/24"}},
		{"same namespace", api.NetworkAttach{Name: "lan"}, 1, []string{"eth0 10.1.0.2/24"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.k.addLink("eth4", "device", 1500)
			h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"), netReq("pass", "", "10.4.0.0/24", "parent=eth4", "macvlan_mode=passthru"))
			h.start(api.AttachRequest{ContainerID: "a", Pid: 1, Networks: []api.NetworkAttach{c.na}})
			release := h.k.hold("DeleteSlave")
			go func() { time.Sleep(20 * time.Millisecond); release() }()
			if _, err := h.m.Detach(api.DetachRequest{ContainerID: "a"}); err != nil {
				t.Fatal(err)
			}
			// No Wait: the attach itself must wait for what it needs.
			eps := h.start(api.AttachRequest{ContainerID: "b", Pid: c.pid, Networks: []api.NetworkAttach{c.na}})
			same(t, "interfaces", h.k.ifs(c.pid), c.ifs)
			same(t, "endpoints", h.eps(), []string{c.na.Name + " b eth0 " + strings.Fields(c.ifs[0])[1]})
			if c.na.MAC != "" {
				same(t, "MAC", eps[0].MAC, c.na.MAC)
			}
		})
	}
}

// A network with a container cannot be removed, and says which.
func TestFakeRemoveInUse(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
	h.start(on("c", 1, "lan"))
	wantErr(t, h.m.Remove("lan"), ErrInUse, "c (eth0)")
	same(t, "store", h.stored(), []string{"net lan"})
	same(t, "interfaces", h.k.ifs(1), []string{"eth0 10.1.0.2/24"})
	wantErr(t, h.m.Remove("nope"), ErrNotFound, "network nope")
}

// A detach whose commit fails changes nothing, and can be tried again.
func TestFakeDetachNotCommitted(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
	h.start(on("c", 1, "lan"))
	h.k.failNext("DeleteEndpoints", errNetlink)
	_, err := h.m.Detach(api.DetachRequest{ContainerID: "c"})
	wantErr(t, err, errNetlink, "no buffer space")
	h.m.Wait()
	same(t, "endpoints", h.eps(), []string{"lan c eth0 10.1.0.2/24"})
	same(t, "leases", h.leased("lan"), []string{"10.1.0.2"})
	same(t, "interfaces", h.k.ifs(1), []string{"eth0 10.1.0.2/24"})
	same(t, "intents", h.intents(), none)
	same(t, "released on retry", h.stop("", "c"), 1)
	same(t, "interfaces after retry", h.k.ifs(1), none)
}

// An interface whose deletion after a detach failed keeps its intent, and
// the next start deletes it; its address was free at once.
func TestFakeDeletionFinishedAtRestart(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
	h.start(on("c", 1, "lan"))
	h.k.failNext("DeleteSlave", errNetlink)
	same(t, "released", h.stop("", "c"), 1)
	same(t, "stripped interface", h.k.ifs(1), []string{"eth0"})
	same(t, "intents", len(h.intents()), 1)
	same(t, "leases", h.leased("lan"), none)
	h.restart()
	same(t, "interfaces after restart", h.k.ifs(1), none)
	same(t, "intents after restart", h.intents(), none)
}

// A namespace whose inode the kernel gave to a new namespace is dead: the
// cookie says so. Its endpoint is released and the new namespace's
// interfaces are not touched.
func TestFakeReconcileReusedInode(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
	h.start(on("old", 1, "lan"))
	h.k.reuse(1)
	ns, _ := h.k.OpenPid(1)
	eth1, _ := h.k.Lookup("eth1")
	mac, _ := net.ParseMAC("02:00:00:00:00:99")
	if err := h.k.CreateSlave(ns, link.Slave{Kind: "macvlan", ParentIndex: eth1.Index, Name: "eth0", MTU: 1500, MAC: mac,
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}); err != nil {
		t.Fatal(err)
	}
	if n, err := h.m.Reconcile(); n != 1 || err != nil {
		t.Fatalf("reconcile released %d, %v; want 1", n, err)
	}
	h.m.Wait()
	same(t, "endpoints", h.eps(), none)
	same(t, "leases", h.leased("lan"), none)
	same(t, "new namespace's interface", h.k.ifs(1), []string{"eth0 192.0.2.1/24"})
}

// The endpoints of an owned parent are counted again at start: it stays
// while one is left and goes with the last.
func TestFakeOwnedParentAcrossRestart(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1.10"))
	h.start(on("c1", 1, "lan"))
	h.start(on("c2", 2, "lan"))
	h.restart()
	h.stop("", "c1")
	same(t, "after the first detach", h.k.hostLinks(), []string{"eth1", "eth1.10"})
	h.stop("", "c2")
	same(t, "after the last detach", h.k.hostLinks(), []string{"eth1"})
	same(t, "store", h.stored(), []string{"net lan"})
}

// An address the driver holds that no endpoint backs (a shared driver's
// commit that a crash kept from the store) is released by the next
// reconciliation; the endpoints' own stay.
func TestFakeReconcileReleasesUnbacked(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
	h.start(on("c", 1, "lan"))
	st, err := h.m.network("lan")
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	err = st.addrs.Hold(ipam.Owner{Network: "lan", Container: "gone"}, netip.MustParseAddr("10.1.0.77"))
	st.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Reconcile(); err != nil {
		t.Fatal(err)
	}
	var held []string
	st.mu.Lock()
	st.addrs.Held(func(_ ipam.Owner, a netip.Addr) { held = append(held, a.String()) })
	st.mu.Unlock()
	same(t, "held after reconcile", held, []string{"10.1.0.2"})
	same(t, "leases", h.leased("lan"), []string{"10.1.0.2"})
}

// A reconciliation while an attach is between its lease and its commit
// must not take that lease back: the next container would get the same
// address.
func TestFakeReconcileDuringAttach(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"))
	release := h.k.hold("CreateSlave")
	done := make(chan error, 1)
	h.k.container(1)
	go func() { _, err := h.m.Attach(on("slow", 1, "lan")); done <- err }()
	for {
		st, _ := h.m.network("lan")
		st.mu.Lock()
		p := st.pending
		st.mu.Unlock()
		if p > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond) // past the lease, into the kernel work
	if _, err := h.m.Reconcile(); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	other := h.start(on("other", 2, "lan"))
	same(t, "slow container", h.k.ifs(1), []string{"eth0 10.1.0.2/24"})
	same(t, "next container", other[0].Addresses, []string{"10.1.0.3/24"})
}
