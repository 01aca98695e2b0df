// Package server is underlayd's HTTP/JSON API on a unix socket. It decodes
// and bounds requests, calls the network manager, and maps its sentinel
// errors to status codes. It holds no state of its own.
package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/network"
)

// Manager is what the API needs from the network manager.
type Manager interface {
	Create(api.NetworkCreate) (api.Network, error)
	Remove(name string) error
	List() []api.Network
	Inspect(name string) (api.Network, error)
	EachEndpoint(func(api.Endpoint) error) error
	Attach(api.AttachRequest) (api.AttachResponse, error)
	Detach(api.DetachRequest) (api.DetachResponse, error)
	Prune() (int, error)
	Hosts() ([]api.Host, error)
	ReclaimHost(name string) (api.ReclaimResponse, error)
	AttachCNI(api.CNIRequest) (api.Endpoint, error)
	DetachCNI(api.CNIRequest) error
	CheckCNI(api.CNIRequest) (api.Endpoint, error)
	GCCNI(api.CNIGC) (int, error)
	Connect(api.ConnectRequest) (api.Endpoint, error)
	Disconnect(api.ConnectRequest) error
}

var _ Manager = (*network.Manager)(nil)

// Authorizer decides whether the peer of a request may change state.
type Authorizer func(r *http.Request) error

