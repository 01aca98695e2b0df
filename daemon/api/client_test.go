package api

import (
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientCall(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(400)
		}
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("GET /v1/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"name":"` + strings.Repeat("x", 200000) + `"}`))
	})
	mux.HandleFunc("GET /v1/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(409)
		w.Write([]byte(`{"error":"10.0.0.5: address already in use"}`))
	})
	mux.HandleFunc("GET /v1/crash", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		w.Write([]byte("bad gateway\n"))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	c := &Client{Socket: sock}
	req := EncodeDetachRequest(DetachRequest{ContainerID: "c1", Pid: 5})
	if got, err := c.Call("POST", "/echo", req); err != nil || string(got) != string(req) {
		t.Fatalf("echo: %v %q", err, got)
	}
	if got, err := c.Call("GET", "/big", nil); err != nil || len(got) != 200000+len(`{"name":""}`) {
		t.Fatalf("big body: %v %d", err, len(got))
	}
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/fail", 409, "10.0.0.5: address already in use"},
		{"/crash", 502, "underlayd answered 502: bad gateway"},
		{"/missing", 404, "underlayd answered 404: 404 page not found"},
	} {
		_, err := c.Call("GET", tc.path, nil)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != tc.code || err.Error() != tc.msg {
			t.Errorf("%s: got %#v, want %d %q", tc.path, err, tc.code, tc.msg)
		}
	}
}

func TestClientDaemonDown(t *testing.T) {
	c := &Client{Socket: filepath.Join(t.TempDir(), "none.sock")}
	_, err := c.Call("GET", "/ping", nil)
	if !errors.Is(err, ErrDaemonDown) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("got %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	for _, bad := range []string{"", "HTTP/1.1 200 OK\r\n", "garbage\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n"} {
		if _, _, err := parseResponse([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	code, body, err := parseResponse([]byte("HTTP/1.1 201 Created\r\nA: b\r\n\r\n{}"))
	if err != nil || code != 201 || string(body) != "{}" {
		t.Fatalf("%d %q %v", code, body, err)
	}
}
