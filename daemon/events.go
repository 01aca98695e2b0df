package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/events"
)

// reconcileEvery is how often endpoints are checked against the live
// network namespaces, besides at start and after each containerd
// reconnect.
const reconcileEvery = 30 * time.Second

// containerdHandler adapts the manager to the events package.
type containerdHandler struct{ m *network.Manager }

func (h containerdHandler) ContainerGone(ns, id string, at time.Time) error {
	return h.m.ContainerGone(ns, id, at)
}

func (h containerdHandler) Live(live map[string]map[string]bool, at time.Time) error {
	_, err := h.m.ReconcileContainerd(live, at)
	return err
}

var _ events.Handler = containerdHandler{}

// containerdFinder adapts events.Finder to the manager: its failures
// also match the manager's sentinels, and so get the API's status codes,
// with their messages unchanged.
type containerdFinder struct{ f events.Finder }

func (c containerdFinder) FindContainer(ns, ref string) (string, int, error) {
	id, pid, err := c.f.FindContainer(ns, ref)
	switch {
	case errors.Is(err, events.ErrNoContainer):
		err = alsoIs{err, network.ErrNotFound}
	case errors.Is(err, events.ErrNotRunning):
		err = alsoIs{err, network.ErrNotRunning}
	}
	return id, pid, err
}

// alsoIs is an error that also matches a second sentinel.
type alsoIs struct {
	error
	also error
}

func (e alsoIs) Unwrap() error        { return e.error }
func (e alsoIs) Is(target error) bool { return target == e.also }

var _ network.ContainerFinder = containerdFinder{}

// runEvents follows containerd's events until ctx ends; state, if set, is
// told when the stream comes up or breaks.
func runEvents(ctx context.Context, addr string, m *network.Manager, log *slog.Logger, state func(up bool)) {
	mon := &events.Monitor{Address: addr, Handler: containerdHandler{m}, Log: log, State: state}
	mon.Run(ctx)
}

// syncChecker flushes the endpoint database (store.Store.CheckSync).
type syncChecker interface{ CheckSync() error }

// reconcileLoop releases endpoints whose namespace is gone, now and then
// periodically, until ctx ends. It also flushes the endpoint database, whose
// commits are not synced, so a disk that fails to write it is reported.
func reconcileLoop(ctx context.Context, m *network.Manager, st syncChecker, log *slog.Logger) {
	for {
		if n, err := m.Reconcile(); err != nil {
			log.Error("reconcile failed", "err", err)
		} else if n > 0 {
			log.Info("reconciled", "released", n)
		}
		if err := st.CheckSync(); err != nil {
			log.Error("endpoint database not written to disk: endpoints may be lost if underlayd restarts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconcileEvery):
		}
	}
}
