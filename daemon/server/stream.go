package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/underlay/underlay/daemon/api"
)

// streamQueue is how many events one reader may fall behind before it
// misses some: a burst of 50 containers starting is 50 events.
const streamQueue = 1024

// Broker hands the network manager's events to `underlay events` readers
// (GET /v1/events). Observe never waits for a reader: one whose queue is
// full misses events and is told how many, in a "dropped" event, once it
// catches up.
type Broker struct {
	// Dropped, if set, is told of every event a reader missed.
	Dropped func(n int)

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch      chan api.Event
	keep    func(api.Event) bool
	dropped int // guarded by Broker.mu
}

// Observe offers e to every reader whose filter keeps it.
func (b *Broker) Observe(e api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if !s.keep(e) {
			continue
		}
		if s.dropped > 0 {
			select {
			case s.ch <- api.Event{Time: e.Time, Type: api.EventDropped, Dropped: s.dropped}:
				s.dropped = 0
			default:
			}
		}
		if s.dropped == 0 {
			select {
			case s.ch <- e:
				continue
			default:
			}
		}
		s.dropped++
		if b.Dropped != nil {
			b.Dropped(1)
		}
	}
}

func (b *Broker) subscribe(keep func(api.Event) bool) *subscriber {
	s := &subscriber{ch: make(chan api.Event, streamQueue), keep: keep}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s
	}
	if b.subs == nil {
		b.subs = map[*subscriber]struct{}{}
	}
	b.subs[s] = struct{}{}
	return s
}

// Subscribe is a reader of every event in the same process (the bench
// uses it): its queue, and the function that ends it.
func (b *Broker) Subscribe() (<-chan api.Event, func()) {
	s := b.subscribe(func(api.Event) bool { return true })
	return s.ch, func() { b.unsubscribe(s) }
}

func (b *Broker) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Close ends every stream, so that the server can shut down.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.ch)
	}
}

// eventFilter builds a reader's filter from ?filter=KEY=VALUE (repeatable):
// network=NAME and type=TYPE; values of one key are alternatives, keys
// must all hold, as in docker events.
func eventFilter(args []string) (func(api.Event) bool, error) {
	want := map[string]map[string]bool{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("filter %q: want KEY=VALUE", a)
		}
		switch k {
		case "network":
		case "type":
			// A misspelt type would keep the stream silent forever.
			if !slices.Contains(api.EventTypes, v) {
				return nil, fmt.Errorf("filter %q: unknown event type %s (want %s)", a, v, strings.Join(api.EventTypes, ", "))
			}
		default:
			return nil, fmt.Errorf("filter %q: unknown key %s (want network or type)", a, k)
		}
		if want[k] == nil {
			want[k] = map[string]bool{}
		}
		want[k][v] = true
	}
	return func(e api.Event) bool {
		if n := want["network"]; n != nil && !n[e.Network] {
			return false
		}
		if t := want["type"]; t != nil && !t[e.Type] {
			return false
		}
		return true
	}, nil
}

// events streams events as JSON lines until the reader goes away or the
// daemon shuts down.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	if s.broker == nil {
		fail(w, http.StatusNotFound, "this underlayd streams no events")
		return
	}
	keep, err := eventFilter(r.URL.Query()["filter"])
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	// The server's read timeout would end the stream after 30 s: its
	// background read of the idle connection would time out and cancel
	// the request.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	sub := s.broker.subscribe(keep)
	defer s.broker.unsubscribe(sub)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.ch:
			if !ok {
				return
			}
			if enc.Encode(e) != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
