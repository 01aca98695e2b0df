package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/api/apiclient"
	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/daemon/store"
	"github.com/underlay/underlay/ipam"
)

// fakeManager records calls and returns err.
type fakeManager struct {
	err     error
	created []api.NetworkCreate
	eps     []api.Endpoint
}

func (f *fakeManager) Create(r api.NetworkCreate) (api.Network, error) {
	f.created = append(f.created, r)
	return api.Network{Name: r.Name}, f.err
}
func (f *fakeManager) Remove(string) error                 { return f.err }
func (f *fakeManager) List() []api.Network                 { return nil }
func (f *fakeManager) Inspect(string) (api.Network, error) { return api.Network{}, f.err }
func (f *fakeManager) EachEndpoint(fn func(api.Endpoint) error) error {
	for _, ep := range f.eps {
		if err := fn(ep); err != nil {
			return err
		}
	}
	return f.err
}
func (f *fakeManager) Attach(api.AttachRequest) (api.AttachResponse, error) {
	return api.AttachResponse{}, f.err
}
func (f *fakeManager) Detach(api.DetachRequest) (api.DetachResponse, error) {
	return api.DetachResponse{}, f.err
}

func (f *fakeManager) Prune() (int, error) { return 0, f.err }
func (f *fakeManager) AttachCNI(api.CNIRequest) (api.Endpoint, error) {
	return api.Endpoint{}, f.err
}
func (f *fakeManager) DetachCNI(api.CNIRequest) error                { return f.err }
func (f *fakeManager) CheckCNI(api.CNIRequest) (api.Endpoint, error) { return api.Endpoint{}, f.err }
func (f *fakeManager) GCCNI(api.CNIGC) (int, error)                  { return 0, f.err }
func (f *fakeManager) Connect(api.ConnectRequest) (api.Endpoint, error) {
	return api.Endpoint{}, f.err
}
func (f *fakeManager) Disconnect(api.ConnectRequest) error { return f.err }

func (f *fakeManager) Hosts() ([]api.Host, error) { return nil, f.err }

func (f *fakeManager) ReclaimHost(string) (api.ReclaimResponse, error) {
	return api.ReclaimResponse{}, f.err
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestDecodeBounds(t *testing.T) {
	f := &fakeManager{}
	h := Handler(f, slog.New(slog.DiscardHandler), nil, nil)
	cases := []struct {
		name, body string
		code       int
		want       string
	}{
		{"ok", `{"name":"n","subnets":["10.0.0.0/24"]}`, 201, `"name":"n"`},
		{"unknown field", `{"name":"n","colour":"red"}`, 400, `unknown field \"colour\"`},
		{"malformed", `{"name":`, 400, "malformed request: the JSON ends early"},
		{"empty", ``, 400, "malformed request: empty body: want a JSON object"},
		{"not JSON", `{name}`, 400, "malformed request: not JSON at byte 2"},
		{"trailing data", `{"name":"n"} {"name":"m"}`, 400, "data after the JSON object"},
		{"wrong type", `{"name":5}`, 400, `malformed request: field \"name\": a JSON number where a string is wanted`},
		{"option not a string", `{"name":"n","options":{"mtu":1500}}`, 400, `field \"options\": a JSON number where a string is wanted`},
		{"list not an array", `{"name":"n","subnets":"10.0.0.0/8"}`, 400, `field \"subnets\": a JSON string where an array of strings is wanted`},
		{"array for an object", `[1]`, 400, "malformed request: a JSON array where an object is wanted"},
		{"oversized", `{"name":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}`, 413, "request body larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.created = nil
			code, body := do(t, h, "POST", "/v1/networks", c.body)
			if code != c.code || !strings.Contains(body, c.want) {
				t.Fatalf("got %d %s, want %d %q", code, body, c.code, c.want)
			}
			if c.code != 201 && len(f.created) != 0 {
				t.Fatal("manager called for a bad request")
			}
		})
	}
}

