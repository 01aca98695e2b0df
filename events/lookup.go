package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
)

// Lookup failures, for errors.Is.
var (
	ErrNoContainer = errors.New("not found")
	ErrNotRunning  = errors.New("not running")
)

// nerdctlName is the label nerdctl keeps a container's name in: its id is
// a 64-digit hex string, and users know it by the name.
const nerdctlName = "nerdctl/name"

// Finder looks containers up in containerd for `network connect`: their
// id and the pid of their running task, whose network namespace underlayd
// then opens. Each lookup dials anew: connects are rare, and a client kept
// open would outlive a containerd restart.
type Finder struct {
	Address string
	// Timeout bounds a whole lookup; zero means 10 s.
	Timeout time.Duration
}

// FindContainer returns the id and the task's pid of the container that
// ref names in namespace ns: its id, else its nerdctl name.
func (f Finder) FindContainer(ns, ref string) (string, int, error) {
	// A missing socket would otherwise cost the whole dial timeout.
	if _, err := os.Stat(f.Address); err != nil {
		return "", 0, fmt.Errorf("containerd is not at %s: %w", f.Address, err)
	}
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client, err := containerd.New(f.Address, containerd.WithTimeout(timeout))
	if err != nil {
		return "", 0, fmt.Errorf("connect to containerd at %s: %w", f.Address, err)
	}
	defer client.Close()
	ctx = namespaces.WithNamespace(ctx, ns)
	c, err := client.LoadContainer(ctx, ref)
	if errdefs.IsNotFound(err) {
		c, err = byName(ctx, client, ns, ref)
	}
	if err != nil {
		return "", 0, err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return "", 0, fmt.Errorf("containerd container %s/%s has no task: %w", ns, ref, ErrNotRunning)
	}
	if err != nil {
		return "", 0, fmt.Errorf("task of containerd container %s/%s: %w", ns, ref, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("status of containerd container %s/%s: %w", ns, ref, err)
	}
	// A paused container still has its namespace; a created one has not
	// run yet, and its namespace may not be set up.
	if st.Status != containerd.Running && st.Status != containerd.Paused {
		return "", 0, fmt.Errorf("containerd container %s/%s is %s: %w", ns, ref, st.Status, ErrNotRunning)
	}
	return c.ID(), int(task.Pid()), nil
}

// byName finds the one container nerdctl named ref in ns.
func byName(ctx context.Context, client *containerd.Client, ns, ref string) (containerd.Container, error) {
	cs, err := client.Containers(ctx, `labels."`+nerdctlName+`"==`+strconv.Quote(ref))
	if err != nil {
		return nil, fmt.Errorf("list containerd containers named %s in %s: %w", ref, ns, err)
	}
	switch len(cs) {
	case 0:
		return nil, fmt.Errorf("containerd has no container %s in namespace %s: %w", ref, ns, ErrNoContainer)
	case 1:
		return cs[0], nil
	}
	return nil, fmt.Errorf("containerd has %d containers named %s in namespace %s: name one by its id", len(cs), ref, ns)
}
