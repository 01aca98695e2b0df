package network

import (
	"errors"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// ipvlan l3/l3s routes out of the container's own interface, but the
// gateway stays the IPAM's, as in Docker: the inferred one (the seed's l3
// container is .2) or the given one (the router's own address, which a
// container must never get) is never handed out, and never routed.
func TestFakeIpvlanL3KeepsTheGatewayOutOfThePool(t *testing.T) {
	h := newFakeHost(t)
	h.k.addLink("eth2", "device", 1500)
	h.create(netReq("ipvlan120", "ipvlan", "192.168.120.0/24", "parent=eth1", "ipvlan_mode=l3"),
		api.NetworkCreate{Name: "ipnet110", Driver: "ipvlan", IPv6: true,
			Subnets:  []string{"192.168.112.0/24", "2001:db8:abc6::/64"},
			Gateways: []string{"192.168.112.254", "2001:db8:abc6::1"},
			Options:  map[string]string{"parent": "eth2", "ipvlan_mode": "l3s"}})

	ep := h.start(on("c1", 11, "ipvlan120"))[0]
	same(t, "first l3 container (seed: src 192.168.120.2)", ep.Addresses, []string{"192.168.120.2/24"})
	same(t, "l3 gateways routed", ep.Gateways, []string(nil))

	ep = h.start(on("c2", 12, "ipnet110"))[0]
	same(t, "first l3s container with given gateways", ep.Addresses, []string{"192.168.112.1/24", "2001:db8:abc6::2/64"})
	same(t, "l3s gateways routed", ep.Gateways, []string(nil))

	for i, c := range []struct{ net, ip, ip6 string }{
		{"ipvlan120", "192.168.120.1", ""}, {"ipnet110", "192.168.112.254", ""}, {"ipnet110", "", "2001:db8:abc6::1"},
	} {
		req := on("c-static", 20+i, c.net)
		req.Networks[0].IP, req.Networks[0].IP6 = c.ip, c.ip6
		if _, err := h.attach(req); !errors.Is(err, ipam.ErrReserved) {
			t.Errorf("static %s%s on %s: %v, want the gateway refused", c.ip, c.ip6, c.net, err)
		}
	}
}
