package events

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

type call struct {
	ns, id string
	at     time.Time
}

type fakeHandler struct{ calls []call }

func (f *fakeHandler) ContainerGone(ns, id string, at time.Time) error {
	f.calls = append(f.calls, call{ns, id, at})
	return nil
}

func (f *fakeHandler) Live(map[string]map[string]bool, time.Time) error { return nil }

// Only the container's own process ending, or the container's deletion,
// releases it; an exec ending does not. The event's time is passed on, so
// a late event cannot release a newer attach.
func TestHandle(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		ev   any
		want string
	}{
		{"task delete", &apievents.TaskDelete{ContainerID: "web"}, "web"},
		{"task delete of init", &apievents.TaskDelete{ContainerID: "web", ID: "web"}, "web"},
		{"exec ended", &apievents.TaskDelete{ContainerID: "web", ID: "exec-1"}, ""},
		{"task exit", &apievents.TaskExit{ContainerID: "web", ID: "web"}, "web"},
		{"exec exit", &apievents.TaskExit{ContainerID: "web", ID: "exec-1"}, ""},
		{"container delete", &apievents.ContainerDelete{ID: "db"}, "db"},
		{"other event", &apievents.TaskStart{ContainerID: "web"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			any, err := typeurl.MarshalAny(c.ev)
			if err != nil {
				t.Fatal(err)
			}
			h := &fakeHandler{}
			m := &Monitor{Handler: h, Log: slog.New(slog.DiscardHandler)}
			m.handle("ns1", "/x", any, at)
			switch {
			case c.want == "" && len(h.calls) != 0:
				t.Fatalf("released on %T: %+v", c.ev, h.calls)
			case c.want != "" && (len(h.calls) != 1 || h.calls[0] != call{"ns1", c.want, at}):
				t.Fatalf("calls %+v, want %s at %v", h.calls, c.want, at)
			}
		})
	}
}

// A lookup with no containerd at the address fails at once, naming it.
func TestFinderNoSocket(t *testing.T) {
	start := time.Now()
	_, _, err := Finder{Address: filepath.Join(t.TempDir(), "ulcx.sock")}.FindContainer("default", "web")
	if err == nil || !strings.Contains(err.Error(), "containerd is not at ") || time.Since(start) > time.Second {
		t.Errorf("got %v after %s: want an immediate \"containerd is not at\"", err, time.Since(start))
	}
}
