package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/underlay/underlay/daemon/metrics"
)

// serveMetrics listens on addr (host:port) at once, so that a taken port
// stops underlayd with one line before it does anything, and serves
// /metrics, /healthz and /readyz there. It returns the address it
// listens on: the port the kernel chose, for port 0.
func serveMetrics(addr string, m *metrics.Metrics) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--metrics-address %s: %w", addr, err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
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
