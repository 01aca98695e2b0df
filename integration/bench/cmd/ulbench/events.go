package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// privateContainerd is a containerd with its own root, state and socket
// under dir, CRI disabled: nothing it does touches a system containerd.
type privateContainerd struct {
	Socket string
	cmd    *exec.Cmd
	dir    string
	hadRun bool
}

func startContainerd(dir string) (*privateContainerd, error) {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, fmt.Errorf("containerd not installed: %w", err)
	}
	for _, d := range []string{"root", "state", "opt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	c := &privateContainerd{Socket: filepath.Join(dir, "c.sock"), dir: dir}
	if len(c.Socket) > 100 {
		return nil, fmt.Errorf("containerd socket path too long: %s", c.Socket)
	}
	_, err = os.Stat("/run/containerd")
	c.hadRun = err == nil
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc", filepath.Join(dir, "opt"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := startTracked(c.cmd); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(c.Socket); err == nil {
			cl, err := containerd.New(c.Socket, containerd.WithTimeout(2*time.Second))
			if err == nil {
				_, err = cl.Version(context.Background())
				cl.Close()
				if err == nil {
					return c, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Stop()
	b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
	return nil, fmt.Errorf("private containerd did not answer within 30s: %s", tailOf(string(b), 800))
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Stop ends the private containerd (no tasks were ever run, so it has no
// shims) and removes /run/containerd if it made it.
func (c *privateContainerd) Stop() {
	if c == nil || c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
		started.mu.Lock()
		delete(started.live, c.cmd.Process.Pid)
		started.mu.Unlock()
	case <-time.After(10 * time.Second):
		started.kill(c.cmd)
	}
	c.cmd = nil
	if !c.hadRun {
		for _, d := range []string{"/run/containerd/s", "/run/containerd/fifo", "/run/containerd"} {
			_ = os.Remove(d) // only if empty
		}
	}
}

const ctrNS = "ulb"

// eventDetach attaches n fake containers through the hook (as containerd's
// shim would run it, bundle under io.containerd.runtime.v2.task/<ns>/<id>),
// records each as a containerd container, ends its process, deletes the
// container in containerd and times the release underlayd makes on the
// /containers/delete event. fromEvent is measured from the event's own
// timestamp (set by containerd when it published it); fromCall from just
// before the delete call.
func eventDetach(ctrd *privateContainerd, h *hookRunner, d *daemon, n int) (fromEvent, fromCall []time.Duration, err error) {
	cl, err := containerd.New(ctrd.Socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), ctrNS))
	defer cancel()

	var mu sync.Mutex
	stamps := map[string]time.Time{}
	arrived := make(chan struct{}, 1024)
	envs, errs := cl.Subscribe(ctx, `topic=="/containers/delete"`)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-errs:
				return
			case e := <-envs:
				if e == nil || e.Namespace != ctrNS {
					continue
				}
				v, err := unmarshalContainerDelete(e.Event)
				if err != nil {
					continue
				}
				mu.Lock()
				stamps[v] = e.Timestamp
				mu.Unlock()
				arrived <- struct{}{}
			}
		}
	}()

	conts, err := newContainers("ulb-ev", n)
	if err != nil {
		return nil, nil, err
	}
	defer killContainers(conts)
	for _, c := range conts {
		spec := &specs.Spec{Version: specs.Version}
		cc, err := cl.NewContainer(ctx, c.ID, containerd.WithRuntime("io.containerd.runc.v2", nil), containerd.WithSpec(spec))
		if err != nil {
			return nil, nil, fmt.Errorf("containerd container %s: %w", c.ID, err)
		}
		// The hook learns the namespace from the bundle path, as under a shim.
		bundle := "/run/containerd/io.containerd.runtime.v2.task/" + ctrNS + "/" + c.ID
		if _, err := h.attach(c, bundle); err != nil {
			return nil, nil, fmt.Errorf("attach %s: %w", c.ID, err)
		}
		if err := checkAttached(c, "10.200."); err != nil {
			return nil, nil, err
		}
		started.kill(c.cmd) // the task ended: its namespace is gone
		rel := d.WaitRelease(ctrNS + "/" + c.ID)
		t0 := time.Now()
		if err := cc.Delete(ctx); err != nil {
			return nil, nil, fmt.Errorf("delete containerd container %s: %w", c.ID, err)
		}
		var tr time.Time
		select {
		case tr = <-rel:
		case <-time.After(10 * time.Second):
			return nil, nil, fmt.Errorf("no release of %s/%s within 10s of its delete event: %s", ctrNS, c.ID, d.Tail())
		}
		var ts time.Time
		for ts.IsZero() {
			mu.Lock()
			ts = stamps[c.ID]
			mu.Unlock()
			if ts.IsZero() {
				select {
				case <-arrived:
				case <-time.After(5 * time.Second):
					return nil, nil, fmt.Errorf("bench never saw the delete event of %s", c.ID)
				}
			}
		}
		fromEvent, fromCall = append(fromEvent, tr.Sub(ts)), append(fromCall, tr.Sub(t0))
	}
	eps, err := d.Endpoints()
	if err != nil {
		return nil, nil, err
	}
	for _, ep := range eps {
		if ep.Namespace == ctrNS {
			return nil, nil, fmt.Errorf("endpoint %s/%s survived its containerd delete", ep.Namespace, ep.ContainerID)
		}
	}
	return fromEvent, fromCall, nil
}

func unmarshalContainerDelete(a typeurl.Any) (string, error) {
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return "", err
	}
	e, ok := v.(*apievents.ContainerDelete)
	if !ok {
		return "", fmt.Errorf("not a container delete: %T", v)
	}
	return e.ID, nil
}
