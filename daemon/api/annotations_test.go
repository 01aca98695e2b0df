package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseAnnotations(t *testing.T) {
	cases := []struct {
		name string
		ann  map[string]string
		want []NetworkAttach
		err  string
	}{
		{"none", map[string]string{"other": "x"}, nil, "no io.underlay.network"},
		{"one", map[string]string{"io.underlay.network": "pub_net"}, []NetworkAttach{{Name: "pub_net"}}, ""},
		{"static for first", map[string]string{"io.underlay.network": "a, b", "io.underlay.ip": "10.0.0.5",
			"io.underlay.ip6": "2001:DB8::5", "io.underlay.mac": "02-AA-bb-cc-dd-ee"},
			[]NetworkAttach{{Name: "a", IP: "10.0.0.5", IP6: "2001:db8::5", MAC: "02:aa:bb:cc:dd:ee"}, {Name: "b"}}, ""},
		{"per network", map[string]string{"io.underlay.network": "a,b", "io.underlay.ip.b": "10.1.0.5", "io.underlay.mac.b": "02:00:00:00:00:01"},
			[]NetworkAttach{{Name: "a"}, {Name: "b", IP: "10.1.0.5", MAC: "02:00:00:00:00:01"}}, ""},
		{"same value twice is fine", map[string]string{"io.underlay.network": "a", "io.underlay.ip": "10.0.0.5", "io.underlay.ip.a": "10.0.0.5"},
			[]NetworkAttach{{Name: "a", IP: "10.0.0.5"}}, ""},
		{"conflict", map[string]string{"io.underlay.network": "a", "io.underlay.ip": "10.0.0.5", "io.underlay.ip.a": "10.0.0.6"}, nil, "conflicts"},
		{"empty list", map[string]string{"io.underlay.network": ""}, nil, "empty network name"},
		{"empty item", map[string]string{"io.underlay.network": "a,,b"}, nil, "empty network name"},
		{"duplicate", map[string]string{"io.underlay.network": "a,a"}, nil, "listed twice"},
		{"bad name", map[string]string{"io.underlay.network": "a b"}, nil, "invalid network name"},
		{"v6 as ip", map[string]string{"io.underlay.network": "a", "io.underlay.ip": "2001:db8::1"}, nil, "not an IPv4 address"},
		{"v4 as ip6", map[string]string{"io.underlay.network": "a", "io.underlay.ip6": "10.0.0.1"}, nil, "not an IPv6 address"},
		{"mapped as ip6", map[string]string{"io.underlay.network": "a", "io.underlay.ip6": "::ffff:10.0.0.1"}, nil, "not an IPv6 address"},
		{"bad mac", map[string]string{"io.underlay.network": "a", "io.underlay.mac": "02:00:00:00:00"}, nil, "not a MAC address"},
		{"multicast mac", map[string]string{"io.underlay.network": "a", "io.underlay.mac": "01:00:00:00:00:01"}, nil, "multicast"},
		{"zero mac", map[string]string{"io.underlay.network": "a", "io.underlay.mac": "00:00:00:00:00:00"}, nil, "all-zero"},
		{"unlisted network", map[string]string{"io.underlay.network": "a", "io.underlay.ip.b": "10.0.0.1"}, nil, "names network b, which is not in io.underlay.network"},
		{"unknown key", map[string]string{"io.underlay.network": "a", "io.underlay.vlan": "5"}, nil, "unknown annotation io.underlay.vlan"},
		{"key with a newline", map[string]string{"io.underlay.network": "a", "io.underlay.0\n": "5"}, nil, `unknown annotation "io.underlay.0\n" (known:`},
		{"too many", map[string]string{"io.underlay.network": "a0,a1,a2,a3,a4,a5,a6,a7,a8,a9,b0,b1,b2,b3,b4,b5,b6"}, nil, "at most 16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseAnnotations(c.ann)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("want error %q, got %v", c.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v want %+v", got, c.want)
			}
		})
	}
	if _, err := ParseAnnotations(nil); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("nil annotations: %v", err)
	}
	// The contract: without io.underlay.network, nothing to do, whatever
	// else is there.
	stray := map[string]string{"io.underlay.networks": "a", "io.underlay.mac": "02:00:00:00:00:01"}
	if _, err := ParseAnnotations(stray); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("stray keys, parsed: %v", err)
	}
	// Keys that ask for something, without the network: a typo, which
	// underlay-runc refuses.
	err := StrayAnnotations(stray)
	if err == nil || !strings.Contains(err.Error(), "annotation io.underlay.mac, io.underlay.networks is set but io.underlay.network is not") {
		t.Fatalf("stray keys: %v", err)
	}
	for _, ann := range []map[string]string{nil, {"io.underlay.name": "web", "other": "x"}, {"io.underlay.network": "a", "io.underlay.ip": "10.0.0.5"}} {
		if err := StrayAnnotations(ann); err != nil {
			t.Errorf("%v: %v", ann, err)
		}
	}
}

func FuzzParseAnnotations(f *testing.F) {
	f.Add("a,b", "10.0.0.1", "2001:db8::1", "02:00:00:00:00:01", "io.underlay.ip.b", "10.0.0.2")
	f.Add("", "", "", "", "io.underlay.x", "")
	f.Fuzz(func(t *testing.T, nets, ip, ip6, mac, k, v string) {
		ann := map[string]string{"io.underlay.network": nets, "io.underlay.ip": ip, "io.underlay.ip6": ip6, "io.underlay.mac": mac, k: v}
		got, err := ParseAnnotations(ann)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if len(got) == 0 || len(got) > 16 {
			t.Fatalf("%d networks", len(got))
		}
		seen := map[string]bool{}
		for _, n := range got {
			if ValidName(n.Name) != nil || seen[n.Name] {
				t.Fatalf("bad or duplicate name %q", n.Name)
			}
			seen[n.Name] = true
			if n.MAC != "" {
				if _, err := ParseMAC(n.MAC); err != nil {
					t.Fatalf("accepted bad MAC %q", n.MAC)
				}
			}
		}
	})
}
