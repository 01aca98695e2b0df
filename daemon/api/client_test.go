package api

import (
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		buf := make([]byte, 1<<16)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		w.Write([]byte(`{"name":` + strings.TrimPrefix(strings.TrimSuffix(b.String(), "}"), `{"name":`) + `}`))
	})
	mux.HandleFunc("GET /v1/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"name":"` + strings.Repeat("x", 200000) + `"}`))
	})
	mux.HandleFunc("GET /v1/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(409)
		w.Write([]byte(`{"error":"10.0.0.5: address already in use"}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	c := &Client{Socket: sock}
	var out NetworkCreate
	if err := c.Do("POST", "/echo", NetworkCreate{Name: "pub_net"}, &out); err != nil || out.Name != "pub_net" {
		t.Fatalf("echo: %v %+v", err, out)
	}
	if err := c.Do("GET", "/big", nil, &out); err != nil || len(out.Name) != 200000 {
		t.Fatalf("big body: %v %d", err, len(out.Name))
	}
	err = c.Do("GET", "/fail", nil, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 409 || err.Error() != "10.0.0.5: address already in use" {
		t.Fatalf("status error: %#v", err)
	}
}

func TestClientDaemonDown(t *testing.T) {
	c := &Client{Socket: filepath.Join(t.TempDir(), "none.sock")}
	err := c.Do("GET", "/ping", nil, nil)
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
