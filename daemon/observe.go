package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/metrics"
	"github.com/underlay/underlay/daemon/store"
)

// timedStore is the store with its write transactions timed for the
// metrics: the ones on the attach and detach paths, and the network
// records.
type timedStore struct {
	*store.Store
	m *metrics.Metrics
}

func (s timedStore) time(op string, start time.Time) { s.m.Commit(op, time.Since(start)) }

func (s timedStore) PutEndpoint(ep api.Endpoint) error {
	defer s.time("put_endpoint", time.Now())
	return s.Store.PutEndpoint(ep)
}

func (s timedStore) DeleteEndpoint(ep api.Endpoint) error {
	defer s.time("delete_endpoints", time.Now())
	return s.Store.DeleteEndpoint(ep)
}

func (s timedStore) DeleteEndpoints(eps []api.Endpoint) error {
	defer s.time("delete_endpoints", time.Now())
	return s.Store.DeleteEndpoints(eps)
}

func (s timedStore) BeginIntent(ep api.Endpoint) error {
	defer s.time("begin_intent", time.Now())
	return s.Store.BeginIntent(ep)
}

func (s timedStore) CreateNetwork(n api.Network) error {
	defer s.time("create_network", time.Now())
	return s.Store.CreateNetwork(n)
}

func (s timedStore) DeleteNetwork(name string) error {
	defer s.time("delete_network", time.Now())
	return s.Store.DeleteNetwork(name)
}

// serveMetrics listens on addr (host:port) at once, so that a taken port
// stops underlayd with one line before it does anything, and serves
// /metrics, /healthz and /readyz there.
func serveMetrics(addr string, m *metrics.Metrics) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address %s: %w", addr, err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

// notify tells systemd (Type=notify) how underlayd is doing: "READY=1"
// once it serves, "STOPPING=1" when it shuts down. Without NOTIFY_SOCKET
// (not started by systemd) it does nothing.
func notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
