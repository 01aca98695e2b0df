package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

// fakeDaemon answers the CNI routes on a unix socket, recording bodies.
type fakeDaemon struct {
	sock   string
	mu     sync.Mutex
	bodies map[string][]byte
	status int    // non-zero: every CNI call fails with it
	msg    string // and this message
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	d := &fakeDaemon{sock: filepath.Join(t.TempDir(), "u.sock"), bodies: map[string][]byte{}}
	ln, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("GET /v1/networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "pub_net" {
			w.WriteHeader(404)
			w.Write([]byte(`{"error":"network ` + r.PathValue("name") + `: network not found"}`))
			return
		}
		w.Write([]byte(`{"name":"pub_net"}`))
	})
	for _, p := range []string{"add", "del", "check", "gc"} {
		mux.HandleFunc("POST /v1/cni/"+p, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			d.mu.Lock()
			d.bodies[p] = b
			status, msg := d.status, d.msg
			d.mu.Unlock()
			if status != 0 {
				w.WriteHeader(status)
				json.NewEncoder(w).Encode(map[string]string{"error": msg})
				return
			}
			if p == "add" {
				json.NewEncoder(w).Encode(api.Endpoint{Network: "pub_net", IfName: "eth0", MAC: "02:42:ac:10:56:0a",
					Addresses: []string{"172.16.86.10/24", "2001:db8:86::10/64"}, Gateways: []string{"172.16.86.1", "2001:db8:86::1"}})
				return
			}
			w.Write([]byte(`{}`))
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return d
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func invoke(t *testing.T, env map[string]string, conf string) (int, map[string]any) {
	t.Helper()
	var out bytes.Buffer
	code := run(envOf(env), strings.NewReader(conf), &out)
	var v map[string]any
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &v); err != nil {
			t.Fatalf("output is not JSON: %q", out.String())
		}
	}
	return code, v
}

const conf = `{"cniVersion":"1.1.0","name":"pub_net","type":"underlay","capabilities":{"ips":true},"runtimeConfig":{"ips":["2001:db8:86::10/64"]}}`

// ADD passes nerdctl's CNI_ARGS and the ips capability to underlayd and
// answers in the spec's result format.
func TestAdd(t *testing.T) {
	d := newFakeDaemon(t)
	env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "default-" + strings.Repeat("ab", 32),
		"CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0", "UNDERLAY_SOCKET": d.sock,
		"CNI_ARGS": "IgnoreUnknown=1;IP=172.16.86.10;MAC=02:42:ac:10:56:0a;NERDCTL_EXTRA=1"}
	code, res := invoke(t, env, conf)
	if code != 0 {
		t.Fatalf("ADD failed: %v", res)
	}
	var req api.CNIRequest
	json.Unmarshal(d.bodies["add"], &req)
	want := api.CNIRequest{ContainerID: env["CNI_CONTAINERID"], Netns: "/var/run/netns/x", IfName: "eth0", Network: "pub_net",
		IP: "172.16.86.10", IP6: "2001:db8:86::10", MAC: "02:42:ac:10:56:0a"}
	if req != want {
		t.Errorf("request %+v, want %+v", req, want)
	}
	b, _ := json.Marshal(res)
	for _, w := range []string{`"cniVersion":"1.1.0"`, `"interfaces":[{"mac":"02:42:ac:10:56:0a","name":"eth0","sandbox":"/var/run/netns/x"}]`,
		`{"address":"172.16.86.10/24","gateway":"172.16.86.1","interface":0}`, `{"dst":"0.0.0.0/0","gw":"172.16.86.1"}`,
		`{"dst":"::/0","gw":"2001:db8:86::1"}`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("result %s lacks %s", b, w)
		}
	}
}

// Every failure is a CNI error object with a code and the network's name.
func TestErrors(t *testing.T) {
	d := newFakeDaemon(t)
	base := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
		"CNI_IFNAME": "eth0", "UNDERLAY_SOCKET": d.sock}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name   string
		env    map[string]string
		conf   string
		status int
		msg    string
		code   float64
		text   string
	}{
		{"unknown CNI_ARGS key", with("CNI_ARGS", "FOO=1"), conf, 0, "", 4, "unknown key FOO"},
		{"no netns", with("CNI_NETNS", ""), conf, 0, "", 4, "CNI_NETNS is not set"},
		{"bad version", base, `{"cniVersion":"9.9.9","name":"n"}`, 0, "", 1, "cniVersion 9.9.9"},
		{"bad JSON", base, `{`, 0, "", 6, "malformed network configuration on stdin: unexpected end of input"},
		{"wrong type", base, `{"name":"n","runtimeConfig":{"ips":"10.0.0.5"}}`, 0, "", 6, `field "runtimeConfig.ips": want an array, got a string`},
		{"bad address", with("CNI_ARGS", "IP=10.0.0.300"), conf, 0, "", 7, `"10.0.0.300" is not an IP address`},
		{"daemon down", with("UNDERLAY_SOCKET", filepath.Join(t.TempDir(), "none.sock")), conf, 0, "", 11, "network pub_net: ADD: underlayd is not running"},
		{"unknown network", base, conf, 404, "network pub_net: network not found", 7, "network pub_net: network not found"},
		{"address in use", base, conf, 409, "network pub_net: static address 172.16.86.10: address in use", 100, "address in use"},
		{"pool full", base, conf, 507, "network pub_net: no free address", 101, "no free address"},
		{"bad command", with("CNI_COMMAND", "FLY"), conf, 0, "", 4, "CNI_COMMAND=FLY"},
		{"CHECK before 0.4.0", with("CNI_COMMAND", "CHECK"), `{"cniVersion":"0.3.1","name":"pub_net","type":"underlay"}`, 0, "", 2, "CHECK needs cniVersion 0.4.0 or later"},
	}
	for _, c := range cases {
		d.status, d.msg = c.status, c.msg
		code, res := invoke(t, c.env, c.conf)
		if code != 1 || res["code"] != c.code || !strings.Contains(res["msg"].(string), c.text) {
			t.Errorf("%s: exit %d, %v; want code %v and %q", c.name, code, res, c.code, c.text)
		}
	}
}

