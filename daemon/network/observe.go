package network

import (
	"context"
	"errors"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// Observer is told what the manager does as it happens: the metrics count
// it and `underlay events` streams it. Observe is called on the attach and
// detach paths, sometimes under a network's lock, so it must return at
// once: count, or hand off without waiting.
type Observer interface{ Observe(api.Event) }

// WithObserver adds an observer; every one is told every event.
func WithObserver(o Observer) Option {
	return func(m *Manager) { m.observers = append(m.observers, o) }
}

// emit stamps e and tells the observers.
func (m *Manager) emit(e api.Event) {
	if len(m.observers) == 0 {
		return
	}
	e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	for _, o := range m.observers {
		o.Observe(e)
	}
}

// emitAttach tells of one network's attach, done or failed.
func (m *Manager) emitAttach(n api.Network, ep api.Endpoint, start time.Time, err error) {
	if len(m.observers) == 0 {
		return
	}
	e := api.Event{Type: api.EventAttach, Network: n.Name, Driver: n.Driver,
		Container: ep.Container(), IfName: ep.IfName, Parent: ep.Parent,
		Seconds: time.Since(start).Seconds(), Result: ErrorClass(err)}
	if err != nil {
		e.Error = err.Error()
	} else {
		e.Addresses, e.MAC = ep.Addresses, ep.MAC
	}
	m.emit(e)
}

// emitDetach tells of one endpoint's release, done or failed; path is
// what released it.
func (m *Manager) emitDetach(n api.Network, ep api.Endpoint, path string, start time.Time, err error) {
	if len(m.observers) == 0 {
		return
	}
	e := api.Event{Type: api.EventDetach, Network: n.Name, Driver: n.Driver,
		Container: ep.Container(), IfName: ep.IfName, Parent: ep.Parent, Addresses: ep.Addresses,
		MAC: ep.MAC, Path: path, Result: ErrorClass(err)}
	if !start.IsZero() {
		e.Seconds = time.Since(start).Seconds()
	}
	if err != nil {
		e.Error = err.Error()
	}
	m.emit(e)
}

// emitLeaseLost tells of a DHCP lease the server stopped granting.
func (m *Manager) emitLeaseLost(ep api.Endpoint, addr, why string) {
	m.emit(api.Event{Type: api.EventLeaseLost, Network: ep.Network,
		Container: ep.Container(), IfName: ep.IfName, Addresses: []string{addr}, Error: why})
}

// ErrorClass names the kind of err for metrics and events, and the API
// answers with the status code of its class: "ok" for nil.
func ErrorClass(err error) string {
	switch {
	case err == nil:
		return api.ResultOK
	case errors.Is(err, ErrNoParent):
		return api.ErrorClassNoParent
	case errors.Is(err, ErrInvalid), errors.Is(err, ipam.ErrNotInSubnet), errors.Is(err, ipam.ErrReserved),
		errors.Is(err, ipam.ErrNoSubnet):
		return api.ErrorClassInvalid
	case errors.Is(err, ErrNotFound):
		return api.ErrorClassNotFound
	case errors.Is(err, ErrAddressInUse), errors.Is(err, ErrExists), errors.Is(err, ErrParentBusy), errors.Is(err, ErrInUse),
		errors.Is(err, ErrNotRunning):
		return api.ErrorClassInUse
	case errors.Is(err, ErrExhausted):
		return api.ErrorClassFull
	case errors.Is(err, ErrNoLease):
		return api.ErrorClassNoLease
	case errors.Is(err, context.DeadlineExceeded):
		return api.ErrorClassTimeout
	}
	return api.ErrorClassInternal
}
