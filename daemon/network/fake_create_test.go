package network

import (
	"errors"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Every refused create says why with the right sentinel, and leaves no
// network in the store and no link on the host.
func TestFakeCreateRefused(t *testing.T) {
	lan := netReq("a", "macvlan", "10.1.0.0/24", "parent=eth1")
	ipv := netReq("a", "ipvlan", "10.1.0.0/24", "parent=eth1")
	pass := netReq("a", "macvlan", "10.1.0.0/24", "parent=eth1", "macvlan_mode=passthru")
	for _, c := range []struct {
		name  string
		setup func(h *fakeHost)
		req   api.NetworkCreate
		want  error
		text  string
	}{
		{"ipvlan on a macvlan parent", func(h *fakeHost) { h.create(lan) },
			netReq("b", "ipvlan", "10.2.0.0/24", "parent=eth1"), ErrInvalid, "a parent takes one driver type"},
		{"macvlan on an ipvlan parent", func(h *fakeHost) { h.create(ipv) },
			netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1"), ErrInvalid, "a parent takes one driver type"},
		{"second ipvlan network on a parent", func(h *fakeHost) { h.create(ipv) },
			netReq("b", "ipvlan", "10.2.0.0/24", "parent=eth1"), ErrInvalid, "one ipvlan network per parent"},
		{"bridge beside passthru", func(h *fakeHost) { h.create(pass) },
			netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1"), ErrInvalid, "passthru needs the parent to itself"},
		{"passthru beside bridge", func(h *fakeHost) { h.create(lan) },
			netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1", "macvlan_mode=passthru"), ErrInvalid, "passthru needs the parent to itself"},
		{"overlapping subnet on a parent", func(h *fakeHost) { h.create(lan) },
			netReq("b", "macvlan", "10.1.0.128/25", "parent=eth1"), ErrInvalid, "overlaps 10.1.0.0/24 of network a"},
		{"name taken", func(h *fakeHost) { h.create(lan) },
			netReq("a", "macvlan", "10.2.0.0/24", "parent=eth1"), ErrExists, "network a"},
		{"mtu over the parent's", nil,
			netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1", "mtu=9000"), ErrInvalid, "larger than the MTU 1500 of parent eth1"},
		{"mtu below IPv6's minimum", nil,
			netReq("b", "macvlan", "2001:db8:2::/64", "parent=eth1", "mtu=600"), ErrInvalid, "-o mtu=600 is below IPv6's minimum of 1280"},
		{"mtu over the VLAN base's", nil,
			netReq("b", "macvlan", "10.2.0.0/24", "parent=eth1.10", "mtu=9000"), ErrInvalid, "larger than the MTU 1500 of eth1"},
		{"unknown driver", nil, netReq("b", "bridge", "10.2.0.0/24", "parent=eth1"), ErrInvalid, `unknown driver "bridge"`},
		{"unknown option", nil, netReq("b", "", "10.2.0.0/24", "parent=eth1", "vlan=3"), ErrInvalid, "unknown option -o vlan"},
		{"bad macvlan_mode", nil, netReq("b", "", "10.2.0.0/24", "parent=eth1", "macvlan_mode=l2"), ErrInvalid, `unknown macvlan_mode "l2"`},
		{"bad ipvlan_mode", nil, netReq("b", "ipvlan", "10.2.0.0/24", "parent=eth1", "ipvlan_mode=bridge"), ErrInvalid, `unknown ipvlan_mode "bridge"`},
		{"unknown ipam driver", nil, api.NetworkCreate{Name: "b", Subnets: []string{"10.2.0.0/24"}, IPAMDriver: "whereabouts",
			Options: map[string]string{"parent": "eth1"}}, ErrInvalid, `unknown --ipam-driver "whereabouts"`},
		{"dhcp without a parent", nil, api.NetworkCreate{Name: "b", IPAMDriver: "dhcp"}, ErrInvalid, "--ipam-driver dhcp needs -o parent=IF"},
		{"dhcp with a gateway", nil, api.NetworkCreate{Name: "b", IPAMDriver: "dhcp", Subnets: []string{"10.2.0.0/24"},
			Gateways: []string{"10.2.0.1"}, Options: map[string]string{"parent": "eth1"}}, ErrInvalid, "the DHCP server decides them"},
		{"dhcp on ipvlan l3", nil, api.NetworkCreate{Name: "b", Driver: "ipvlan", IPAMDriver: "dhcp",
			Options: map[string]string{"parent": "eth1", "ipvlan_mode": "l3"}}, ErrInvalid, "needs ipvlan_mode=l2"},
		{"dhcp with a bad ipv6_mode", nil, api.NetworkCreate{Name: "b", IPAMDriver: "dhcp", IPv6: true,
			Options: map[string]string{"parent": "eth1", "ipv6_mode": "static"}}, ErrInvalid, "-o ipv6_mode=static: want dhcpv6"},
		{"ipv6_mode without ipv6", nil, api.NetworkCreate{Name: "b", IPAMDriver: "dhcp",
			Options: map[string]string{"parent": "eth1", "ipv6_mode": "slaac"}}, ErrInvalid, "-o ipv6_mode is for networks with --ipv6"},
		{"bad dhcp_timeout", nil, api.NetworkCreate{Name: "b", IPAMDriver: "dhcp",
			Options: map[string]string{"parent": "eth1", "dhcp_timeout": "soon"}}, ErrInvalid, "-o dhcp_timeout=soon"},
		{"dhcp_timeout without dhcp", nil, netReq("b", "", "10.2.0.0/24", "parent=eth1", "dhcp_timeout=5s"), ErrInvalid,
			"-o dhcp_timeout is for networks with --ipam-driver dhcp"},
		{"no subnet", nil, netReq("b", "", "", "parent=eth1"), ErrInvalid, "at least one --subnet"},
		{"missing parent", nil, netReq("b", "", "10.2.0.0/24", "parent=eth9"), ErrNoParent, "eth9 does not exist"},
		{"VLAN of a missing base", nil, netReq("b", "", "10.2.0.0/24", "parent=eth9.10"), ErrNoParent, "base interface eth9 does not exist"},
		{"VLAN id 0", nil, netReq("b", "", "10.2.0.0/24", "parent=eth1.0"), ErrInvalid, "VLAN id 0 is outside 1-4094"},
		{"VLAN id 4095", nil, netReq("b", "", "10.2.0.0/24", "parent=eth1.4095"), ErrInvalid, "VLAN id 4095 is outside 1-4094"},
		{"loopback parent", nil, netReq("b", "", "10.2.0.0/24", "parent=lo"), ErrInvalid, "loopback interface cannot be a parent"},
		{"macvlan link as parent", func(h *fakeHost) { h.k.addLink("mv0", "macvlan", 1500) },
			netReq("b", "", "10.2.0.0/24", "parent=mv0"), ErrInvalid, "a macvlan cannot be the parent of another"},
		{"kernel without ipvlan", func(h *fakeHost) { h.k.missing["ipvlan"] = true },
			netReq("b", "ipvlan", "10.2.0.0/24", "parent=eth1"), link.ErrUnsupported, "driver ipvlan: ipvlan interfaces are not supported"},
		{"kernel without macvlan, VLAN parent", func(h *fakeHost) { h.k.missing["macvlan"] = true },
			netReq("b", "", "10.2.0.0/24", "parent=eth1.10"), link.ErrUnsupported, "macvlan interfaces are not supported"},
		{"VLAN not created", func(h *fakeHost) { h.k.failNext("CreateVLAN", errNetlink) },
			netReq("b", "", "10.2.0.0/24", "parent=eth1.10"), errNetlink, "no buffer space"},
		{"dummy not created", func(h *fakeHost) { h.k.failNext("CreateDummy", errNetlink) },
			api.NetworkCreate{Name: "b", Internal: true}, errNetlink, "no buffer space"},
		{"ownership not recorded", func(h *fakeHost) { h.k.failNext("PutLink", errNetlink) },
			netReq("b", "", "10.2.0.0/24", "parent=eth1.10"), errNetlink, "record parent eth1.10"},
		{"network not stored after its VLAN", func(h *fakeHost) { h.k.failNext("CreateNetwork", errNetlink) },
			netReq("b", "", "10.2.0.0/24", "parent=eth1.10"), errNetlink, "no buffer space"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			if c.setup != nil {
				c.setup(h)
			}
			links, stored := h.k.hostLinks(), h.stored()
			_, err := h.m.Create(c.req)
			wantErr(t, err, c.want, c.text)
			if c.want == ErrNoParent && errors.Is(err, ErrInvalid) {
				t.Errorf("a missing parent is ErrNoParent, not ErrInvalid too: %v", err)
			}
			same(t, "host links", h.k.hostLinks(), links)
			same(t, "store", h.stored(), stored)
			same(t, "networks", len(h.m.List()), len(stored))
		})
	}
}

// Creates that are allowed, and what they leave on the host and in the
// store.
func TestFakeCreateAccepted(t *testing.T) {
	for _, c := range []struct {
		name  string
		req   api.NetworkCreate
		links []string // host links after
		check func(t *testing.T, h *fakeHost, n api.Network)
	}{
		{"same subnet on another parent", netReq("b", "", "10.1.0.0/24", "parent=eth2"), []string{"eth1", "eth2"},
			func(t *testing.T, h *fakeHost, _ api.Network) {
				same(t, "store", h.stored(), []string{"net a", "net b"})
			}},
		{"ipam default recorded", api.NetworkCreate{Name: "b", Subnets: []string{"10.2.0.0/24"}, IPAMDriver: "default",
			Options: map[string]string{"parent": "eth2"}}, []string{"eth1", "eth2"},
			func(t *testing.T, h *fakeHost, n api.Network) {
				got, _ := h.m.Inspect("b")
				same(t, "ipam driver", []string{n.IPAMDriver, got.IPAMDriver}, []string{"default", "default"})
			}},
		{"VLAN made for NAME.VID", netReq("b", "", "10.2.0.0/24", "parent=eth1.10"), []string{"eth1", "eth1.10", "eth2"},
			func(t *testing.T, h *fakeHost, _ api.Network) {
				got, _ := h.m.Inspect("b")
				same(t, "parent", *got.ParentInfo, api.ParentInfo{Name: "eth1.10", Exists: true, Up: true, Kind: "vlan",
					MTU: 1500, Owned: true, VLAN: 10, Base: "eth1"})
				same(t, "store", h.stored(), []string{"link eth1.10", "net a", "net b"})
			}},
		{"internal macvlan on a dummy", api.NetworkCreate{Name: "b", Internal: true}, nil,
			func(t *testing.T, h *fakeHost, n api.Network) {
				same(t, "parent", n.Parent, "dm-"+n.ID[:12])
				same(t, "host links", h.k.hostLinks(), []string{n.Parent, "eth1", "eth2"})
				same(t, "store", h.stored(), []string{"link " + n.Parent, "net a", "net b"})
			}},
		{"internal ipvlan on a dummy", api.NetworkCreate{Name: "b", Driver: "ipvlan", Internal: true}, nil,
			func(t *testing.T, h *fakeHost, n api.Network) {
				same(t, "parent", n.Parent, "di-"+n.ID[:12])
				same(t, "host links", h.k.hostLinks(), []string{"di-" + n.ID[:12], "eth1", "eth2"})
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.k.addLink("eth2", "device", 1500)
			h.create(netReq("a", "", "10.1.0.0/24", "parent=eth1"))
			n, err := h.m.Create(c.req)
			if err != nil {
				t.Fatal(err)
			}
			if c.links != nil {
				same(t, "host links", h.k.hostLinks(), c.links)
			}
			c.check(t, h, n)
		})
	}
}
