package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// States as runtimes hand them to hooks: runc at createRuntime, crun under
// podman (many annotations, unknown fields) and runc at poststop.
const (
	runcState = `{"ociVersion":"1.0.2-dev","id":"web","status":"created","pid":4242,` +
		`"bundle":"/run/containerd/io.containerd.runtime.v2.task/default/web",` +
		`"annotations":{"io.underlay.network":"pub_net","io.underlay.ip":"10.0.0.5"}}`
	podmanState = `{
  "ociVersion": "1.0.0",
  "id": "3f2a9c1d",
  "status": "created",
  "pid": 12345,
  "bundle": "/var/lib/containers/storage/overlay-containers/3f2a9c1d/userdata",
  "annotations": {
    "io.container.manager": "libpod",
    "io.kubernetes.cri-o.Created": "2024-05-01T10:00:00.000000000Z",
    "io.podman.annotations.autoremove": "FALSE",
    "org.opencontainers.image.stopSignal": "15",
    "io.underlay.network": "pub_net,vlan10",
    "io.underlay.mac.vlan10": "02:42:ac:11:00:02"
  },
  "created": "2024-05-01T10:00:00.1Z",
  "owner": "",
  "rootfs": {"path": "/merged", "readonly": false, "extra": [1, 2.5e-3, -0, true, null, {}]}
}`
	stoppedState = `{"ociVersion":"1.2.0","id":"web","status":"stopped","bundle":"/b"}` + "\n"
)

// refState decodes b as the hook used to, with encoding/json into
// specs.State.
func refState(b []byte) (OCIState, error) {
	var s specs.State
	err := json.Unmarshal(b, &s)
	return OCIState{s.Version, s.ID, string(s.Status), s.Pid, s.Bundle, s.Annotations}, err
}

