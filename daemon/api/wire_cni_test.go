package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// Configurations as runtimes hand them to underlay-cni: nerdctl's (its
// conflist's plugin with the ips and mac capabilities), a GC's, and
// Multus' with args.
const (
	nerdctlConf = `{"cniVersion":"1.0.0","name":"pub_net","nerdctlID":"4f1b","nerdctlLabels":{},"type":"underlay",` +
		`"network":"pub_net","capabilities":{"ips":true,"mac":true},"runtimeConfig":{"ips":["2001:db8::10/64"],"mac":"02:42:ac:10:56:0a"}}`
	gcConf = `{"cniVersion":"1.1.0","name":"pub_net","type":"underlay","socket":"/run/u.sock",` +
		`"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifname":"net1"}]}`
	multusConf = `{"cniVersion":"0.4.0","name":"vlan30","type":"underlay","args":{"cni":{"ips":["10.30.0.7/24"],"other":1}}}`
	addAnswer  = `{"network":"pub_net","container_id":"c1","ifname":"eth0","mac":"02:42:ac:10:56:0a",` +
		`"addresses":["172.16.86.10/24"],"gateways":["172.16.86.1"],"netns_inode":4026532,"state":"attached","created":"x",` +
		`"dhcp":{"name":"web","client_id":"ff","server":"10.0.0.1","dns":["10.0.0.53"],"domain":"lan","default_route":true,"v6":null},"cni":true}`
)

func TestDecodeCNIConfig(t *testing.T) {
	c, err := DecodeCNIConfig([]byte(nerdctlConf))
	if err != nil || c.Name != "pub_net" || c.Network != "pub_net" || c.CNIVersion != "1.0.0" ||
		!reflect.DeepEqual(c.RuntimeConfig.IPs, []string{"2001:db8::10/64"}) || c.RuntimeConfig.MAC != "02:42:ac:10:56:0a" {
		t.Errorf("nerdctl's configuration: %+v, %v", c, err)
	}
	c, err = DecodeCNIConfig([]byte(gcConf))
	want := []CNIValidAttachment{{"c1", "eth0"}, {"c2", "net1"}}
	if err != nil || c.Socket != "/run/u.sock" || !reflect.DeepEqual(c.ValidAttachments, want) {
		t.Errorf("GC's configuration: %+v, %v", c, err)
	}
	c, err = DecodeCNIConfig([]byte(multusConf))
	if err != nil || !reflect.DeepEqual(c.Args.CNI.IPs, []string{"10.30.0.7/24"}) {
		t.Errorf("args: %+v, %v", c, err)
	}
	for _, bad := range []string{`{"name":1}`, `{"runtimeConfig":{"ips":"10.0.0.1"}}`, `{"args":[]}`,
		`{"cni.dev/valid-attachments":[{"containerID":"c1"},]}`, `{"runtimeConfig":{"ips":["a" "b"]}}`} {
		if _, err := DecodeCNIConfig([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// What the daemon sends for an ADD (an Endpoint, by encoding/json) reads
// back as the fields a CNI result reports.
func TestDecodeCNIAdded(t *testing.T) {
	ep := Endpoint{Network: "pub_net", ContainerID: "c1", IfName: "eth0", MAC: "02:42:ac:10:56:0a",
		Addresses: []string{"172.16.86.10/24", "2001:db8::10/64"}, Gateways: []string{"172.16.86.1"}, NetnsInode: 1 << 40,
		DHCP: &DHCPLease{Name: "web", DNS: []string{"10.0.0.53", "10.0.0.54"}, Domain: "lan", V6: &DHCP6Lease{Mode: "slaac"}},
		CNI:  true, Names: []string{"web"}}
	b, err := json.Marshal(ep)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCNIAdded(b)
	want := CNIAdded{IfName: "eth0", MAC: ep.MAC, Addresses: ep.Addresses, Gateways: ep.Gateways,
		DHCP: &CNIAddedDNS{DNS: ep.DHCP.DNS, Domain: "lan"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, %v; want %+v", got, err, want)
	}
}

// FuzzWireCNI holds underlay-cni's reader and writer to encoding/json, as
// FuzzWireState and FuzzWireEncode do the hook's.
func FuzzWireCNI(f *testing.F) {
	for _, s := range []string{
		nerdctlConf, gcConf, multusConf, addAnswer,
		`{"runtimeConfig":{"ips":["a","b"]},"runtimeConfig":{"ips":[null,null,"c"]},"RuntimeConfig":null}`,
		`{"addresses":["a","b"],"addresses":[],"addresses":[null],"gateways":null}`,
		`{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"x"}],"cni.dev/valid-attachments":[{"ifname":"y"},null]}`,
		`{"dhcp":{"dns":["a"]},"dhcp":{"domain":"d"},"DHCP":{"DNS":null}}`, `{"dhcp":null}`, `{"dhcp":[]}`,
		`{"args":{"cni":{"ips":[1]}}}`, `{"args":{"cni":null,"CNI":{"IPS":["x"]}}}`, `{"ips":[,]}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCNIConfig(b)
		var refC CNIConfig
		refErr := json.Unmarshal(b, &refC)
		agree(t, "configuration", c, err, refC, refErr)

		a, err := DecodeCNIAdded(b)
		var refA CNIAdded
		refErr = json.Unmarshal(b, &refA)
		agree(t, "ADD answer", a, err, refA, refErr)

		// Whatever was read, written back out as the daemon would.
		req := CNIRequest{ContainerID: c.Name, Netns: c.Type, IfName: c.Network, Network: c.Socket,
			IP: c.RuntimeConfig.MAC, IP6: c.CNIVersion, MAC: a.MAC, Name: a.IfName, Hostname: string(b)}
		sameAsJSON(t, EncodeCNIRequest(req), req)
		gc := CNIGC{Network: c.Name}
		for _, v := range c.ValidAttachments {
			gc.Valid = append(gc.Valid, CNIAttachment{ContainerID: v.ContainerID, IfName: v.IfName})
		}
		sameAsJSON(t, EncodeCNIGC(gc), gc)
		gc.Valid = []CNIAttachment{}
		sameAsJSON(t, EncodeCNIGC(gc), gc)
	})
}

func sameAsJSON(t *testing.T, got []byte, v any) {
	t.Helper()
	ref, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ref) {
		t.Fatalf("%T:\nours %s\njson %s", v, got, ref)
	}
}
