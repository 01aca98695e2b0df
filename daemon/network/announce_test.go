package network

import (
	"errors"
	"fmt"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

// A committed endpoint's IPv4 addresses go out of its parent at its own
// MAC (IPv6 ones are the kernel's to announce); an ipvlan in l3 mode, which
// has no ARP, announces nothing; a failed announcement fails no attach.
func TestFakeAnnounce(t *testing.T) {
	h := newFakeHost(t)
	h.k.addLink("eth2", "device", 1500)
	h.create(netReq("lan", "", "10.1.0.0/24", "parent=eth1"),
		api.NetworkCreate{Name: "dual", Driver: "macvlan", Subnets: []string{"10.2.0.0/24", "2001:db8:2::/64"}, IPv6: true,
			Options: map[string]string{"parent": "eth1"}},
		api.NetworkCreate{Name: "v6", Driver: "macvlan", Subnets: []string{"2001:db8:3::/64"}, IPv6: true,
			Options: map[string]string{"parent": "eth1"}},
		netReq("l3", "ipvlan", "10.4.0.0/24", "parent=eth2", "ipvlan_mode=l3"))
	eth1, err := h.k.Lookup("eth1")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		net  string
		want func(ep api.Endpoint) []string
	}{
		{"lan", func(ep api.Endpoint) []string { return []string{fmt.Sprintf("%d %s 10.1.0.2", eth1.Index, ep.MAC)} }},
		{"dual", func(ep api.Endpoint) []string { return []string{fmt.Sprintf("%d %s 10.2.0.2", eth1.Index, ep.MAC)} }},
		{"v6", func(api.Endpoint) []string { return nil }},
		{"l3", func(api.Endpoint) []string { return nil }},
	} {
		h.k.mu.Lock()
		h.k.announced = nil
		h.k.mu.Unlock()
		eps := h.start(on("c-"+c.net, 10+i, c.net))
		h.k.mu.Lock()
		got := h.k.announced
		h.k.mu.Unlock()
		same(t, c.net+": announced", got, c.want(eps[0]))
	}

	h.k.failNext("Announce", errors.New("sendto: no buffer space"))
	eps := h.start(on("c-late", 30, "lan"))
	same(t, "endpoint of an attach whose announcement failed", eps[0].Addresses, []string{"10.1.0.3/24"})
}
