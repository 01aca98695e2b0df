package network

import (
	"reflect"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

// An endpoint survives its trip through the compact in-memory record
// unchanged: what endpoint ls and inspect show, and what detach stores.
func TestEndpointRecordRoundTrip(t *testing.T) {
	st, err := newState(api.Network{Name: "n", Parent: "ulp0", IPAMDriver: defaultIPAM, Subnets: []api.Subnet{
		{Subnet: "10.1.0.0/24", Gateway: "10.1.0.1"}, {Subnet: "2001:db8::/64", Gateway: "2001:db8::1"}}})
	if err != nil {
		t.Fatal(err)
	}
	base := api.Endpoint{Network: "n", ContainerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		IfName: "eth0", MAC: "02:42:ac:11:00:02", NetnsInode: 4026532999, NetnsCookie: 4711, Parent: "ulp0",
		State: stateAttached, Created: "2026-11-22T22:54:01.123456789Z"}
	for _, tc := range []struct {
		name string
		edit func(*api.Endpoint)
	}{
		{"v4 with gateway", func(ep *api.Endpoint) {
			ep.Addresses, ep.Gateways = []string{"10.1.0.2/24"}, []string{"10.1.0.1"}
		}},
		{"dual stack, containerd namespace, eth3", func(ep *api.Endpoint) {
			ep.Namespace, ep.IfName = "k8s.io", "eth3"
			ep.Addresses, ep.Gateways = []string{"10.1.0.9/24", "2001:db8::9/64"}, []string{"10.1.0.1", "2001:db8::1"}
		}},
		{"second network: no default route", func(ep *api.Endpoint) {
			ep.Addresses = []string{"10.1.0.3/24", "2001:db8::3/64"}
		}},
		{"v6 only routed", func(ep *api.Endpoint) {
			ep.Addresses, ep.Gateways = []string{"10.1.0.4/24", "2001:db8::4/64"}, []string{"2001:db8::1"}
		}},
		{"ipvlan on an IPoIB parent: a 20-byte MAC, an odd name", func(ep *api.Endpoint) {
			ep.MAC = "80:00:00:48:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0f:8b:11"
			ep.IfName, ep.Addresses = "eth16", []string{"10.1.0.7/24"}
		}},
		{"no MAC recorded", func(ep *api.Endpoint) {
			ep.MAC, ep.Addresses = "", []string{"10.1.0.8/24"}
		}},
		{"created with whole seconds", func(ep *api.Endpoint) {
			ep.Created, ep.Addresses = "2026-11-22T22:54:01Z", []string{"10.1.0.6/24"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := base
			tc.edit(&want)
			r := st.record(keyOf(want), want)
			got := st.endpoint(keyOf(want), &r)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip changed the endpoint:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
