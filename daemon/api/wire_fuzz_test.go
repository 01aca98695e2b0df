package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzWireState holds the reader to encoding/json: for any input, both
// accept with equal results or both reject, for the OCI state, a
// config.json's annotations and the daemon's error body.
func FuzzWireState(f *testing.F) {
	for _, s := range []string{
		runcState, podmanState, stoppedState,
		`{"id":"\ud83d\ude00\ud83d\u0041\ude00","pid":-0}`,
		"{\"id\":\"a\xffb\xed\xa0\x80\"}",
		`{"ID":"c","ſtatus":"created","Annotations":{"a":null}}`,
		`{"annotations":{"a":"1"},"annotations":{"b":"2"},"annotations":null,"annotations":{}}`,
		`{"x":[{"y":[1.5e-3,true,false,null,"\/"]},{}],"error":"boom"}`,
		`{"pid":1.5}`, `{"pid":9223372036854775808}`, `{"id":5}`, `{"annotations":[]}`,
		`{"id":"c"} x`, `{"id":"c",}`, `{"id":"\x"}`, "{\"id\":\"\x01\"}", `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeOCIState(b)
		ref, refErr := refState(b)
		agree(t, "state", got, err, ref, refErr)

		ann, err := DecodeAnnotations(b)
		var cfg struct {
			Annotations map[string]string `json:"annotations"`
		}
		refErr = json.Unmarshal(b, &cfg)
		agree(t, "annotations", ann, err, cfg.Annotations, refErr)

		e, err := decodeError(b)
		var refE Error
		refErr = json.Unmarshal(b, &refE)
		agree(t, "error body", e, err, refE, refErr)
	})
}

func agree(t *testing.T, what string, got any, err error, ref any, refErr error) {
	t.Helper()
	if (err == nil) != (refErr == nil) {
		t.Fatalf("%s: ours %v; encoding/json %v", what, err, refErr)
	}
	if err == nil && !reflect.DeepEqual(got, ref) {
		t.Fatalf("%s: ours %#v; encoding/json %#v", what, got, ref)
	}
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Fatalf("%s: error of several lines: %q", what, err)
	}
}

// FuzzWireEncode holds the writer to encoding/json: the same bytes as
// json.Marshal, hence the same values once the daemon decodes them
// (invalid UTF-8 included, which both turn into U+FFFD).
func FuzzWireEncode(f *testing.F) {
	f.Add("default", "web", 4242, "pub_net", "10.0.0.5", "", "02:00:00:00:00:01")
	f.Add("", "q\"\\<>&\x00\x1f\x7f", 0, "\u2028\u2029é", "\xff\xed\xa0\x80", "\xed\xb8\x80", "")
	f.Fuzz(func(t *testing.T, ns, id string, pid int, name, ip, ip6, mac string) {
		reqs := []any{
			AttachRequest{Namespace: ns, ContainerID: id, Pid: pid,
				Networks: []NetworkAttach{{Name: name, IP: ip, IP6: ip6, MAC: mac}, {Name: mac}}, Name: ip6, Bundle: ip},
			AttachRequest{Namespace: ns, ContainerID: id, Pid: pid},
			DetachRequest{Namespace: ns, ContainerID: id, Pid: pid},
		}
		for _, req := range reqs {
			var got []byte
			switch r := req.(type) {
			case AttachRequest:
				got = EncodeAttachRequest(r)
			case DetachRequest:
				got = EncodeDetachRequest(r)
			}
			ref, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, ref) {
				t.Fatalf("%T:\nours %s\njson %s", req, got, ref)
			}
			// Decoded by the daemon, ours gives what encoding/json's gives.
			gotV := reflect.New(reflect.TypeOf(req))
			refV := reflect.New(reflect.TypeOf(req))
			if err := json.Unmarshal(got, gotV.Interface()); err != nil {
				t.Fatalf("%T: %s does not decode: %v", req, got, err)
			}
			json.Unmarshal(ref, refV.Interface())
			if !reflect.DeepEqual(gotV.Interface(), refV.Interface()) {
				t.Fatalf("%T: decodes to %+v, want %+v", req, gotV.Elem(), refV.Elem())
			}
		}
	})
}