func TestDecodeOCIState(t *testing.T) {
	ann := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name, in string
		want     OCIState
		err      string // part of the error; empty means success
	}{
		{"runc", runcState, OCIState{"1.0.2-dev", "web", "created", 4242,
			"/run/containerd/io.containerd.runtime.v2.task/default/web",
			ann("io.underlay.network", "pub_net", "io.underlay.ip", "10.0.0.5")}, ""},
		{"podman", podmanState, OCIState{"1.0.0", "3f2a9c1d", "created", 12345,
			"/var/lib/containers/storage/overlay-containers/3f2a9c1d/userdata",
			ann("io.container.manager", "libpod", "io.kubernetes.cri-o.Created", "2024-05-01T10:00:00.000000000Z",
				"io.podman.annotations.autoremove", "FALSE", "org.opencontainers.image.stopSignal", "15",
				"io.underlay.network", "pub_net,vlan10", "io.underlay.mac.vlan10", "02:42:ac:11:00:02")}, ""},
		{"stopped", stoppedState, OCIState{OCIVersion: "1.2.0", ID: "web", Status: "stopped", Bundle: "/b"}, ""},
		{"short escapes", `{"id":"a\"b\\c\/d\b\f\n\r\t"}`, OCIState{ID: "a\"b\\c/d\b\f\n\r\t"}, ""},
		{"unicode escapes", `{"id":"\u00e9\u00E9\u0000\u2028"}`, OCIState{ID: "éé\x00\u2028"}, ""},
		{"surrogate pair", `{"id":"\ud83d\ude00"}`, OCIState{ID: "😀"}, ""},
		{"lone high surrogate", `{"id":"\ud83dx"}`, OCIState{ID: "\uFFFDx"}, ""},
		{"lone low surrogate", `{"id":"\ude00\ude00"}`, OCIState{ID: "\uFFFD\uFFFD"}, ""},
		{"high then letter", `{"id":"\ud83d\u0041"}`, OCIState{ID: "\uFFFDA"}, ""},
		{"high high low", `{"id":"\ud83d\ud83d\ude00"}`, OCIState{ID: "\uFFFD😀"}, ""},
		{"raw UTF-8", `{"id":"héllo 😀"}`, OCIState{ID: "héllo 😀"}, ""},
		{"invalid UTF-8", "{\"id\":\"a\xffb\xed\xa0\x80\xc3\"}", OCIState{ID: "a\uFFFDb\uFFFD\uFFFD\uFFFD\uFFFD"}, ""},
		{"nested unknown", `{"x":{"a":[1,{"b":null},[[]]],"c":"d"},"id":"c","y":[{"id":"no"}]}`, OCIState{ID: "c"}, ""},
		{"nulls", `{"id":"c","pid":null,"status":null,"annotations":null}`, OCIState{ID: "c"}, ""},
		{"empty annotations", `{"id":"c","annotations":{}}`, OCIState{ID: "c", Annotations: ann()}, ""},
		{"null annotation value", `{"annotations":{"a":null}}`, OCIState{Annotations: ann("a", "")}, ""},
		{"last one wins", `{"id":"a","id":"b"}`, OCIState{ID: "b"}, ""},
		{"null keeps a string", `{"id":"a","id":null}`, OCIState{ID: "a"}, ""},
		{"annotations merge", `{"annotations":{"a":"1","b":"2"},"annotations":{"b":"3"}}`, OCIState{Annotations: ann("a", "1", "b", "3")}, ""},
		{"null resets annotations", `{"annotations":{"a":"1"},"annotations":null}`, OCIState{}, ""},
		{"keys fold case", `{"ID":"c","Pid":3,"ſtatus":"created","OCIVERSION":"1"}`, OCIState{ID: "c", Pid: 3, Status: "created", OCIVersion: "1"}, ""},
		{"escaped key", `{"\u0069d":"c"}`, OCIState{ID: "c"}, ""},
		{"whitespace", " \t\r\n{ \"id\" :\n\"c\" , \"pid\"\t:\r7 }\n ", OCIState{ID: "c", Pid: 7}, ""},
		{"top-level null", `null`, OCIState{}, ""},
		{"negative zero pid", `{"pid":-0}`, OCIState{}, ""},
		{"smallest pid", `{"pid":-9223372036854775808}`, OCIState{Pid: -9223372036854775808}, ""},

		{"empty", ``, OCIState{}, "unexpected end of input"},
		{"open brace", `{`, OCIState{}, "unexpected end of input"},
		{"not json", `not json`, OCIState{}, "invalid character 'o' in literal null at offset 1"},
		{"trailing garbage", `{"id":"c"} x`, OCIState{}, "after the top-level value"},
		{"two documents", `{}{}`, OCIState{}, "after the top-level value"},
		{"trailing comma", `{"id":"c",}`, OCIState{}, "looking for an object key"},
		{"missing comma", `{"id":"c" "pid":1}`, OCIState{}, "after an object member"},
		{"missing colon", `{"id" "c"}`, OCIState{}, "after an object key"},
		{"single quotes", `{'id':'c'}`, OCIState{}, "looking for an object key"},
		{"unterminated string", `{"id":"c`, OCIState{}, "unexpected end of input in string"},
		{"bad escape", `{"id":"\x"}`, OCIState{}, "in string escape"},
		{"short \\u", `{"id":"\u12"}`, OCIState{}, `in \u escape`},
		{"bad second \\u", `{"id":"\ud83d\u12G4"}`, OCIState{}, `in \u escape`},
		{"control character", "{\"id\":\"a\tb\"}", OCIState{}, "in string"},
		{"array trailing comma", `{"x":[1,]}`, OCIState{}, "looking for a value"},
		{"bad literal", `{"x":tru}`, OCIState{}, "in literal true"},
		{"leading zero", `{"x":01}`, OCIState{}, "after an object member"},
		{"bare minus", `{"x":-}`, OCIState{}, "in number"},
		{"empty fraction", `{"x":1.}`, OCIState{}, "in number"},
		{"empty exponent", `{"x":1e+}`, OCIState{}, "in number"},
		{"plus sign", `{"x":+1}`, OCIState{}, "looking for a value"},
		{"byte order mark", "\xef\xbb\xbf{}", OCIState{}, "looking for a value"},
		{"id number", `{"id":5}`, OCIState{}, `field "id": want a string, got a number`},
		{"status bool", `{"status":true}`, OCIState{}, `field "status": want a string, got a boolean`},
		{"pid string", `{"pid":"5"}`, OCIState{}, `field "pid": want an integer, got a string`},
		{"pid fraction", `{"pid":1.5}`, OCIState{}, `field "pid": want an integer, got 1.5`},
		{"pid exponent", `{"pid":1e3}`, OCIState{}, `field "pid": want an integer`},
		{"pid too big", `{"pid":9223372036854775808}`, OCIState{}, `field "pid": integer 9223372036854775808 out of range`},
		{"annotations array", `{"annotations":[]}`, OCIState{}, `field "annotations": want an object, got an array`},
		{"annotation number", `{"annotations":{"a":1}}`, OCIState{}, `field "annotations.a": want a string, got a number`},
		{"top-level array", `[]`, OCIState{}, `document: want an object, got an array`},
		{"top-level string", `"x"`, OCIState{}, `want an object, got a string`},
		{"type error then bad syntax", `{"id":[1,}`, OCIState{}, "looking for a value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeOCIState([]byte(c.in))
			ref, refErr := refState([]byte(c.in))
			if (err == nil) != (refErr == nil) {
				t.Fatalf("ours: %v; encoding/json: %v", err, refErr)
			}
			if c.err == "" {
				if err != nil || !reflect.DeepEqual(got, c.want) || !reflect.DeepEqual(got, ref) {
					t.Fatalf("got %#v, %v\nwant %#v\nencoding/json %#v", got, err, c.want, ref)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want an error with %q", err, c.err)
			}
		})
	}
}

