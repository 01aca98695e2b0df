package runtime_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// underlayd is a private daemon (socket and state under the test's dir) and
// the CLI pointed at it.
type underlayd struct {
	bin  string
	sock string
	*daemon
}

// startUnderlayd starts bin/underlayd; containerdAddr may be empty (no
// events). It returns once the socket exists.
func startUnderlayd(t *testing.T, bin, dir, sock, containerdAddr string) *underlayd {
	t.Helper()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--socket", sock, "--state-dir", state}
	if containerdAddr != "" {
		args = append(args, "--containerd-address", containerdAddr)
	}
	d := tl.StartProc(t, filepath.Join(dir, "underlayd.log"), nil, filepath.Join(bin, "underlayd"), args...)
	d.CleanExit = true
	d.WaitFor(t, "socket "+sock, 10*time.Second, func() error {
		fi, err := os.Stat(sock)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return errors.New("not a socket")
		}
		return nil
	})
	return &underlayd{bin: bin, sock: sock, daemon: d}
}

// cli runs `underlay --socket SOCK args...`.
func (u *underlayd) cli(args ...string) (string, error) {
	return run(nil, filepath.Join(u.bin, "underlay"), append([]string{"--socket", u.sock}, args...)...)
}

func (u *underlayd) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	return tl.Must(t)(u.cli(args...))
}

// endpoints returns the lines of `underlay endpoint ls` that mention any of
// the given words (container names, addresses), so that the test does not
// depend on the column layout.
func (u *underlayd) endpoints(t *testing.T, words ...string) []string {
	t.Helper()
	out := u.mustCLI(t, "endpoint", "ls")
	var hits []string
	for _, line := range strings.Split(out, "\n") {
		for _, w := range words {
			if containsWord(line, w) {
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
		if containsWord(line, network) && strings.Contains(line, ip) {
			return
		}
	}
	t.Errorf("endpoint ls has no line with %s, %s and %s:\n%s", network, container, ip,
		u.mustCLI(t, "endpoint", "ls"))
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

// containsWord reports whether w occurs in line delimited by anything that
// cannot be part of a name or address, so "ulrt-a" does not match "ulrt-ab"
// and 10.77.1.5 does not match 10.77.1.50.
func containsWord(line, w string) bool {
	isName := func(b byte) bool {
		return b == '-' || b == '_' || b == '.' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for i := 0; ; {
		j := strings.Index(line[i:], w)
		if j < 0 {
			return false
		}
		s, e := i+j, i+j+len(w)
		if (s == 0 || !isName(line[s-1])) && (e == len(line) || !isName(line[e])) {
			return true
		}
		i = s + 1
	}
}
