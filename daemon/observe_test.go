package main

import (
	"net"
	"path/filepath"
	"testing"
	"time"
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
