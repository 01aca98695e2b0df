package testlab

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Container is a process in a fresh network namespace, standing in for a
// container whose runtime is at createRuntime.
type Container struct {
	ID  string
	Pid int
	// Inode is that of its network namespace.
	Inode uint64
	cmd   *exec.Cmd
	done  chan struct{}
}

// StartContainer starts a process in a new network namespace and waits
// until it has its own. It never fails the test, so any goroutine may call
// it; the caller kills it.
func StartContainer(id string) (*Container, error) {
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Container{ID: id, Pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	// unshare execs sleep once the namespace exists; wait for that.
	self := netnsInode("/proc/self/ns/net")
	for i := 0; i < 400; i++ {
		if ino := netnsInode(fmt.Sprintf("/proc/%d/ns/net", c.Pid)); ino != 0 && ino != self {
			c.Inode = ino
			return c, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Kill()
	return nil, fmt.Errorf("container %s never got its own network namespace", id)
}

// NewContainer is StartContainer that fails the test, and kills the
// container at cleanup.
func NewContainer(t testing.TB, id string) *Container {
	t.Helper()
	c, err := StartContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

func netnsInode(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// Kill ends the container and waits; its namespace and interfaces go with
// it.
func (c *Container) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Alive reports whether the container's process still runs.
func (c *Container) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Exec runs a command inside the container's network namespace.
func (c *Container) Exec(args ...string) (string, error) {
	// No "--": busybox's nsenter (in the VM) does not take it. A full
	// path, or busybox would run its own applet (its ip lacks -br, -d).
	if p, err := exec.LookPath(args[0]); err == nil {
		args = append([]string{p}, args[1:]...)
	}
	return Run("nsenter", append([]string{"-t", fmt.Sprint(c.Pid), "-n"}, args...)...)
}

// State is the OCI state the runtime gives a hook.
func (c *Container) State(status string, ann map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": c.ID, "status": status,
		"pid": c.Pid, "bundle": "/nonexistent/" + c.ID, "annotations": ann})
	return b
}
