package runtime_test

import (
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// underlayd is testlab's daemon with the checks these tests make of
// endpoint ls, which go by words, not columns.
type underlayd struct{ *tl.Daemon }

// newUnderlayd prepares a private daemon (socket and state in dir) without
// starting it, so that its socket can go into runtimes' configuration
// first.
func newUnderlayd(t *testing.T, dir string) *underlayd {
	t.Helper()
	return &underlayd{tl.NewDaemon(t, dir)}
}

// endpoints returns the lines of `underlay endpoint ls` that mention any of
// the given words (container names, addresses), so that the test does not
// depend on the column layout.
func (u *underlayd) endpoints(t *testing.T, words ...string) []string {
	t.Helper()
	out := u.MustCLI(t, "endpoint", "ls")
	var hits []string
	for _, line := range strings.Split(out, "\n") {
		for _, w := range words {
			if tl.ContainsWord(line, w) {
				hits = append(hits, line)
				break
			}
		}
	}
	return hits
}

// checkEndpoint asserts that endpoint ls has a line for container on network
// with address ip.
func (u *underlayd) checkEndpoint(t *testing.T, network, container, ip string) {
	t.Helper()
	for _, line := range u.endpoints(t, container) {
		if tl.ContainsWord(line, network) && strings.Contains(line, ip) {
			return
		}
	}
	t.Errorf("endpoint ls has no line with %s, %s and %s:\n%s", network, container, ip,
		u.MustCLI(t, "endpoint", "ls"))
}

// waitNoEndpoints waits (detach by hook is synchronous, by containerd event
// it is not) until endpoint ls mentions none of words.
func (u *underlayd) waitNoEndpoints(t *testing.T, words ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		hits := u.endpoints(t, words...)
		if len(hits) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint ls still lists removed containers after 5s:\n%s", strings.Join(hits, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
