package lifecycle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	tl "github.com/underlay/underlay/integration/testlab"
)

// flavor is one containerd: Debian's 1.6 from PATH, or a 2.x built into a
// cache directory.
type flavor struct {
	name string
	// dir holds containerd, ctr and containerd-shim-runc-v2; empty: PATH.
	dir string
	// v3 writes a version 3 config (containerd 2.x).
	v3 bool
}

var debianContainerd = flavor{name: "containerd 1.6 (Debian)"}

// containerd is testlab's private containerd with what these tests ask
// of it: containers from a spec of their own, restarted tasks.
type containerd struct{ *tl.Containerd }

// startContainerd starts containerd of flavor f in dir, its containers in
// namespace ns; testlab removes it all at cleanup.
func startContainerd(t *testing.T, f flavor, dir, ns string) *containerd {
	t.Helper()
	return &containerd{tl.StartContainerd(t, dir, tl.ContainerdOptions{BinDir: f.dir, V3: f.v3, Namespace: ns})}
}

// runSpec is `ctr run -d --config spec.json ID`: a container whose spec is
// exactly the one given, hooks included.
func (c *containerd) runSpec(id string, spec []byte) error {
	path := filepath.Join(c.Dir, id+".json")
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		return err
	}
	_, err := c.Ctr("run", "-d", "--null-io", "--fifo-dir", c.FifoDir, "--runc-root", c.RuncRoot, "--config", path, id)
	return err
}

// startTask starts a new task for an existing container (a restart).
func (c *containerd) startTask(id string) error {
	_, err := c.Ctr("task", "start", "-d", "--null-io", "--fifo-dir", c.FifoDir, id)
	return err
}

func (c *containerd) mustPid(t *testing.T, id string) int {
	t.Helper()
	pid, status := c.Task(id)
	if status != "RUNNING" || pid == 0 {
		t.Fatalf("task %s: pid %d status %q, want a running task", id, pid, status)
	}
	return pid
}

// busyboxRootfs makes a read-only-usable root filesystem holding only
// busybox-static and the applets the containers run.
func busyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "run", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("read /bin/busybox: %v (apt-get install busybox-static)", err)
	}
	tl.RequireStaticBusybox(t)
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep", "ip", "ping"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// hookSpec is the flavor's default spec (`ctr oci spec`) turned into one
// that runs `sleep 3600` in rootfs, asks for networks by annotation, and
// has the createRuntime hook and nothing else: no poststop, so only
// containerd's events can give its addresses back.
func (c *containerd) hookSpec(t *testing.T, id, rootfs, socket string, ann map[string]string) []byte {
	t.Helper()
	out := c.MustCtr(t, "oci", "spec")
	var s specs.Spec
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("ctr oci spec: %v", err)
	}
	s.Root = &specs.Root{Path: rootfs, Readonly: true}
	s.Process.Args = []string{"sleep", "3600"}
	s.Process.Env = []string{"PATH=/bin"}
	s.Process.Terminal = false
	s.Hostname = id
	s.Linux.CgroupsPath = "/" + c.Namespace + "/" + id
	s.Annotations = ann
	s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
		Path: bin("underlay-hook"),
		Args: []string{"underlay-hook", "createRuntime"},
		Env:  []string{"UNDERLAY_SOCKET=" + socket},
	}}}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
