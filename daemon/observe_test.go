package main

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/metrics"
)

// notify sends systemd's datagram to NOTIFY_SOCKET, a path or an abstract
// name, and does nothing without it.
func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := notify("READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
	for _, c := range []struct{ env, listen string }{
		{filepath.Join(t.TempDir(), "notify"), ""},
		{"@ulob-notify-test", "\x00ulob-notify-test"},
	} {
		listen := c.listen
		if listen == "" {
			listen = c.env
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: listen, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", c.env)
		if err := notify("READY=1"); err != nil {
			t.Fatalf("NOTIFY_SOCKET=%s: %v", c.env, err)
		}
		buf := make([]byte, 64)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil || string(buf[:n]) != "READY=1" {
			t.Errorf("NOTIFY_SOCKET=%s: got %q, %v; want READY=1", c.env, buf[:n], err)
		}
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody"))
	if err := notify("READY=1"); err == nil {
		t.Error("a socket nobody listens on: no error")
	}
}

// Port 0 gets the kernel's choice, which serveMetrics returns so that
// underlayd can log where it is.
func TestServeMetricsSaysWhere(t *testing.T) {
	srv, at, err := serveMetrics("127.0.0.1:0", metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if strings.HasSuffix(at, ":0") {
		t.Fatalf("listening at %s", at)
	}
	resp, err := http.Get("http://" + at + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /healthz at %s: %v %v", at, resp, err)
	}
	resp.Body.Close()
}