// Handler returns the API's routes. authz guards every request that changes
// state; nil allows all (tests). broker streams the events (GET
// /v1/events); nil serves none.
func Handler(m Manager, log *slog.Logger, authz Authorizer, broker *Broker) http.Handler {
	s := &server{m: m, log: log, authz: authz, broker: broker}
	mux := http.NewServeMux()
	p := "/" + api.Version
	mux.HandleFunc("GET "+p+"/ping", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET "+p+"/networks", s.list)
	mux.HandleFunc("POST "+p+"/networks", s.guard(s.create))
	mux.HandleFunc("GET "+p+"/networks/{name}", s.inspect)
	mux.HandleFunc("DELETE "+p+"/networks/{name}", s.guard(s.remove))
	mux.HandleFunc("GET "+p+"/endpoints", s.endpoints)
	mux.HandleFunc("POST "+p+"/attach", s.guard(s.attach))
	mux.HandleFunc("POST "+p+"/detach", s.guard(s.detach))
	mux.HandleFunc("POST "+p+"/prune", s.guard(s.prune))
	mux.HandleFunc("POST "+p+"/networks/{name}/connect", s.guard(s.connect))
	mux.HandleFunc("POST "+p+"/networks/{name}/disconnect", s.guard(s.disconnect))
	mux.HandleFunc("POST "+p+"/cni/add", s.guard(s.cniAdd))
	mux.HandleFunc("POST "+p+"/cni/del", s.guard(s.cniDel))
	mux.HandleFunc("POST "+p+"/cni/check", s.guard(s.cniCheck))
	mux.HandleFunc("POST "+p+"/cni/gc", s.guard(s.cniGC))
	mux.HandleFunc("GET "+p+"/hosts", s.hosts)
	mux.HandleFunc("GET "+p+"/events", s.events)
	mux.HandleFunc("POST "+p+"/hosts/{name}/reclaim", s.guard(s.reclaim))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, fmt.Sprintf("no such API route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type server struct {
	m      Manager
	log    *slog.Logger
	authz  Authorizer
	broker *Broker
}

func (s *server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.authz != nil {
			if err := s.authz(r); err != nil {
				fail(w, http.StatusForbidden, err.Error())
				return
			}
		}
		h(w, r)
	}
}

func (s *server) hosts(w http.ResponseWriter, r *http.Request) {
	hs, err := s.m.Hosts()
	if err != nil {
		s.error(w, "list hosts", err)
		return
	}
	reply(w, http.StatusOK, hs)
}

func (s *server) reclaim(w http.ResponseWriter, r *http.Request) {
	resp, err := s.m.ReclaimHost(r.PathValue("name"))
	if err != nil {
		s.error(w, "reclaim host", err)
		return
	}
	reply(w, http.StatusOK, resp)
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	reply(w, http.StatusOK, s.m.List())
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkCreate
	if !decode(w, r, &req) {
		return
	}
	n, err := s.m.Create(req)
	if err != nil {
		s.error(w, "create network", err)
		return
	}
	reply(w, http.StatusCreated, n)
}

func (s *server) inspect(w http.ResponseWriter, r *http.Request) {
	n, err := s.m.Inspect(r.PathValue("name"))
	if err != nil {
		s.error(w, "inspect network", err)
		return
	}
	reply(w, http.StatusOK, n)
}

func (s *server) remove(w http.ResponseWriter, r *http.Request) {
	if err := s.m.Remove(r.PathValue("name")); err != nil {
		s.error(w, "remove network", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// endpoints streams the list: built whole, the answer for 65,000
// endpoints costs the daemon over 100 MiB of memory for a while.
func (s *server) endpoints(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	sep := byte('[')
	err := s.m.EachEndpoint(func(ep api.Endpoint) error {
		b, err := json.Marshal(ep)
		if err != nil {
			return err
		}
		bw.WriteByte(sep)
		sep = ','
		_, err = bw.Write(b)
		return err
	})
	if err != nil {
		s.log.Warn("endpoint list cut short", "err", err)
		return // the client sees malformed JSON, never a partial list that parses
	}
	if sep == '[' {
		bw.WriteByte('[')
	}
	bw.WriteString("]\n")
	_ = bw.Flush()
}

func (s *server) attach(w http.ResponseWriter, r *http.Request) {
	var req api.AttachRequest
	if !decode(w, r, &req) {
		return
	}
	resp, err := s.m.Attach(req)
	if err != nil {
		s.error(w, "attach", err)
		return
	}
	reply(w, http.StatusOK, resp)
}

func (s *server) detach(w http.ResponseWriter, r *http.Request) {
	var req api.DetachRequest
	if !decode(w, r, &req) {
		return
	}
	resp, err := s.m.Detach(req)
	if err != nil {
		s.error(w, "detach", err)
		return
	}
	reply(w, http.StatusOK, resp)
}

func (s *server) connect(w http.ResponseWriter, r *http.Request) {
	var req api.ConnectRequest
	if !decode(w, r, &req) {
		return
	}
	req.Network = r.PathValue("name")
	ep, err := s.m.Connect(req)
	if err != nil {
		s.error(w, "connect", err)
		return
	}
	reply(w, http.StatusOK, ep)
}

func (s *server) disconnect(w http.ResponseWriter, r *http.Request) {
	var req api.ConnectRequest
	if !decode(w, r, &req) {
		return
	}
	req.Network = r.PathValue("name")
	if err := s.m.Disconnect(req); err != nil {
		s.error(w, "disconnect", err)
		return
	}
	reply(w, http.StatusOK, struct{}{})
}

func (s *server) cniAdd(w http.ResponseWriter, r *http.Request) {
	var req api.CNIRequest
	if !decode(w, r, &req) {
		return
	}
	ep, err := s.m.AttachCNI(req)
	if err != nil {
		s.error(w, "CNI ADD", err)
		return
	}
	reply(w, http.StatusOK, ep)
}

func (s *server) cniDel(w http.ResponseWriter, r *http.Request) {
	var req api.CNIRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.m.DetachCNI(req); err != nil {
		s.error(w, "CNI DEL", err)
		return
	}
	reply(w, http.StatusOK, struct{}{})
}

func (s *server) cniCheck(w http.ResponseWriter, r *http.Request) {
	var req api.CNIRequest
	if !decode(w, r, &req) {
		return
	}
	ep, err := s.m.CheckCNI(req)
	if err != nil {
		s.error(w, "CNI CHECK", err)
		return
	}
	reply(w, http.StatusOK, ep)
}

func (s *server) cniGC(w http.ResponseWriter, r *http.Request) {
	var req api.CNIGC
	if !decode(w, r, &req) {
		return
	}
	n, err := s.m.GCCNI(req)
	if err != nil {
		s.error(w, "CNI GC", err)
		return
	}
	reply(w, http.StatusOK, api.PruneResponse{Released: n})
}

func (s *server) prune(w http.ResponseWriter, r *http.Request) {
	n, err := s.m.Prune()
	if err != nil {
		s.error(w, "prune", err)
		return
	}
	reply(w, http.StatusOK, api.PruneResponse{Released: n})
}

// decode reads a bounded JSON body with no unknown fields and nothing
// after it.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		if _, e := io.Copy(io.Discard, body); e != nil {
			err = e
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", api.MaxBodyBytes))
			return false
		}
		fail(w, http.StatusBadRequest, "malformed request: "+decodeError(err))
		return false
	}
	return true
}

// decodeError says what was wrong with a request body in the API's terms
// (its JSON field names and JSON's types), not in Go's.
func decodeError(err error) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return "empty body: want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("field %q: a JSON %s where %s is wanted", typ.Field, typ.Value, jsonKind(typ.Type))
	case errors.As(err, &typ):
		return fmt.Sprintf("a JSON %s where %s is wanted", typ.Value, jsonKind(typ.Type))
	case errors.As(err, &syn):
		return fmt.Sprintf("not JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}

// classStatus is the HTTP status of each class of error (network.ErrorClass,
// the one mapping of the manager's sentinels); any other is a 500.
var classStatus = map[string]int{
	api.ErrorClassInvalid:  http.StatusBadRequest,
	api.ErrorClassNoParent: http.StatusBadRequest,
	api.ErrorClassNotFound: http.StatusNotFound,
	api.ErrorClassInUse:    http.StatusConflict,
	api.ErrorClassFull:     http.StatusInsufficientStorage,
	api.ErrorClassNoLease:  http.StatusGatewayTimeout,
}

// statusOf maps an error to its HTTP status by the sentinel it wraps;
// anything else is underlayd's own failure, a 500.
func statusOf(err error) int {
	if code, ok := classStatus[network.ErrorClass(err)]; ok {
		return code
	}
	return http.StatusInternalServerError
}

func (s *server) error(w http.ResponseWriter, what string, err error) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		s.log.Error(what+" failed", "err", err)
	}
	fail(w, code, err.Error())
}

func reply(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(w, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func fail(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(api.Error{Error: msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
