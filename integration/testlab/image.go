package testlab

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// Busybox is the static busybox the test images and rootfses are made of
// (apt-get install busybox-static).
const Busybox = "/bin/busybox"

// BuildBusyboxImage writes to out a one-layer docker-archive (manifest.json,
// config.json, layer.tar) tagged ref, holding busybox-static with every
// applet linked, which `ctr images import`, `podman load` and `nerdctl load
// -i` read without a registry. It is the Go twin of build_busybox_image in
// integration/scripts/lib.sh.
func BuildBusyboxImage(t testing.TB, out, ref string) {
	t.Helper()
	layer, diffID := busyboxLayer(t)

	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      time.Unix(0, 0).UTC(),
		"config": map[string]any{
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd": []string{"sh"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := json.Marshal([]map[string]any{{
		"Config": "config.json", "RepoTags": []string{ref}, "Layers": []string{"layer.tar"},
	}})
	if err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {"config.json", config}, {"layer.tar", layer}} {
		addFile(t, tw, f.name, 0o644, f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// busyboxLayer returns the layer tar and its diff_id ("sha256:...").
func busyboxLayer(t testing.TB) ([]byte, string) {
	t.Helper()
	bb, err := os.ReadFile(Busybox)
	if err != nil {
		t.Fatalf("read %s: %v", Busybox, err)
	}
	list, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		t.Fatalf("%s --list-full: %v", Busybox, err)
	}
	links := map[string]bool{}
	for _, l := range strings.Fields(string(list)) {
		if l != "bin/busybox" {
			links[l] = true
		}
	}
	for _, want := range []string{"ip", "ping", "sh", "sleep"} {
		if !links["bin/"+want] && !links["sbin/"+want] && !links["usr/bin/"+want] && !links["usr/sbin/"+want] {
			t.Fatalf("%s has no %q applet", Busybox, want)
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin", "dev", "etc", "proc", "root", "run", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var"} {
		addDir(t, tw, d, 0o755)
	}
	addDir(t, tw, "tmp", 0o1777)
	addFile(t, tw, "bin/busybox", 0o755, bb)
	addFile(t, tw, "etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	addFile(t, tw, "etc/group", 0o644, []byte("root:x:0:\n"))
	names := make([]string, 0, len(links))
	for l := range links {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: l, Linkname: "/bin/busybox", Mode: 0o777, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

func addDir(t testing.TB, tw *tar.Writer, name string, mode int64) {
	t.Helper()
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
}

func addFile(t testing.TB, tw *tar.Writer, name string, mode int64, data []byte) {
	t.Helper()
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
}
