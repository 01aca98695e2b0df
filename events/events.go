// Package events follows containerd and tells underlayd when a container is
// gone, so its addresses come back even when no poststop hook ran (a spec
// with only createRuntime, a killed shim, a crash). It subscribes across
// all namespaces to task exits and deletes and container deletes, reconnects with backoff
// when containerd restarts, and after every (re)connect hands the handler
// the full list of live containers, because events may have been missed.
// Finder (lookup.go) looks one container up for `network connect`.
// It imports nothing from the daemon.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	containerd "github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"
)

// Handler is what the monitor tells.
type Handler interface {
	// ContainerGone releases what container id in namespace ns had when
	// containerd deleted it at time at. An endpoint attached after that
	// belongs to a new task of the same container (a restart) and stays.
	ContainerGone(ns, id string, at time.Time) error
	// Live is called after each (re)connect with every container containerd
	// knows, by namespace, listed at listedAt; the handler releases
	// endpoints of the others that are older than the listing.
	Live(live map[string]map[string]bool, listedAt time.Time) error
}

// Topics the monitor follows.
const (
	TopicTaskDelete      = "/tasks/delete"
	TopicContainerDelete = "/containers/delete"
	// TopicTaskExit matters for `nerdctl stop`, which keeps the stopped
	// task: the container's namespace is gone, and like Docker its address
	// is freed at stop, not at the next start or rm.
	TopicTaskExit = "/tasks/exit"
)

// Monitor follows one containerd.
type Monitor struct {
	Address string
	Handler Handler
	Log     *slog.Logger
	// MaxBackoff caps the wait between reconnects.
	MaxBackoff time.Duration
	// State, if set, is told true once the stream is followed and false
	// each time it breaks (for the metrics).
	State func(up bool)
}

// Run follows containerd until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	maxBackoff := m.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = 5 * time.Second
	}
	warned := false
	for ctx.Err() == nil {
		start := time.Now()
		connected, err := m.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected && m.State != nil {
			m.State(false)
		}
		if connected {
			warned = false
		}
		if time.Since(start) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		// Say it once per outage, not every few seconds while containerd
		// is down or not installed.
		log := m.Log.Debug
		if !warned {
			log, warned = m.Log.Warn, true
		}
		log("containerd events interrupted; reconnecting", "address", m.Address, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// follow connects, subscribes, reconciles, then handles events until the
// stream breaks. connected says whether it got as far as following.
func (m *Monitor) follow(ctx context.Context) (connected bool, err error) {
	client, err := containerd.New(m.Address, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer client.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe before listing, so a delete between the two is not lost.
	ch, errs := client.Subscribe(sctx, `topic=="`+TopicTaskDelete+`"`, `topic=="`+TopicContainerDelete+`"`,
		`topic=="`+TopicTaskExit+`"`)
	listedAt := time.Now()
	live, err := listContainers(sctx, client)
	if err != nil {
		return false, fmt.Errorf("list containers: %w", err)
	}
	if err := m.Handler.Live(live, listedAt); err != nil {
		m.Log.Error("reconcile against containerd failed", "err", err)
	}
	m.Log.Info("following containerd events", "address", m.Address)
	if m.State != nil {
		m.State(true)
	}
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return true, err
		case env := <-ch:
			if env == nil {
				continue
			}
			m.handle(env.Namespace, env.Topic, env.Event, env.Timestamp)
		}
	}
}

func (m *Monitor) handle(ns, topic string, ev typeurl.Any, at time.Time) {
	v, err := typeurl.UnmarshalAny(ev)
	if err != nil {
		m.Log.Warn("undecodable containerd event", "topic", topic, "err", err)
		return
	}
	var id string
	switch e := v.(type) {
	case *apievents.TaskDelete:
		if e.ID != "" && e.ID != e.ContainerID {
			return // an exec process ended, not the container
		}
		id = e.ContainerID
	case *apievents.TaskExit:
		if e.ID != e.ContainerID {
			return // an exec process ended, not the container
		}
		id = e.ContainerID
	case *apievents.ContainerDelete:
		id = e.ID
	default:
		return
	}
	// A failed release is retried a few times: the store may be busy, and
	// reconciliation catches anything left after that.
	for i, wait := 0, 50*time.Millisecond; i < 4; i, wait = i+1, wait*2 {
		if err = m.Handler.ContainerGone(ns, id, at); err == nil {
			return
		}
		time.Sleep(wait)
	}
	m.Log.Error("release after containerd delete failed", "namespace", ns, "container", id, "err", err)
}

func listContainers(ctx context.Context, client *containerd.Client) (map[string]map[string]bool, error) {
	nss, err := client.NamespaceService().List(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]map[string]bool{}
	for _, ns := range nss {
		cs, err := client.ContainerService().List(namespaces.WithNamespace(ctx, ns))
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		live[ns] = map[string]bool{}
		for _, c := range cs {
			live[ns][c.ID] = true
		}
	}
	return live, nil
}