// Each sentinel maps to one status, and the CLI prints the daemon's
// message as one line after "underlay: ", whatever the status.
func TestErrorSurface(t *testing.T) {
	cases := []struct {
		err  error
		code int
		line string
	}{
		{network.ErrInvalid, 400, "invalid request"},
		{fmt.Errorf("-o mtu=9: want a number from 68 to 65535: %w", network.ErrInvalid), 400, "-o mtu=9: want a number from 68 to 65535: invalid request"},
		{fmt.Errorf("parent interface eth9 does not exist: %w", network.ErrNoParent), 400, "parent interface eth9 does not exist: parent interface missing"},
		{fmt.Errorf("10.9.0.1: %w", ipam.ErrNotInSubnet), 400, "10.9.0.1: not in any subnet"},
		{fmt.Errorf("10.9.0.1: %w", ipam.ErrReserved), 400, "10.9.0.1: address is reserved"},
		{fmt.Errorf("network x: %w", ipam.ErrNoSubnet), 400, "network x: no subnet of that family"},
		{fmt.Errorf("network x: %w", network.ErrNotFound), 404, "network x: not found"},
		{fmt.Errorf("network x: %w", network.ErrExists), 409, "network x: already exists"},
		{fmt.Errorf("10.0.0.1: %w", ipam.ErrAddressInUse), 409, "10.0.0.1: address already in use"},
		{fmt.Errorf("10.0.0.1: %w", store.ErrAddressInUse), 409, "10.0.0.1: address already in use"},
		{fmt.Errorf("parent eth1: %w", network.ErrParentBusy), 409, "parent eth1: parent busy"},
		{fmt.Errorf("network x has 1 attached endpoint(s):\n c1 (eth0): %w", network.ErrInUse), 409, "network x has 1 attached endpoint(s): c1 (eth0): network in use"},
		{fmt.Errorf("%w in 10.0.0.0/30", ipam.ErrPoolExhausted), 507, "no free address in 10.0.0.0/30"},
		{fmt.Errorf("parent eth9: %w", network.ErrNoParent), 400, "parent eth9: parent interface missing"},
		{fmt.Errorf("containerd container default/web is stopped: %w", network.ErrNotRunning), 409, "containerd container default/web is stopped: container not running"},
		{fmt.Errorf("eth0: %w", network.ErrNoLease), 504, "eth0: no DHCP lease"},
		{fmt.Errorf("etcd: %w", context.DeadlineExceeded), 500, "etcd: context deadline exceeded"},
		{errors.New("netlink exploded"), 500, "netlink exploded"},
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeManager{}
	srv := &http.Server{Handler: Handler(f, slog.New(slog.DiscardHandler), nil, nil)}
	go srv.Serve(ln)
	defer srv.Close()
	c := &api.Client{Socket: sock}
	for _, tc := range cases {
		f.err = tc.err
		err := apiclient.Do(c, "POST", "/attach", api.AttachRequest{ContainerID: "c", Pid: 5, Networks: []api.NetworkAttach{{Name: "n"}}}, nil)
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != tc.code {
			t.Errorf("%q: got %v, want status %d", tc.err, err, tc.code)
			continue
		}
		if got := "underlay: " + strings.Join(strings.Fields(err.Error()), " "); got != "underlay: "+tc.line {
			t.Errorf("%q: the CLI prints %q, want %q", tc.err, got, "underlay: "+tc.line)
		}
	}
}

func TestAuthorizerGuardsChanges(t *testing.T) {
	f := &fakeManager{}
	deny := func(*http.Request) error { return errors.New("permission denied: uid 1000") }
	h := Handler(f, slog.New(slog.DiscardHandler), deny, nil)
	if code, _ := do(t, h, "GET", "/v1/networks", ""); code != 200 {
		t.Fatalf("read refused: %d", code)
	}
	for _, r := range [][2]string{{"POST", "/v1/networks"}, {"DELETE", "/v1/networks/x"}, {"POST", "/v1/attach"}, {"POST", "/v1/detach"}} {
		if code, body := do(t, h, r[0], r[1], `{}`); code != 403 || !strings.Contains(body, "permission denied") {
			t.Errorf("%s %s: %d %s", r[0], r[1], code, body)
		}
	}
	if code, body := do(t, h, "GET", "/v1/nope", ""); code != 404 || !strings.Contains(body, "no such API route") {
		t.Fatalf("unknown route: %d %s", code, body)
	}
}

// Whatever the body, the API answers with a status and a one-line JSON
// error or calls the manager with a decoded request; it never panics.
func FuzzAPIDecode(f *testing.F) {
	paths := []string{"/v1/attach", "/v1/detach", "/v1/networks", "/v1/prune"}
	f.Add(uint8(0), `{"container_id":"c","pid":5,"networks":[{"name":"n","ip":"10.0.0.5"}]}`)
	f.Add(uint8(2), `{"name":"n","subnets":["10.0.0.0/24"],"options":{"parent":"eth0"}}`)
	f.Add(uint8(1), `{"container_id":"c"}`)
	f.Add(uint8(2), `{"name":"n"}{`)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		h := Handler(&fakeManager{}, slog.New(slog.DiscardHandler), nil, nil)
		req := httptest.NewRequest("POST", paths[int(which)%len(paths)], strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 400 {
			out := rec.Body.String()
			if !strings.HasPrefix(out, `{"error":`) || strings.Count(out, "\n") != 1 {
				t.Fatalf("%d: %q", rec.Code, out)
			}
		}
	})
}

// endpoint ls is streamed; none, one and several must each be a JSON list.
func TestEndpointsStreamed(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		f := &fakeManager{}
		for i := 0; i < n; i++ {
			f.eps = append(f.eps, api.Endpoint{Network: "n", ContainerID: fmt.Sprintf("c%d", i), Addresses: []string{"10.0.0.2/24"}})
		}
		code, body := do(t, Handler(f, slog.New(slog.DiscardHandler), nil, nil), "GET", "/v1/endpoints", "")
		var got []api.Endpoint
		if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got) != n || body[len(body)-1] != '\n' {
			t.Errorf("%d endpoints: %d %q (%v)", n, code, body, err)
		}
		if n == 3 && got[2].ContainerID != "c2" {
			t.Errorf("order lost: %+v", got)
		}
	}
}
