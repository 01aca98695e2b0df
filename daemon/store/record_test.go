package store

import (
	"reflect"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

var recordCases = []api.Endpoint{
	{Network: "n", ContainerID: "c", IfName: "eth0", MAC: "02:42:ac:11:00:02", Addresses: []string{"10.0.0.2/24"},
		Gateways: []string{"10.0.0.1"}, NetnsInode: 4026532999, NetnsCookie: 4711, Parent: "eth0.10", State: "attached",
		Created: "2026-11-22T22:54:01.123456789Z"},
	{Network: "dual", Namespace: "k8s.io", ContainerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		IfName: "eth3", Addresses: []string{"10.1.0.9/16", "2001:db8::9/64"}, Gateways: []string{"2001:db8::1"},
		State: "attached", Created: "2026-11-22T22:54:01Z"},
	{Network: "odd", ContainerID: "c", IfName: "eth0", Addresses: []string{"::ffff:10.0.0.1/120"}, TempName: "ul0a1b2c3d4e",
		State: "attached", MAC: "80:00:00:48:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0f:8b:11"},
	{Network: "bare", ContainerID: "c"},
	{Network: "lan", ContainerID: "c", IfName: "eth0", MAC: "02:11:22:33:44:55", Addresses: []string{"10.81.0.102/24"},
		Gateways: []string{"10.81.0.1"}, State: "attached", Created: "2026-12-04T03:08:49Z",
		DHCP: &api.DHCPLease{Name: "web1", Hostname: "web1", ClientID: "ff0102030400041122", Server: "10.81.0.1",
			Router: "10.81.0.1", DNS: []string{"10.81.0.1"}, Domain: "lan.test", Routed: true,
			Obtained: "2026-12-04T03:08:49.1Z", Renew: "2026-12-04T03:09:49.1Z", Rebind: "2026-12-04T03:10:34.1Z",
			Expires: "2026-12-04T03:10:49.1Z", State: "bound"}},
	{Network: "named", ContainerID: "c", IfName: "eth1", State: "attached", CNI: true, Names: []string{"ipv1", "web"}},
}

// What is stored comes back as it was, every field of the layout included,
// and odd values: an IPv4-mapped IPv6 address, a 20-byte IPoIB MAC.
func TestEndpointRecordRoundTrip(t *testing.T) {
	for _, want := range recordCases {
		b, err := encodeEndpoint(want)
		if err != nil {
			t.Fatalf("encode %+v: %v", want, err)
		}
		got, err := decodeEndpoint(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v (%v)\nwant %+v", got, err, want)
		}
	}
}

// Only a record of version recordV1 reads: an empty one, one of another
// version and a JSON one (as development versions wrote) are malformed.
func TestEndpointRecordRefusesOtherForms(t *testing.T) {
	for _, b := range [][]byte{nil, {0x02}, []byte(`{"network":"n","container_id":"c"}`)} {
		if ep, err := decodeEndpoint(b); err != errRecord {
			t.Errorf("decoded %q: %+v (%v), want %v", b, ep, err, errRecord)
		}
	}
}

// Bad input to encode is an error, never a silently dropped address.
func TestEndpointRecordRefuses(t *testing.T) {
	for _, ep := range []api.Endpoint{
		{Network: "n", Addresses: []string{"10.0.0.2"}},
		{Network: "n", Gateways: []string{"nope"}},
		{Network: "n", Created: "yesterday"},
	} {
		if _, err := encodeEndpoint(ep); err == nil {
			t.Errorf("encoded %+v", ep)
		}
	}
}

// Whatever the bytes, decoding returns an error or an endpoint, never
// panics; and every endpoint it returns encodes back to the same bytes.
func FuzzEndpointRecord(f *testing.F) {
	for _, ep := range recordCases {
		b, _ := encodeEndpoint(ep)
		f.Add(b)
	}
	f.Add([]byte{recordV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ep, err := decodeEndpoint(b)
		if err != nil {
			return
		}
		if b[0] != recordV1 {
			t.Fatalf("read a record of version %#x: %+v", b[0], ep)
		}
		again, err := encodeEndpoint(ep)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", ep, err)
		}
		ep2, err := decodeEndpoint(again)
		if err != nil || !reflect.DeepEqual(ep, ep2) {
			t.Fatalf("re-encoded record reads differently:\n%+v\n%+v (%v)", ep, ep2, err)
		}
	})
}
