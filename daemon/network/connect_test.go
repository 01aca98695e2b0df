package network

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// connect gives a running container its next ethN on another network,
// with no second default route; disconnect takes it off again; the
// container's own detach releases both.
func TestFakeConnectDisconnect(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("a", "macvlan", "10.1.0.0/24", "parent=eth1"), netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1"),
		netReq("c", "macvlan", "10.4.0.0/24", "parent=eth1"))
	h.start(api.AttachRequest{Namespace: "default", ContainerID: "0123456789abcdef", Pid: 100,
		Networks: []api.NetworkAttach{{Name: "a"}}})
	ep, err := h.m.Connect(api.ConnectRequest{Network: "b", Container: "0123"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.IfName != "eth1" || len(ep.Gateways) != 0 || !strings.HasPrefix(ep.Addresses[0], "10.2.0.") {
		t.Fatalf("connected endpoint %+v: want eth1 on 10.2.0.0/24 with no default route", ep)
	}
	same(t, "interfaces", h.k.ifs(100), []string{"eth0 10.1.0.2/24", "eth1 10.2.0.2/24"})
	_, err = h.m.Connect(api.ConnectRequest{Network: "b", Container: "default/0123456789abcdef"})
	wantErr(t, err, ErrExists, "already on network b (as eth1)")
	_, err = h.m.Connect(api.ConnectRequest{Network: "b", Container: "nosuch"})
	wantErr(t, err, ErrNotFound, "container nosuch: no underlay endpoint, and underlayd follows no containerd to ask")
	_, err = h.m.Connect(api.ConnectRequest{Network: "c", Container: "0123", IP: "10.9.9.9"})
	wantErr(t, err, ipam.ErrNotInSubnet, "static address 10.9.9.9")
	same(t, "interfaces after a refused connect", h.k.ifs(100), []string{"eth0 10.1.0.2/24", "eth1 10.2.0.2/24"})

	if err := h.m.Disconnect(api.ConnectRequest{Network: "b", Container: "0123"}); err != nil {
		t.Fatal(err)
	}
	h.m.Wait()
	same(t, "interfaces after disconnect", h.k.ifs(100), []string{"eth0 10.1.0.2/24"})
	err = h.m.Disconnect(api.ConnectRequest{Network: "b", Container: "0123"})
	wantErr(t, err, ErrNotFound, "is not on network b (it is on a (eth0))")

	// Connected again, by the network's ID as Docker allows, then
	// disconnected by its ID prefix and connected by name; then the
	// container stops: both go.
	b, err := h.m.Inspect("b")
	if err != nil {
		t.Fatal(err)
	}
	if ep, err := h.m.Connect(api.ConnectRequest{Network: b.ID, Container: "0123"}); err != nil || ep.Network != "b" {
		t.Fatalf("connect by ID: %+v, %v", ep, err)
	}
	if err := h.m.Disconnect(api.ConnectRequest{Network: b.ID[:12], Container: "0123"}); err != nil {
		t.Fatalf("disconnect by ID prefix: %v", err)
	}
	h.m.Wait()
	if _, err := h.m.Connect(api.ConnectRequest{Network: "b", Container: "0123"}); err != nil {
		t.Fatal(err)
	}
	h.stop("default", "0123456789abcdef")
	same(t, "endpoints after stop", h.eps(), none)
}

// --pid names a container by its namespace: an unknown one is
// netns-<inode> unless named; one underlay has endpoints in is theirs, so
// the next ethN follows them and poststop releases it too; the host's
// namespace, a gone process and a second name are refused, leaving
// nothing; a dead namespace's endpoint is released by reconciliation, or
// by connecting the container's new one under the same name.
func TestFakeConnectByPid(t *testing.T) {
	h := newFakeHost(t)
	h.create(netReq("a", "macvlan", "10.1.0.0/24", "parent=eth1"), netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1"))
	h.k.container(200)
	unnamed := "netns-4026530200" // the fake's inode of pid 200's namespace

	ep, err := h.m.Connect(api.ConnectRequest{Network: "a", Pid: 200})
	if err != nil {
		t.Fatal(err)
	}
	if ep.ContainerID != unnamed || ep.Namespace != "" || ep.IfName != "eth0" || len(ep.Gateways) != 1 {
		t.Fatalf("connected %+v: want %s's eth0 with the default route", ep, unnamed)
	}
	_, err = h.m.Connect(api.ConnectRequest{Network: "b", Pid: 200, Container: "other"})
	wantErr(t, err, ErrInvalid, "--pid 200 is the network namespace of container "+unnamed+", not other")
	if ep, err = h.m.Connect(api.ConnectRequest{Network: "b", Pid: 200}); err != nil || ep.IfName != "eth1" || ep.ContainerID != unnamed {
		t.Fatalf("second connect by pid: %+v, %v: want %s's eth1", ep, err, unnamed)
	}
	same(t, "interfaces", h.k.ifs(200), []string{"eth0 10.1.0.2/24", "eth1 10.2.0.2/24"})

	for _, c := range []struct {
		req  api.ConnectRequest
		want error
		text string
	}{
		{api.ConnectRequest{Network: "b", Pid: hostPid}, ErrInvalid, "--pid 99999: network namespace of pid 99999 is the host network namespace"},
		{api.ConnectRequest{Network: "b", Pid: 999}, ErrInvalid, "--pid 999: network namespace of pid 999: process is gone"},
		{api.ConnectRequest{Network: "b", Pid: 200, Netns: "/fake/netns/4026530200"}, ErrInvalid, "give one"},
		{api.ConnectRequest{Network: "b", Pid: 300, Container: "a/b/c"}, ErrInvalid, `container id "b/c"`},
		{api.ConnectRequest{Network: "nonet", Pid: 200}, ErrNotFound, "network nonet"},
		{api.ConnectRequest{Network: "b"}, ErrInvalid, "no container named"},
	} {
		h.k.container(300)
		_, err := h.m.Connect(c.req)
		wantErr(t, err, c.want, c.text)
	}
	same(t, "interfaces of pid 300 after refused connects", h.k.ifs(300), none)
	same(t, "endpoints after refused connects", h.eps(), []string{"a " + unnamed + " eth0 10.1.0.2/24", "b " + unnamed + " eth1 10.2.0.2/24"})

	// Disconnect by pid takes that one interface away.
	if err := h.m.Disconnect(api.ConnectRequest{Network: "a", Pid: 200}); err != nil {
		t.Fatal(err)
	}
	h.m.Wait()
	same(t, "interfaces after disconnect --pid", h.k.ifs(200), []string{"eth1 10.2.0.2/24"})
	err = h.m.Disconnect(api.ConnectRequest{Network: "a", Pid: 300})
	wantErr(t, err, ErrNotFound, "container netns-4026530300 has no underlay endpoint")

	// A container the hook attached: --pid finds it, and its poststop
	// releases the connected interface with its own.
	h.start(api.AttachRequest{ContainerID: "hooked", Pid: 500, Networks: []api.NetworkAttach{{Name: "a"}}})
	if ep, err := h.m.Connect(api.ConnectRequest{Network: "b", Pid: 500}); err != nil || ep.ContainerID != "hooked" || ep.IfName != "eth1" {
		t.Fatalf("connect --pid of a hooked container: %+v, %v", ep, err)
	}
	_, err = h.m.Connect(api.ConnectRequest{Network: "b", Pid: 500, Container: "hooked"})
	wantErr(t, err, ErrExists, "container hooked is already on network b (as eth1)")
	if n := h.stop("", "hooked"); n != 2 {
		t.Errorf("poststop released %d endpoints, want 2", n)
	}

	// Named (as the CLI names a podman container: its full id); the
	// container restarts under that id in a new namespace: the dead
	// endpoint goes and the new namespace gets eth0.
	if _, err := h.m.Connect(api.ConnectRequest{Network: "a", Pid: 300, Container: "podmanid"}); err != nil {
		t.Fatal(err)
	}
	h.k.kill(300)
	h.k.container(301)
	if ep, err := h.m.Connect(api.ConnectRequest{Network: "a", Pid: 301, Container: "podmanid"}); err != nil || ep.IfName != "eth0" {
		t.Fatalf("connect after a restart: %+v, %v: want eth0", ep, err)
	}
	same(t, "interfaces after the restart (its address back)", h.k.ifs(301), []string{"eth0 10.1.0.2/24"})

	// Namespaces die: reconciliation releases their endpoints.
	h.k.kill(200)
	h.k.kill(301)
	if n, err := h.m.Reconcile(); err != nil || n != 2 {
		t.Errorf("reconcile released %d, %v: want 2", n, err)
	}
	same(t, "endpoints after reconcile", h.eps(), none)
	same(t, "leases after reconcile", h.leased("a"), none)
}

// fakeFinder is containerd for the manager: containers by "ns/ref".
type fakeFinder map[string]fakeFound

type fakeFound struct {
	id  string
	pid int
	err error
}

func (f fakeFinder) FindContainer(ns, ref string) (string, int, error) {
	c, ok := f[ns+"/"+ref]
	if !ok {
		return "", 0, fmt.Errorf("containerd has no container %s in namespace %s: %w", ref, ns, ErrNotFound)
	}
	return c.id, c.pid, c.err
}

// A containerd container underlay does not know is connected by its
// task's namespace and keyed namespace/id, so containerd's delete
// releases it; a bare name is looked for in namespace default; errors
// say what was tried.
func TestFakeConnectContainerd(t *testing.T) {
	h := newFakeHost(t)
	const id = "c0ffee0123456789"
	h.opts = append(h.opts, WithContainers(fakeFinder{
		"default/web":   {id: id, pid: 600},
		"default/" + id: {id: id, pid: 600},
		"k8s.io/down":   {err: fmt.Errorf("containerd container k8s.io/down is stopped: %w", ErrNotRunning)},
		"default/host":  {id: "hostnet", pid: hostPid},
	}))
	h.restart()
	h.create(netReq("a", "macvlan", "10.1.0.0/24", "parent=eth1"), netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1"))
	h.k.container(600)

	ep, err := h.m.Connect(api.ConnectRequest{Network: "a", Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.Namespace != "default" || ep.ContainerID != id || ep.IfName != "eth0" {
		t.Fatalf("connected %+v: want default/%s eth0", ep, id)
	}
	// By its nerdctl name again, in its namespace: the next ethN.
	if ep, err = h.m.Connect(api.ConnectRequest{Network: "b", Container: "default/web"}); err != nil || ep.IfName != "eth1" {
		t.Fatalf("second connect: %+v, %v: want eth1", ep, err)
	}
	same(t, "interfaces", h.k.ifs(600), []string{"eth0 10.1.0.2/24", "eth1 10.2.0.2/24"})
	if err := h.m.Disconnect(api.ConnectRequest{Network: "b", Container: "web"}); err != nil {
		t.Fatal(err)
	}
	h.m.Wait()
	same(t, "interfaces after disconnect", h.k.ifs(600), []string{"eth0 10.1.0.2/24"})

	for _, c := range []struct {
		ref  string
		want error
		text string
	}{
		{"nosuch", ErrNotFound, "container nosuch: no underlay endpoint, and containerd has no container nosuch in namespace default"},
		{"k8s.io/down", ErrNotRunning, "container k8s.io/down: no underlay endpoint, and containerd container k8s.io/down is stopped"},
		{"host", ErrInvalid, "container host (containerd's pid 99999): network namespace of pid 99999 is the host network namespace"},
		{"a/b/c", ErrInvalid, `container id "b/c"`},
	} {
		_, err := h.m.Connect(api.ConnectRequest{Network: "b", Container: c.ref})
		wantErr(t, err, c.want, c.text)
	}
	same(t, "endpoints after refused connects", h.eps(), []string{"a default/" + id + " eth0 10.1.0.2/24"})

	// containerd deletes the container: its event releases the endpoint.
	if err := h.m.ContainerGone("default", id, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.m.Wait()
	same(t, "endpoints after the delete event", h.eps(), none)
	same(t, "interfaces after the delete event", h.k.ifs(600), none)
}
