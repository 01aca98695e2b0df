package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/api/apiclient"
)

// daemon is a running bin/underlayd with its own socket and state, whose
// log the bench reads: the "detached" line, written right after the
// endpoint's leases are committed as released, is how the event benchmark
// learns the moment of release without polling.
type daemon struct {
	bin      string
	Socket   string
	StateDir string
	extra    []string
	cmd      *exec.Cmd
	done     chan struct{}

	mu      sync.Mutex
	tail    []string
	waiters map[string]chan time.Time // container name -> release time
}

func newDaemon(bin, dir string, extra ...string) *daemon {
	return &daemon{bin: bin, Socket: filepath.Join(dir, "ud.sock"), StateDir: filepath.Join(dir, "state"), extra: extra}
}

// Start execs underlayd and returns once it answers a ping, with the time
// from exec to that answer. underlayd reconciles before it serves, so this
// is restart-and-reconcile time.
func (d *daemon) Start(timeout time.Duration) (time.Duration, error) {
	_ = os.Remove(d.Socket)
	args := append([]string{"--socket", d.Socket, "--state-dir", d.StateDir, "--log-level", "info"}, d.extra...)
	d.cmd = exec.Command(filepath.Join(d.bin, "underlayd"), args...)
	d.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	d.cmd.Stdout = nil
	d.mu.Lock()
	d.tail, d.waiters = nil, map[string]chan time.Time{}
	d.mu.Unlock()
	t0 := time.Now()
	if err := startTracked(d.cmd); err != nil {
		return 0, err
	}
	d.done = make(chan struct{})
	go d.scan(stderr)
	c := &api.Client{Socket: d.Socket, Timeout: timeout}
	deadline := t0.Add(timeout)
	for {
		select {
		case <-d.done:
			return 0, fmt.Errorf("underlayd exited during start-up: %s", d.Tail())
		default:
		}
		if _, err := os.Stat(d.Socket); err == nil {
			var out map[string]string
			if err := apiclient.Do(c, "GET", "/ping", nil, &out); err == nil {
				return time.Since(t0), nil
			}
		}
		if time.Now().After(deadline) {
			d.Stop()
			return 0, fmt.Errorf("underlayd did not answer within %v: %s", timeout, d.Tail())
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func (d *daemon) scan(f interface{ Read([]byte) (int, error) }) {
	defer close(d.done)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		now := time.Now()
		line := sc.Text()
		d.mu.Lock()
		d.tail = append(d.tail, line)
		if len(d.tail) > 30 {
			d.tail = d.tail[len(d.tail)-30:]
		}
		for _, msg := range []string{"detached", "attached"} {
			if strings.Contains(line, " msg="+msg+" ") {
				key := msg + " " + logField(line, "container")
				if ch := d.waiters[key]; ch != nil {
					ch <- now
					delete(d.waiters, key)
				}
			}
		}
		d.mu.Unlock()
	}
}

// logField reads key=value from a slog text line (values here never need
// quoting).
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"`)
}

// WaitRelease registers interest in the release of a container (its
// name as underlayd logs it: "namespace/id" or "id").
func (d *daemon) WaitRelease(name string) <-chan time.Time { return d.wait("detached", name) }

// WaitCommit registers interest in the commit of a container's attach:
// underlayd logs "attached" right after it stored the endpoint.
func (d *daemon) WaitCommit(name string) <-chan time.Time { return d.wait("attached", name) }

func (d *daemon) wait(msg, name string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	d.mu.Lock()
	d.waiters[msg+" "+name] = ch
	d.mu.Unlock()
	return ch
}

// Tail is the last lines underlayd logged.
func (d *daemon) Tail() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

// Stop sends SIGTERM and waits (SIGKILL after 15 s).
func (d *daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
	}
	started.kill(d.cmd)
	d.cmd = nil
}

// Pid is underlayd's pid.
func (d *daemon) Pid() int { return d.cmd.Process.Pid }

// CLI runs bin/underlay against this daemon.
func (d *daemon) CLI(args ...string) (string, error) {
	return run(filepath.Join(d.bin, "underlay"), append([]string{"--socket", d.Socket}, args...)...)
}

// Endpoints counts the endpoints underlayd reports.
func (d *daemon) Endpoints() ([]api.Endpoint, error) {
	var eps []api.Endpoint
	err := apiclient.Do(&api.Client{Socket: d.Socket}, "GET", "/endpoints", nil, &eps)
	return eps, err
}

// procStatusKiB reads a "Vm..." field of /proc/PID/status in KiB.
func procStatusKiB(pid int, field string) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, errors.New(field + " not in /proc/" + strconv.Itoa(pid) + "/status")
}
