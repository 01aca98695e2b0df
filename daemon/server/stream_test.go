package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
)

// serveUnix serves the API with broker b on a unix socket, as underlayd
// does, and returns a client of it.
func serveUnix(t *testing.T, b *Broker) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(&fakeManager{}, slog.New(slog.DiscardHandler), nil, b)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &api.Client{Socket: sock, Timeout: 5 * time.Second}
}

// streamFrom opens GET /v1/events with filters through api.Client.Stream,
// as `underlay events` does, and returns its lines.
func streamFrom(t *testing.T, b *Broker, filters ...string) (*bufio.Scanner, func()) {
	t.Helper()
	q := url.Values{"filter": filters}
	body, err := serveUnix(t, b).Stream("/events?" + q.Encode())
	if err != nil {
		t.Fatalf("GET /v1/events?%s: %v", q.Encode(), err)
	}
	return bufio.NewScanner(body), func() { body.Close() }
}

func next(t *testing.T, sc *bufio.Scanner) api.Event {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("stream ended: %v", sc.Err())
	}
	var e api.Event
	if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
		t.Fatalf("line %q: %v", sc.Text(), err)
	}
	return e
}

// subscribers waits until the broker has n readers: a stream's
// subscription is made after its request arrives.
func subscribers(t *testing.T, b *Broker, n int) {
	t.Helper()
	for i := 0; ; i++ {
		b.mu.Lock()
		got := len(b.subs)
		b.mu.Unlock()
		if got == n {
			return
		}
		if i == 500 {
			t.Fatalf("broker has %d readers, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A reader gets the events its filters keep, in order, as JSON lines.
func TestEventStream(t *testing.T) {
	b := &Broker{}
	sc, done := streamFrom(t, b, "network=a", "type=attach", "type=detach")
	defer done()
	subscribers(t, b, 1)
	b.Observe(api.Event{Type: api.EventAttach, Network: "b", Container: "x"})
	b.Observe(api.Event{Type: api.EventAttach, Network: "a", Container: "c1"})
	b.Observe(api.Event{Type: api.EventReconcile, Network: "a"})
	b.Observe(api.Event{Type: api.EventDetach, Network: "a", Container: "c1", Path: api.ReleasePoststop})
	if e := next(t, sc); e.Type != "attach" || e.Container != "c1" {
		t.Fatalf("first event %+v, want the attach of c1 on a", e)
	}
	if e := next(t, sc); e.Type != "detach" || e.Path != "poststop" {
		t.Fatalf("second event %+v, want the detach of c1 by poststop", e)
	}
	// The daemon shutting down ends the stream.
	b.Close()
	if sc.Scan() {
		t.Fatalf("stream goes on after Close: %q", sc.Text())
	}
}

// A bad filter is refused with one line naming it, as the CLI prints it;
// a daemon that is down is named as such.
func TestEventStreamRefused(t *testing.T) {
	c := serveUnix(t, &Broker{})
	for f, want := range map[string]string{
		"colour=red":    `filter "colour=red": unknown key colour (want network or type)`,
		"network":       `filter "network": want KEY=VALUE`,
		"network=":      `filter "network=": want KEY=VALUE`,
		"type=attached": `filter "type=attached": unknown event type attached (want attach, detach, reconcile, parent-create, parent-remove, network-create, network-remove, lease-lost)`,
	} {
		_, err := c.Stream("/events?" + url.Values{"filter": {f}}.Encode())
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != 400 || err.Error() != want {
			t.Errorf("filter %q: %v, want 400 %q", f, err, want)
		}
	}
	down := &api.Client{Socket: filepath.Join(t.TempDir(), "none.sock")}
	if _, err := down.Stream("/events"); !errors.Is(err, api.ErrDaemonDown) {
		t.Errorf("no daemon: %v, want %v", err, api.ErrDaemonDown)
	}
}

// A reader that does not read never holds up an attach: its queue fills,
// later events are counted as dropped, and once it catches up it is told
// how many it missed.
func TestEventStreamSlowReader(t *testing.T) {
	dropped := 0
	b := &Broker{Dropped: func(n int) { dropped += n }}
	s := b.subscribe(func(api.Event) bool { return true })
	for i := 0; i < streamQueue+100; i++ {
		b.Observe(api.Event{Type: api.EventAttach, Container: "c"})
	}
	if dropped != 100 {
		t.Fatalf("dropped %d, want 100", dropped)
	}
	for i := 0; i < streamQueue; i++ {
		<-s.ch
	}
	b.Observe(api.Event{Type: api.EventDetach, Container: "c"})
	if e := <-s.ch; e.Type != api.EventDropped || e.Dropped != 100 {
		t.Fatalf("after catching up: %+v, want a dropped event of 100", e)
	}
	if e := <-s.ch; e.Type != api.EventDetach {
		t.Fatalf("then %+v, want the detach", e)
	}
	b.unsubscribe(s)
}

// A reader that goes away is unsubscribed.
func TestEventStreamReaderGone(t *testing.T) {
	b := &Broker{}
	_, done := streamFrom(t, b)
	subscribers(t, b, 1)
	done()
	// The handler notices at its next write.
	for i := 0; i < 3; i++ {
		b.Observe(api.Event{Type: api.EventAttach})
	}
	subscribers(t, b, 0)
}
