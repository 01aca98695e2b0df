package server

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
)

// streamFrom opens GET /v1/events with filters and returns its lines.
func streamFrom(t *testing.T, b *Broker, filters ...string) (*bufio.Scanner, func()) {
	t.Helper()
	srv := httptest.NewServer(Handler(&fakeManager{}, slog.New(slog.DiscardHandler), nil, b))
	q := ""
	for i, f := range filters {
		if i == 0 {
			q = "?"
		} else {
			q += "&"
		}
		q += "filter=" + f
	}
	resp, err := http.Get(srv.URL + "/v1/events" + q)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/events%s: %s", q, resp.Status)
	}
	return bufio.NewScanner(resp.Body), func() { resp.Body.Close(); srv.Close() }
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

func TestEventStreamBadFilter(t *testing.T) {
	h := Handler(&fakeManager{}, slog.New(slog.DiscardHandler), nil, &Broker{})
	for _, f := range []string{"colour=red", "network", "network="} {
		code, body := do(t, h, "GET", "/v1/events?filter="+f, "")
		if code != 400 || !strings.Contains(body, "filter") {
			t.Errorf("filter %q: %d %s, want 400 naming the filter", f, code, body)
		}
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
