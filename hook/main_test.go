package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

func TestNamespace(t *testing.T) {
	cases := []struct {
		bundle, id string
		ann        map[string]string
		want       string
	}{
		{"/run/containerd/io.containerd.runtime.v2.task/default/c1", "c1", nil, "default"},
		{"/tmp/x/state/io.containerd.runtime.v2.task/ulrt/web/", "web", nil, "ulrt"},
		{"/run/containerd/io.containerd.runtime.v2.task/k8s.io/other", "c1", nil, ""},
		{"/var/lib/containers/storage/overlay-containers/abc/userdata", "abc", nil, ""},
		{"/somewhere", "c1", map[string]string{"nerdctl/namespace": "moby"}, "moby"},
	}
	for _, c := range cases {
		if got := namespace(state{ID: c.id, Bundle: c.bundle}, c.ann); got != c.want {
			t.Errorf("%s: got %q want %q", c.bundle, got, c.want)
		}
	}
}

func TestRunWithoutAnnotationDoesNothing(t *testing.T) {
	t.Setenv("UNDERLAY_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	err := run([]string{"createRuntime"}, strings.NewReader(`{"id":"c","status":"creating","pid":5,"bundle":"/nonexistent"}`))
	if err != nil {
		t.Fatalf("unannotated container: %v", err)
	}
	// The contract: without io.underlay.network the hook does nothing,
	// even with other io.underlay.* keys (underlay-runc refuses those).
	err = run([]string{"createRuntime"}, strings.NewReader(`{"id":"c","status":"creating","pid":5,"annotations":{"io.underlay.networks":"n"}}`))
	if err != nil {
		t.Fatalf("container with a misspelt key: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	t.Setenv("UNDERLAY_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	cases := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"prestart"}, `{}`, `unknown stage "prestart"`},
		{[]string{"--socket"}, `{}`, "--socket needs a path"},
		{[]string{"--socket=", "poststop"}, `{}`, "--socket= needs a path"},
		{[]string{"--sock", "/x"}, `{}`, "unknown flag --sock"},
		{[]string{"poststop", "createRuntime"}, `{}`, "two stages given"},
		{nil, `{"id":"c","status":"running"}`, `status "running" names none`},
		{nil, `not json`, "malformed OCI state"},
		{nil, `{"status":"creating"}`, "no container id"},
		{nil, strings.Repeat(" ", maxState+1), "larger than"},
		{[]string{"createRuntime"}, `{"id":"c","pid":5,"annotations":{"io.underlay.network":"n"}}`, "underlayd is not running"},
		{[]string{"createRuntime"}, `{"id":"c","pid":5,"annotations":{"io.underlay.network":"n","io.underlay.ip":"x"}}`, "not an IPv4 address"},
	}
	for _, c := range cases {
		err := run(c.args, strings.NewReader(c.stdin))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %.40q: got %v, want %q", c.args, c.stdin, err, c.want)
		}
	}
}

// Runtimes that leave annotations out of the state still have them in the
// bundle's config.json.
func TestAnnotationsFromBundle(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"annotations":{"io.underlay.network":"n"}}`), 0o644)
	ann, err := annotations(state{ID: "c", Bundle: dir})
	if err != nil || ann["io.underlay.network"] != "n" {
		t.Fatalf("%v %v", ann, err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{`), 0o644)
	if _, err := annotations(state{ID: "c", Bundle: dir}); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed config: %v", err)
	}
}

// The requests the hook sends must be what the daemon decodes with
// encoding/json, and a daemon error must come back as its message.
func TestRunSendsRequests(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{}
	mux := http.NewServeMux()
	for _, path := range []string{"/v1/attach", "/v1/detach"} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if strings.Contains(string(b), "busy") {
				w.WriteHeader(409)
				w.Write([]byte(`{"error":"container busy is already attached"}`))
				return
			}
			bodies[path] = b
			w.Write([]byte(`{}`))
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	t.Setenv("UNDERLAY_SOCKET", sock)

	const st = `{"ociVersion":"1.0.2","id":"web","status":"%s","pid":4242,` +
		`"bundle":"/run/containerd/io.containerd.runtime.v2.task/default/web",` +
		`"annotations":{"io.underlay.network":"pub_net","io.underlay.ip":"10.0.0.5","nerdctl/name":"web1"}}`
	if err := run(nil, strings.NewReader(fmt.Sprintf(st, "creating"))); err != nil {
		t.Fatalf("attach: %v", err)
	}
	var attach api.AttachRequest
	want := api.AttachRequest{Namespace: "default", ContainerID: "web", Pid: 4242,
		Networks: []api.NetworkAttach{{Name: "pub_net", IP: "10.0.0.5"}},
		Name:     "web1", Bundle: "/run/containerd/io.containerd.runtime.v2.task/default/web"}
	if err := json.Unmarshal(bodies["/v1/attach"], &attach); err != nil || !reflect.DeepEqual(attach, want) {
		t.Fatalf("attach body %s: %+v %v", bodies["/v1/attach"], attach, err)
	}
	if err := run(nil, strings.NewReader(fmt.Sprintf(st, "stopped"))); err != nil {
		t.Fatalf("detach: %v", err)
	}
	var detach api.DetachRequest
	if err := json.Unmarshal(bodies["/v1/detach"], &detach); err != nil ||
		detach != (api.DetachRequest{Namespace: "default", ContainerID: "web", Pid: 4242}) {
		t.Fatalf("detach body %s: %+v %v", bodies["/v1/detach"], detach, err)
	}
	// --socket wins over $UNDERLAY_SOCKET, before or after the stage.
	t.Setenv("UNDERLAY_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	delete(bodies, "/v1/attach")
	if err := run([]string{"--socket", sock, "createRuntime"}, strings.NewReader(fmt.Sprintf(st, "creating"))); err != nil || bodies["/v1/attach"] == nil {
		t.Fatalf("attach with --socket: %v", err)
	}
	if err := run([]string{"poststop", "--socket=" + sock}, strings.NewReader(fmt.Sprintf(st, "stopped"))); err != nil {
		t.Fatalf("detach with --socket=: %v", err)
	}
	if err := run(nil, strings.NewReader(fmt.Sprintf(st, "stopped"))); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("detach on $UNDERLAY_SOCKET: %v", err)
	}
	t.Setenv("UNDERLAY_SOCKET", sock)

	busy := `{"id":"busy","pid":1,"annotations":{"io.underlay.network":"pub_net"}}`
	if err := run([]string{"createRuntime"}, strings.NewReader(busy)); err == nil || err.Error() != "container busy is already attached" {
		t.Fatalf("daemon error: %v", err)
	}
}

// The hook stays free of encoding/json: linking it costs every container
// start about a millisecond (api/wire.go does the hook's JSON instead).
func TestNoEncodingJSON(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	cmd := exec.Command(gobin, "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "encoding/json" {
			t.Fatal("underlay-hook links encoding/json")
		}
	}
}
