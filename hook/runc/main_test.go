package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

func TestBundleOf(t *testing.T) {
	cases := []struct {
		args   []string
		bundle string
		ok     bool
	}{
		{[]string{"--root", "/run/runc", "--log", "/x.log", "--log-format", "json", "create", "--bundle", "/b", "id"}, "/b", true},
		{[]string{"--systemd-cgroup", "create", "-b", "/b2", "--pid-file", "/p", "id"}, "/b2", true},
		{[]string{"run", "--bundle=/b3", "id"}, "/b3", true},
		{[]string{"create", "id"}, ".", true},
		{[]string{"--root", "/r", "start", "id"}, "", false},
		{[]string{"delete", "--force", "id"}, "", false},
		{[]string{"--version"}, "", false},
	}
	for _, c := range cases {
		b, ok := bundleOf(c.args)
		if b != c.bundle || ok != c.ok {
			t.Errorf("%v: got %q %v", c.args, b, ok)
		}
	}
}

func writeSpec(t *testing.T, spec string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAddHooks(t *testing.T) {
	t.Setenv("UNDERLAY_HOOK", "/usr/local/bin/underlay-hook")
	t.Setenv("UNDERLAY_SOCKET", "/tmp/u.sock")
	p := writeSpec(t, `{"ociVersion":"1.0.2","process":{"args":["sh"]},"annotations":{"io.underlay.network":"n"},
		"hooks":{"createRuntime":[{"path":"/usr/bin/nerdctl","args":["nerdctl","oci-hook","createRuntime"]}]},"x-vendor":{"keep":true}}`)
	if err := addHooks(p); err != nil {
		t.Fatal(err)
	}
	if err := addHooks(p); err != nil { // idempotent
		t.Fatal(err)
	}
	var spec struct {
		Process map[string]any    `json:"process"`
		Vendor  map[string]bool   `json:"x-vendor"`
		Hooks   map[string][]hook `json:"hooks"`
	}
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if !spec.Vendor["keep"] || spec.Process["args"] == nil {
		t.Fatalf("other fields lost: %s", b)
	}
	cr, ps := spec.Hooks["createRuntime"], spec.Hooks["poststop"]
	if len(cr) != 2 || cr[0].Path != "/usr/bin/nerdctl" || cr[1].Path != "/usr/local/bin/underlay-hook" ||
		cr[1].Args[1] != "createRuntime" || !slices.Equal(cr[1].Env, []string{"GOMAXPROCS=1", "UNDERLAY_SOCKET=/tmp/u.sock"}) {
		t.Fatalf("createRuntime hooks: %+v", cr)
	}
	if len(ps) != 1 || ps[0].Args[1] != "poststop" {
		t.Fatalf("poststop hooks: %+v", ps)
	}
}

// The hooks.d file podman and CRI-O read gives the hook the environment
// underlay-runc gives it.
func TestHooksDirEnv(t *testing.T) {
	b, err := os.ReadFile("../../contrib/hooks.d/underlay.json")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Hook struct {
			Env []string `json:"env"`
		} `json:"hook"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.Hook.Env, api.HookEnv) {
		t.Errorf("contrib/hooks.d/underlay.json: env %q, want api.HookEnv %q", h.Hook.Env, api.HookEnv)
	}
}

func TestUnannotatedBundleUntouched(t *testing.T) {
	t.Setenv("UNDERLAY_HOOK", "/usr/local/bin/underlay-hook")
	orig := `{"ociVersion":"1.0.2",  "annotations":{"other":"x"}}`
	p := writeSpec(t, orig)
	if err := addHooks(p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != orig {
		t.Fatalf("rewritten: %s", b)
	}
	if err := addHooks(writeSpec(t, `{"annotations":`)); err == nil {
		t.Fatal("malformed config accepted")
	}
	// Refused with one line, naming what is wrong, not Go's types.
	for spec, want := range map[string]string{
		`{"annotations":{"io.underlay.networks":"pub_net"}}`:                                 "annotation io.underlay.networks is set but io.underlay.network is not",
		`{"annotations":{"io.underlay.ip":"10.0.0.5","io.underlay.name":"web"}}`:             "annotation io.underlay.ip is set but io.underlay.network is not",
		`{"annotations":{"io.underlay.network":5}}`:                                          `"annotations" must map names to strings`,
		`{"annotations":{"io.underlay.network":"n"},"hooks":{"createRuntime":{"path":"x"}}}`: `"hooks" must map stages to lists of hooks`,
		`[1]`: "not a JSON object",
	} {
		err := addHooks(writeSpec(t, spec))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Go ") {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
	// io.underlay.name alone asks for no network: left alone.
	if err := addHooks(writeSpec(t, `{"annotations":{"io.underlay.name":"web"}}`)); err != nil {
		t.Errorf("a name alone: %v", err)
	}
}