// encoding/json allows 10000 levels of nesting; the reader must agree.
func TestDecodeDepth(t *testing.T) {
	for _, n := range []int{maxDepth - 1, maxDepth} {
		in := []byte(`{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
		_, err := DecodeOCIState(in)
		_, refErr := refState(in)
		if (err == nil) != (refErr == nil) {
			t.Errorf("%d arrays in an object: ours %v, encoding/json %v", n, err, refErr)
		}
		if n == maxDepth && (err == nil || !strings.Contains(err.Error(), "nesting deeper than 10000")) {
			t.Errorf("%d arrays in an object: got %v", n, err)
		}
	}
}

func TestDecodeAnnotations(t *testing.T) {
	const config = `{"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0},` +
		`"args":["sh"],"env":["PATH=/usr/bin"],"cwd":"/"},"root":{"path":"rootfs"},` +
		`"mounts":[{"destination":"/proc","type":"proc","source":"proc"}],` +
		`"annotations":{"io.underlay.network":"n"},"linux":{"namespaces":[{"type":"network"}]}}`
	cases := []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{"config", config, map[string]string{"io.underlay.network": "n"}, ""},
		{"none", `{"process":{}}`, nil, ""},
		{"null", `null`, nil, ""},
		{"truncated", `{`, nil, "unexpected end of input"},
		{"not strings", `{"annotations":{"a":["b"]}}`, nil, `field "annotations.a": want a string, got an array`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeAnnotations([]byte(c.in))
			var ref struct {
				Annotations map[string]string `json:"annotations"`
			}
			refErr := json.Unmarshal([]byte(c.in), &ref)
			if (err == nil) != (refErr == nil) || err == nil && !reflect.DeepEqual(got, ref.Annotations) {
				t.Fatalf("ours %v %v; encoding/json %v %v", got, err, ref.Annotations, refErr)
			}
			if (c.err == "") != (err == nil) || err == nil && !reflect.DeepEqual(got, c.want) ||
				err != nil && !strings.Contains(err.Error(), c.err) {
				t.Fatalf("got %v %v, want %v %q", got, err, c.want, c.err)
			}
		})
	}
}

func TestDecodeError(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{`{"error":"10.0.0.5: address already in use"}`, "10.0.0.5: address already in use", ""},
		{`{"error":"line\nbreak \"quoted\" \u00e9"}` + "\n", "line\nbreak \"quoted\" é", ""},
		{`{"code":409}`, "", ""},
		{`404 page not found`, "", "invalid character 'p' after the top-level value at offset 4"},
		{`"busy"`, "", "document: want an object, got a string at offset 0"},
		{`{"error":409}`, "", `field "error": want a string`},
	}
	for _, c := range cases {
		got, err := decodeError([]byte(c.in))
		if got.Error != c.want || (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: got %q %v, want %q %q", c.in, got.Error, err, c.want, c.err)
		}
	}
}

func TestEncodeRequests(t *testing.T) {
	attach := []struct {
		req  AttachRequest
		want string
	}{
		{AttachRequest{ContainerID: "c"}, `{"container_id":"c","pid":0,"networks":null}`},
		{AttachRequest{Namespace: "default", ContainerID: "web", Pid: 4242, Networks: []NetworkAttach{
			{Name: "pub_net", IP: "10.0.0.5"}, {Name: "v10", IP6: "2001:db8::5", MAC: "02:00:00:00:00:01"}}},
			`{"namespace":"default","container_id":"web","pid":4242,"networks":[{"name":"pub_net","ip":"10.0.0.5"},` +
				`{"name":"v10","ip6":"2001:db8::5","mac":"02:00:00:00:00:01"}]}`},
		{AttachRequest{ContainerID: "q\"\\<>&\x00\x1f\x7f\u2028\u2029é\xff", Pid: -1, Networks: []NetworkAttach{}},
			`{"container_id":"q\"\\\u003c\u003e\u0026\u0000\u001f` + "\x7f" + `\u2028\u2029é\ufffd","pid":-1,"networks":[]}`},
	}
	for _, c := range attach {
		got := EncodeAttachRequest(c.req)
		ref, _ := json.Marshal(c.req)
		if string(got) != c.want || string(got) != string(ref) {
			t.Errorf("attach %+v:\ngot  %s\nwant %s\njson %s", c.req, got, c.want, ref)
		}
	}
	detach := []struct {
		req  DetachRequest
		want string
	}{
		{DetachRequest{ContainerID: "c"}, `{"container_id":"c"}`},
		{DetachRequest{Namespace: "k8s.io", ContainerID: "c", Pid: 7}, `{"namespace":"k8s.io","container_id":"c","pid":7}`},
		{DetachRequest{ContainerID: "\b\f\n\r\t"}, `{"container_id":"\b\f\n\r\t"}`},
	}
	for _, c := range detach {
		got := EncodeDetachRequest(c.req)
		ref, _ := json.Marshal(c.req)
		if string(got) != c.want || string(got) != string(ref) {
			t.Errorf("detach %+v:\ngot  %s\nwant %s\njson %s", c.req, got, c.want, ref)
		}
	}
}
