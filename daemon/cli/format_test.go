package main

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

// --format as docker reads it: table, json, a template, and "table ..."
// with headers named after the fields.
func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		in, head string
		table    bool
		json     bool
		tmpl     bool
	}{
		{"", "", true, false, false},
		{"table", "", true, false, false},
		{"json", "", false, true, false},
		{"{{.Name}}", "", false, false, true},
		{`table {{.Name}}\t{{.Driver}}`, "NAME\tDRIVER", true, false, true},
		{`table {{join .Addresses ","}} {{.ContainerID}}`, "ADDRESSES CONTAINER ID", true, false, true},
		{`table {{.InUse}}/{{.Free}}`, "IN USE/FREE", true, false, true},
	} {
		o, err := parseFormat(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if o.head != c.head || o.table != c.table || o.json != c.json || (o.tmpl != nil) != c.tmpl {
			t.Errorf("%q: got head %q table %v json %v template %v", c.in, o.head, o.table, o.json, o.tmpl != nil)
		}
	}
	if _, err := parseFormat("yaml"); fmt.Sprint(err) != `--format "yaml": want table, json or a Go template such as '{{.Name}}'` {
		t.Errorf("a template without an action: got %v", err)
	}
	if _, err := parseFormat("{{.Name"); err == nil || !strings.HasPrefix(err.Error(), "--format: ") {
		t.Errorf("a broken template: got %v, want a --format error", err)
	}
}

func TestNetworkRowUsage(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := networkRow{api.Network{Usage: []api.SubnetUsage{{Subnet: "10.0.0.0/24", InUse: 3, Free: f(250)},
		{Subnet: "fd00::/64", InUse: 2, Free: f(math.Pow(2, 64) - 3)}, {Subnet: "10.0.1.0/30", InUse: 0, Free: f(1)}}}}
	if n.InUse() != 5 || n.Free() != "251 + 2^64" {
		t.Errorf("dual stack: in use %d, free %s; want 5 and 251 + 2^64", n.InUse(), n.Free())
	}
	n = networkRow{api.Network{Usage: []api.SubnetUsage{{InUse: 3, Free: f(250)}}}}
	if n.Free() != "250" {
		t.Errorf("v4: free %s, want 250", n.Free())
	}
	n = networkRow{api.Network{Usage: []api.SubnetUsage{{InUse: 1}}}}
	if n.InUse() != 1 || n.Free() != "-" {
		t.Errorf("DHCP (no free count): in use %d, free %s; want 1 and -", n.InUse(), n.Free())
	}
	if got := (networkRow{}).Free(); got != "-" {
		t.Errorf("no subnets: free %s, want -", got)
	}
}

// An event as underlay events prints it by default: what is set, key=value.
func TestEventLine(t *testing.T) {
	for _, c := range []struct {
		e    api.Event
		want string
	}{
		{api.Event{Time: "T", Type: "attach", Network: "lan", Driver: "macvlan", Container: "default/web", IfName: "eth0",
			Addresses: []string{"10.0.0.2/24", "fd00::2/64"}, Result: "ok", Seconds: 0.0012345},
			"T attach network=lan driver=macvlan container=default/web ifname=eth0 addresses=10.0.0.2/24,fd00::2/64 result=ok took=1.235ms"},
		{api.Event{Time: "T", Type: "attach", Network: "lan", Container: "web", Result: "exhausted", Error: `network "lan": pool exhausted`},
			`T attach network=lan container=web result=exhausted error="network \"lan\": pool exhausted"`},
		{api.Event{Time: "T", Type: "reconcile", Path: "reconcile", Result: "ok"}, "T reconcile path=reconcile released=0 result=ok"},
		{api.Event{Time: "T", Type: "dropped", Dropped: 7}, "T dropped dropped=7"},
	} {
		if got := eventLine(c.e); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

// --ipv4=false (Docker 28's IPv6-only network) refuses what would give
// its containers IPv4.
func TestIPv6Only(t *testing.T) {
	for _, c := range []struct {
		req  api.NetworkCreate
		want string
	}{
		{api.NetworkCreate{Subnets: []string{"fd00::/64"}}, ""},
		{api.NetworkCreate{Subnets: []string{"fd00::/64", "10.0.0.0/24"}}, "--ipv4=false with the IPv4 --subnet 10.0.0.0/24"},
		{api.NetworkCreate{}, "--ipv4=false needs an IPv6 --subnet"},
		{api.NetworkCreate{IPAMDriver: "dhcp", Subnets: []string{"fd00::/64"}}, "--ipam-driver dhcp"},
	} {
		err := ipv6Only(c.req)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.req, err, c.want)
		}
	}
}

// A field a row does not have is one line naming it, in the CLI's words.
func TestTemplateNoField(t *testing.T) {
	o, err := parseFormat("table {{.Name}}\t{{.Bogus}}")
	if err != nil {
		t.Fatal(err)
	}
	err = printTemplate(o, []networkRow{{api.Network{Name: "n"}}})
	if err == nil || err.Error() != "--format: no field Bogus (the fields are those --format json shows, as Go names: {{.Name}}, {{.InUse}}, ...)" {
		t.Errorf("unknown field: %v", err)
	}
}
