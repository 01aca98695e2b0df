package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
}

func TestRunErrors(t *testing.T) {
	t.Setenv("UNDERLAY_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	cases := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"prestart"}, `{}`, `unknown stage "prestart"`},
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
