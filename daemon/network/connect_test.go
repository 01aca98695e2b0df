package network

import (
	"strings"
	"testing"

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
	wantErr(t, err, ErrNotFound, "container nosuch has no underlay endpoint")
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

	// Connected again, then the container stops: both go.
	if _, err := h.m.Connect(api.ConnectRequest{Network: "b", Container: "0123"}); err != nil {
		t.Fatal(err)
	}
	h.stop("default", "0123456789abcdef")
	same(t, "endpoints after stop", h.eps(), none)
}
