package main

import (
	"context"
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

func startEvents(ctx context.Context, addr string, m *network.Manager, log *slog.Logger) {
	mon := &events.Monitor{Address: addr, Handler: containerdHandler{m}, Log: log}
	go mon.Run(ctx)
}

// reconcileLoop releases endpoints whose namespace is gone, now and then
// periodically, until ctx ends.
func reconcileLoop(ctx context.Context, m *network.Manager, log *slog.Logger) {
	for {
		if n, err := m.Reconcile(); err != nil {
			log.Error("reconcile failed", "err", err)
		} else if n > 0 {
			log.Info("reconciled", "released", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconcileEvery):
		}
	}
}