// DEL succeeds with no netns (nerdctl's poststop); STATUS fails while
// underlayd is down; GC sends the valid attachments; VERSION lists 1.1.0.
func TestVerbs(t *testing.T) {
	d := newFakeDaemon(t)
	env := map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "UNDERLAY_SOCKET": d.sock}
	if code, res := invoke(t, env, conf); code != 0 {
		t.Fatalf("DEL with no netns: %v", res)
	}
	var del api.CNIRequest
	if err := json.Unmarshal(d.bodies["del"], &del); err != nil || del.ContainerID != "c1" || del.Network != "pub_net" || del.Netns != "" {
		t.Errorf("DEL sent %s: want container c1 on pub_net, no netns", d.bodies["del"])
	}
	env["CNI_COMMAND"] = "STATUS"
	if code, res := invoke(t, env, conf); code != 0 {
		t.Fatalf("STATUS with underlayd up: %v", res)
	}
	other := strings.Replace(conf, `"pub_net"`, `"other_net"`, -1)
	if code, res := invoke(t, env, other); code != 1 || res["code"] != float64(50) || !strings.Contains(res["msg"].(string), "network other_net: network not found") {
		t.Fatalf("STATUS of a network underlayd does not have: exit %d, %v", code, res)
	}
	env["UNDERLAY_SOCKET"] = filepath.Join(t.TempDir(), "none.sock")
	if code, res := invoke(t, env, conf); code != 1 || res["code"] != float64(50) || !strings.Contains(res["msg"].(string), "not available") {
		t.Fatalf("STATUS with underlayd down: exit %d, %v", code, res)
	}
	env["UNDERLAY_SOCKET"] = d.sock
	env["CNI_COMMAND"] = "GC"
	gcConf := `{"cniVersion":"1.1.0","name":"pub_net","type":"underlay","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}`
	if code, res := invoke(t, env, gcConf); code != 0 {
		t.Fatalf("GC: %v", res)
	}
	if !strings.Contains(string(d.bodies["gc"]), `"valid":[{"container_id":"c1","ifname":"eth0"}]`) {
		t.Errorf("GC body %s", d.bodies["gc"])
	}
	env["CNI_COMMAND"] = "VERSION"
	if code, res := invoke(t, env, ""); code != 0 || res["cniVersion"] != "1.1.0" {
		t.Fatalf("VERSION: %v", res)
	}
}

// The plugin's output, written without encoding/json, is what json.Marshal
// makes of the same values, for every version's result and any strings.
func FuzzOutput(f *testing.F) {
	f.Add("1.1.0", "eth0", "02:42:ac:10:56:0a", "/var/run/netns/x", "172.16.86.10/24", "172.16.86.1", "lan", 11)
	f.Add("0.3.1", "net1", "", "", "2001:db8::10/64", "2001:db8::1", "", 0)
	f.Add("1.0.0", "e\"<>&\u2028", "\xff", "\x01", "10.0.0.5/8", "10.0.0.1", "\n", -1)
	f.Fuzz(func(t *testing.T, version, ifname, mac, netns, addr, gw, domain string, code int) {
		ep := api.CNIAdded{IfName: ifname, MAC: mac, Addresses: []string{addr, "2001:db8::7/64", "bad"},
			Gateways: []string{gw, "2001:db8::1"}}
		if domain != "" {
			ep.DHCP = &api.CNIAddedDNS{DNS: []string{gw, domain}, Domain: domain}
		}
		for _, r := range []result{newResult(version, ep, netns), newResult(version, api.CNIAdded{}, netns), {}} {
			sameAsJSON(t, r.encode(), r)
		}
		e := errorResult{CNIVersion: version, Code: code, Msg: ifname, Details: domain}
		sameAsJSON(t, e.encode(), e)
		v := versionResult{CNIVersion: version, SupportedVersions: []string{mac, netns}}
		sameAsJSON(t, v.encode(), v)
		sameAsJSON(t, versionResult{}.encode(), versionResult{})
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
