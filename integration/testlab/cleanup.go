package testlab

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runDirRemover notes whether /run/containerd exists now, where shims put
// sockets (and runc state) whatever the config says. The function it
// returns, for cleanup, removes /run/containerd/<sub> for each of subdirs
// and then /run/containerd, each only if empty, and only if /run/containerd
// did not exist before: it was ours.
func runDirRemover() func(subdirs ...string) {
	_, statErr := os.Stat("/run/containerd")
	hadRunDir := statErr == nil
	return func(subdirs ...string) {
		if hadRunDir {
			return
		}
		for _, d := range subdirs {
			_ = os.Remove(filepath.Join("/run/containerd", d)) // only if empty
		}
		_ = os.Remove("/run/containerd")
	}
}

// KillStrays SIGKILLs processes whose command line contains marker, a path
// unique to the test (a private socket or directory): shims, conmon and
// nerdctl's log forwarders outlive the daemons that started them by design.
func KillStrays(t testing.TB, marker string) {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(marker)) {
			continue
		}
		t.Logf("cleanup: killing leftover process %d: %s", pid, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// UnmountUnder lazily unmounts whatever is mounted at or below dir,
// deepest first, so that removing dir cannot walk into a container's
// rootfs.
func UnmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Logf("cleanup: unmount %s: %v", m, err)
		}
	}
}

// cgroupDirs are the /<name> cgroups (cgroupfs: /<namespace>/<id>) of
// every hierarchy.
func cgroupDirs(name string) []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	if fi, err := os.Stat("/sys/fs/cgroup/" + name); err == nil && fi.IsDir() {
		dirs = append(dirs, "/sys/fs/cgroup/"+name)
	}
	return dirs
}

// killCgroups SIGKILLs every process left in the cgroups under /<name>, so
// that a container whose removal failed (or whose shim is gone) cannot
// outlive the test.
func killCgroups(t testing.TB, name string) {
	if name == "" {
		return
	}
	killed := map[int]bool{}
	for _, d := range cgroupDirs(name) {
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && !killed[pid] {
					t.Logf("cleanup: killing leftover container process %d (%s)", pid, filepath.Dir(p))
					_ = syscall.Kill(pid, syscall.SIGKILL)
					killed[pid] = true
				}
			}
			return nil
		})
	}
	if len(killed) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
}

// removeCgroups removes the (empty) cgroups under /<name>, deepest first.
func removeCgroups(t testing.TB, name string) {
	if name == "" {
		return
	}
	for _, d := range cgroupDirs(name) {
		var dirs []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, p := range dirs {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Logf("cleanup: %v", err)
			}
		}
	}
}

// removeShimLeftovers removes what killed shims leave under
// /run/containerd for the containers of namespace ns: runc's state
// (/run/containerd/runc/<ns>/<id>) and the shim sockets, named
// sha256(<containerd address>/<ns>/<id>[/debug]). After a clean run there
// is nothing but the empty namespace directory.
func removeShimLeftovers(t testing.TB, address, ns string) {
	if ns == "" {
		return
	}
	runcRoot := filepath.Join("/run/containerd/runc", ns)
	ents, _ := os.ReadDir(runcRoot)
	for _, e := range ents {
		for _, p := range []string{filepath.Join(address, ns, e.Name()), filepath.Join(address, ns, e.Name(), "debug")} {
			sock := fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(p)))
			if err := os.Remove(sock); err == nil {
				t.Logf("cleanup: removed shim socket %s of %s", sock, e.Name())
			}
		}
		t.Logf("cleanup: removing runc state of %s", e.Name())
		if err := os.RemoveAll(filepath.Join(runcRoot, e.Name())); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	_ = os.Remove(runcRoot)
}

// KillCgroups SIGKILLs every process left in the cgroups under /<name>.
func KillCgroups(t testing.TB, name string) { killCgroups(t, name) }

// RemoveCgroups removes the (empty) cgroups under /<name>.
func RemoveCgroups(t testing.TB, name string) { removeCgroups(t, name) }
