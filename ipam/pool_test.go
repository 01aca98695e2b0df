package ipam

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func TestBuildPools(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []Pool
	}{
		{
			name: "seed: subnet and gateway",
			spec: Spec{Subnets: []string{"172.16.86.0/24"}, Gateways: []string{"172.16.86.1"}},
			want: []Pool{{Subnet: pfx("172.16.86.0/24"), Gateway: ip("172.16.86.1")}},
		},
		{
			name: "seed: gateway inferred for a /25",
			spec: Spec{Subnets: []string{"10.1.100.128/25"}},
			want: []Pool{{Subnet: pfx("10.1.100.128/25"), Gateway: ip("10.1.100.129")}},
		},
		{
			name: "seed: ip-range, gateway from the subnet not the range",
			spec: Spec{Subnets: []string{"192.168.32.0/24"}, Ranges: []string{"192.168.32.128/25"}},
			want: []Pool{{Subnet: pfx("192.168.32.0/24"), Range: pfx("192.168.32.128/25"), Gateway: ip("192.168.32.1")}},
		},
		{
			name: "seed: ip-range with gateway .254 and aux",
			spec: Spec{
				Subnets:  []string{"192.168.32.0/24"},
				Ranges:   []string{"192.168.32.128/25"},
				Gateways: []string{"192.168.32.254"},
				Aux:      []string{"a=192.168.32.129"},
			},
			want: []Pool{{
				Subnet: pfx("192.168.32.0/24"), Range: pfx("192.168.32.128/25"),
				Gateway: ip("192.168.32.254"), Aux: map[string]netip.Addr{"a": ip("192.168.32.129")},
			}},
		},
		{
			name: "seed: two subnets, gateways given in the other order",
			spec: Spec{
				Subnets:  []string{"192.168.216.0/24", "192.168.218.0/24"},
				Gateways: []string{"192.168.218.1", "192.168.216.1"},
			},
			want: []Pool{
				{Subnet: pfx("192.168.216.0/24"), Gateway: ip("192.168.216.1")},
				{Subnet: pfx("192.168.218.0/24"), Gateway: ip("192.168.218.1")},
			},
		},
		{
			name: "seed: dual stack",
			spec: Spec{
				Subnets:  []string{"192.168.216.0/24", "2001:db8:abc8::/64"},
				Gateways: []string{"2001:db8:abc8::10"},
			},
			want: []Pool{
				{Subnet: pfx("192.168.216.0/24"), Gateway: ip("192.168.216.1")},
				{Subnet: pfx("2001:db8:abc8::/64"), Gateway: ip("2001:db8:abc8::10")},
			},
		},
		{
			name: "ipv6 gateway inferred",
			spec: Spec{Subnets: []string{"2001:db8::/64"}},
			want: []Pool{{Subnet: pfx("2001:db8::/64"), Gateway: ip("2001:db8::1")}},
		},
		{
			name: "seed: multi-subnet aux and ranges matched by containment",
			spec: Spec{
				Subnets: []string{"192.168.222.0/24", "192.168.224.0/24", "fd18::/64"},
				Aux:     []string{"exclude1=fd18::2", "exclude2=192.168.222.2", "exclude3=192.168.224.2"},
				Ranges:  []string{"192.168.222.0/25", "192.168.224.0/25"},
			},
			want: []Pool{
				{Subnet: pfx("192.168.222.0/24"), Range: pfx("192.168.222.0/25"), Gateway: ip("192.168.222.1"),
					Aux: map[string]netip.Addr{"exclude2": ip("192.168.222.2")}},
				{Subnet: pfx("192.168.224.0/24"), Range: pfx("192.168.224.0/25"), Gateway: ip("192.168.224.1"),
					Aux: map[string]netip.Addr{"exclude3": ip("192.168.224.2")}},
				{Subnet: pfx("fd18::/64"), Gateway: ip("fd18::1"),
					Aux: map[string]netip.Addr{"exclude1": ip("fd18::2")}},
			},
		},
		{
			name: "no gateway: none inferred, given one dropped",
			spec: Spec{Subnets: []string{"192.168.120.0/24", "fd00::/64"}, Gateways: []string{"192.168.120.1"}, NoGateway: true},
			want: []Pool{{Subnet: pfx("192.168.120.0/24")}, {Subnet: pfx("fd00::/64")}},
		},
		{
			name: "no gateway: aux may take the dropped gateway's address",
			spec: Spec{Subnets: []string{"10.0.0.0/24"}, Gateways: []string{"10.0.0.1"}, Aux: []string{"h=10.0.0.1"}, NoGateway: true},
			want: []Pool{{Subnet: pfx("10.0.0.0/24"), Aux: map[string]netip.Addr{"h": ip("10.0.0.1")}}},
		},
		{
			name: "/30 is the smallest ipv4 subnet",
			spec: Spec{Subnets: []string{"10.0.0.0/30"}},
			want: []Pool{{Subnet: pfx("10.0.0.0/30"), Gateway: ip("10.0.0.1")}},
		},
		{
			name: "ip-range equal to the subnet",
			spec: Spec{Subnets: []string{"10.0.0.0/24"}, Ranges: []string{"10.0.0.0/24"}},
			want: []Pool{{Subnet: pfx("10.0.0.0/24"), Range: pfx("10.0.0.0/24"), Gateway: ip("10.0.0.1")}},
		},
		{
			name: "gateway outside the ip-range, aux inside",
			spec: Spec{Subnets: []string{"10.0.0.0/24"}, Ranges: []string{"10.0.0.64/26"}, Gateways: []string{"10.0.0.1"}, Aux: []string{"x=10.0.0.64"}},
			want: []Pool{{Subnet: pfx("10.0.0.0/24"), Range: pfx("10.0.0.64/26"), Gateway: ip("10.0.0.1"),
				Aux: map[string]netip.Addr{"x": ip("10.0.0.64")}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildPools(tt.spec)
			if err != nil {
				t.Fatalf("BuildPools: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("BuildPools:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildPoolsErrors(t *testing.T) {
	one := []string{"10.0.0.0/24"}
	tests := []struct {
		name string
		spec Spec
		want []string // substrings of the error
	}{
		{"no subnet", Spec{}, []string{"at least one --subnet is required"}},
		{"bad subnet address", Spec{Subnets: []string{"10.0.0/24"}}, []string{`invalid --subnet "10.0.0/24"`, `bad address "10.0.0"`}},
		{"bad subnet length", Spec{Subnets: []string{"10.0.0.0/33"}}, []string{`invalid --subnet "10.0.0.0/33"`, `bad prefix length "33"`}},
		{"subnet without length", Spec{Subnets: []string{"10.0.0.0"}}, []string{`invalid --subnet "10.0.0.0"`, "missing /length"}},
		{"empty subnet", Spec{Subnets: []string{""}}, []string{`invalid --subnet ""`}},
		{"subnet with host bits", Spec{Subnets: []string{"10.1.100.130/25"}}, []string{"invalid --subnet 10.1.100.130/25", "it should be 10.1.100.128/25"}},
		{"ipv4-mapped subnet", Spec{Subnets: []string{"::ffff:10.0.0.0/120"}}, []string{`invalid --subnet "::ffff:10.0.0.0/120"`, "IPv4-mapped"}},
		{"/31", Spec{Subnets: []string{"10.0.0.0/31"}}, []string{"--subnet 10.0.0.0/31 is too small", "/30"}},
		{"/32", Spec{Subnets: []string{"10.0.0.7/32"}}, []string{"--subnet 10.0.0.7/32 is too small"}},
		{"ipv6 /128", Spec{Subnets: []string{"fd00::1/128"}}, []string{"--subnet fd00::1/128 is too small"}},
		{"overlapping subnets", Spec{Subnets: []string{"10.0.0.0/16", "10.0.1.0/24"}}, []string{"--subnet 10.0.1.0/24 overlaps --subnet 10.0.0.0/16"}},
		{"same subnet twice", Spec{Subnets: []string{"10.0.0.0/24", "10.0.0.0/24"}}, []string{"--subnet 10.0.0.0/24 overlaps --subnet 10.0.0.0/24"}},
		{"multicast subnet", Spec{Subnets: []string{"224.1.0.0/24"}}, []string{"--subnet 224.1.0.0/24 is multicast"}},
		{"loopback subnet", Spec{Subnets: []string{"127.0.0.0/24"}}, []string{"--subnet 127.0.0.0/24 is loopback"}},
		{"ipv6 multicast subnet", Spec{Subnets: []string{"ff02::/64"}}, []string{"--subnet ff02::/64 is multicast"}},
		{"ipv6 loopback subnet", Spec{Subnets: []string{"::/120"}}, []string{"--subnet ::/120 is in ::/8"}},
		{"ip-range of the gateway alone", Spec{Subnets: one, Ranges: []string{"10.0.0.1/32"}}, []string{"--ip-range 10.0.0.1/32 holds no address"}},
		{"ip-range of reserved addresses", Spec{Subnets: one, Ranges: []string{"10.0.0.0/31"}, Aux: []string{"h=10.0.0.0"}}, []string{"--ip-range 10.0.0.0/31 holds no address"}},

		{"gateway in no subnet", Spec{Subnets: one, Gateways: []string{"10.0.1.1"}}, []string{"--gateway 10.0.1.1 is not in any --subnet"}},
		{"ipv6 gateway, ipv4 subnet", Spec{Subnets: one, Gateways: []string{"fd00::1"}}, []string{"--gateway fd00::1 is not in any --subnet"}},
		{"bad gateway", Spec{Subnets: one, Gateways: []string{"10.0.0.x"}}, []string{`invalid --gateway "10.0.0.x"`, "not an IP address"}},
		{"gateway with zone", Spec{Subnets: []string{"fe80::/64"}, Gateways: []string{"fe80::1%eth0"}}, []string{`invalid --gateway "fe80::1%eth0"`}},
		{"second gateway", Spec{Subnets: one, Gateways: []string{"10.0.0.1", "10.0.0.254"}}, []string{"second --gateway for subnet 10.0.0.0/24: 10.0.0.254"}},
		{"gateway is network address", Spec{Subnets: one, Gateways: []string{"10.0.0.0"}}, []string{"--gateway 10.0.0.0 is the network address of --subnet 10.0.0.0/24"}},
		{"gateway is broadcast", Spec{Subnets: one, Gateways: []string{"10.0.0.255"}}, []string{"--gateway 10.0.0.255 is the broadcast address of --subnet 10.0.0.0/24"}},
		{"ipv6 gateway is network address", Spec{Subnets: []string{"fd00::/64"}, Gateways: []string{"fd00::"}}, []string{"--gateway fd00:: is the network address"}},
		{"bad gateway with no-gateway", Spec{Subnets: one, Gateways: []string{"10.9.0.1"}, NoGateway: true}, []string{"--gateway 10.9.0.1 is not in any --subnet"}},

		{"ip-range in no subnet", Spec{Subnets: one, Ranges: []string{"10.2.0.0/24"}}, []string{"--ip-range 10.2.0.0/24 is not in any --subnet"}},
		{"ip-range larger than subnet", Spec{Subnets: one, Ranges: []string{"10.0.0.0/16"}}, []string{"--ip-range 10.0.0.0/16 is larger than its --subnet 10.0.0.0/24"}},
		{"ip-range with host bits", Spec{Subnets: one, Ranges: []string{"10.0.0.130/25"}}, []string{"invalid --ip-range 10.0.0.130/25", "it should be 10.0.0.128/25"}},
		{"bad ip-range", Spec{Subnets: one, Ranges: []string{"10.0.0.0/x"}}, []string{`invalid --ip-range "10.0.0.0/x"`, `bad prefix length "x"`}},
		{"second ip-range", Spec{Subnets: one, Ranges: []string{"10.0.0.0/25", "10.0.0.128/25"}}, []string{"second --ip-range for subnet 10.0.0.0/24: 10.0.0.128/25"}},

		{"aux without =", Spec{Subnets: one, Aux: []string{"10.0.0.5"}}, []string{`invalid --aux-address "10.0.0.5": want NAME=IP`}},
		{"aux without name", Spec{Subnets: one, Aux: []string{"=10.0.0.5"}}, []string{`invalid --aux-address "=10.0.0.5"`, "empty NAME"}},
		{"aux bad address", Spec{Subnets: one, Aux: []string{"h=10.0.0.500"}}, []string{`invalid --aux-address "h=10.0.0.500"`, `"10.0.0.500" is not an IP address`}},
		{"aux in no subnet", Spec{Subnets: one, Aux: []string{"h=10.9.0.1"}}, []string{"--aux-address h=10.9.0.1 is not in any --subnet"}},
		{"aux is the given gateway", Spec{Subnets: one, Gateways: []string{"10.0.0.254"}, Aux: []string{"h=10.0.0.254"}}, []string{"--aux-address h=10.0.0.254 is the gateway of --subnet 10.0.0.0/24"}},
		{"aux is the inferred gateway", Spec{Subnets: one, Aux: []string{"h=10.0.0.1"}}, []string{"--aux-address h=10.0.0.1 is the gateway of --subnet 10.0.0.0/24"}},
		{"duplicate aux name", Spec{Subnets: []string{"10.0.0.0/24", "fd00::/64"}, Aux: []string{"h=10.0.0.5", "h=fd00::5"}}, []string{`duplicate --aux-address name "h"`, "10.0.0.5", "fd00::5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools, err := BuildPools(tt.spec)
			if err == nil {
				t.Fatalf("BuildPools = %+v, want an error", pools)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	mk := func(subnets ...string) []Pool {
		ps, err := BuildPools(Spec{Subnets: subnets})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	tests := []struct {
		name   string
		a, b   []Pool
		wa, wb string // empty: no overlap
	}{
		{"disjoint", mk("10.0.0.0/24", "fd00::/64"), mk("10.0.1.0/24", "fd01::/64"), "", ""},
		{"contained", mk("10.0.0.0/16"), mk("192.168.0.0/24", "10.0.5.0/24"), "10.0.0.0/16", "10.0.5.0/24"},
		{"ipv6 equal", mk("10.0.0.0/24", "fd00::/64"), mk("fd00::/64"), "fd00::/64", "fd00::/64"},
		{"families never overlap", mk("10.0.0.0/24"), mk("::/0"), "", ""},
		{"empty", nil, mk("10.0.0.0/24"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, ok := Overlaps(tt.a, tt.b)
			if ok != (tt.wa != "") {
				t.Fatalf("Overlaps = %s, %s, %v", a, b, ok)
			}
			if ok && (a != pfx(tt.wa) || b != pfx(tt.wb)) {
				t.Errorf("Overlaps = %s, %s; want %s, %s", a, b, tt.wa, tt.wb)
			}
		})
	}
}

// What the kernel takes on a LAN is allowed, link-local IPv6 included:
// the seed's IPv6 example is fe90::/64. So is a range of one free address.
func TestBuildPoolsSpecialButUsable(t *testing.T) {
	for _, s := range []Spec{
		{Subnets: []string{"fe90::/64"}, Gateways: []string{"fe90::22"}},
		{Subnets: []string{"10.0.0.0/24"}, Ranges: []string{"10.0.0.2/32"}},
		{Subnets: []string{"100.64.0.0/24", "169.254.0.0/24"}},
		{Subnets: []string{"240.1.0.0/16"}}, // class E: Linux assigns and routes it, some sites use it
	} {
		if _, err := BuildPools(s); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}
