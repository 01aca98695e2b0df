package apiclient

import (
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

func TestDo(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	mux.HandleFunc("GET /v1/garbled", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{")) })
	mux.HandleFunc("GET /v1/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(409)
		w.Write([]byte(`{"error":"10.0.0.5: address already in use"}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	c := &api.Client{Socket: sock}
	in := api.NetworkCreate{Name: "pub_net", Subnets: []string{"10.0.0.0/24"}, Options: map[string]string{"parent": "eth0"}}
	var out api.NetworkCreate
	if err := Do(c, "POST", "/echo", in, &out); err != nil || out.Name != "pub_net" || out.Options["parent"] != "eth0" {
		t.Fatalf("echo: %v %+v", err, out)
	}
	if err := Do(c, "POST", "/echo", in, nil); err != nil {
		t.Fatalf("echo without an answer wanted: %v", err)
	}
	if err := Do(c, "GET", "/garbled", nil, &out); err == nil || !strings.HasPrefix(err.Error(), "decode answer from underlayd: ") {
		t.Fatalf("garbled answer: %v", err)
	}
	err = Do(c, "GET", "/fail", nil, &out)
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != 409 || err.Error() != "10.0.0.5: address already in use" {
		t.Fatalf("status error: %#v", err)
	}
	if err := Do(c, "POST", "/echo", func() {}, nil); err == nil || !strings.HasPrefix(err.Error(), "encode request: ") {
		t.Fatalf("unencodable request: %v", err)
	}
}
