package lifecycle

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// bin is the absolute path of one of make build's binaries.
func bin(name string) string { return filepath.Join(tl.BinDir(), name) }

// require is testlab.Require plus the host tools these tests call.
func require(t *testing.T, tools ...string) {
	t.Helper()
	tl.Require(t, append([]string{"ip", "unshare", "nsenter"}, tools...)...)
}

// tempDir is a world-traversable (0755) directory under /tmp with a short
// path: unix socket paths are limited to 107 bytes, and the access tests run
// the CLI as other users.
func tempDir(t *testing.T) string {
	t.Helper()
	return tl.ShortTempDir(t, "ull", 0o755)
}

// run runs a command with a timeout and returns its combined output.
func run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	return tl.RunCombined(timeout, env, name, args...)
}

// waitFor polls cond every step until it returns nil or timeout passes, and
// returns how long it took.
func waitFor(timeout, step time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), err
		}
		time.Sleep(step)
	}
}

// underlayd is testlab's daemon with what these tests ask of it: hooks
// from an OCI state and endpoint ls as rows.
type underlayd struct{ *tl.Daemon }

// newUnderlayd prepares a daemon in dir without starting it.
func newUnderlayd(t *testing.T, dir string, args ...string) *underlayd {
	t.Helper()
	return &underlayd{tl.NewDaemon(t, dir, args...)}
}

// startUnderlayd starts a daemon and fails the test if it does not answer.
func startUnderlayd(t *testing.T, dir string, args ...string) *underlayd {
	t.Helper()
	u := newUnderlayd(t, dir, args...)
	u.Start()
	return u
}

// ociState is the state a runtime gives a hook on stdin.
type ociState struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// hook runs bin/underlay-hook STAGE with st on stdin against this daemon.
func (u *underlayd) hook(stage string, st ociState) (string, error) {
	if st.Version == "" {
		st.Version = "1.0.2"
	}
	if st.Status == "" {
		st.Status = map[string]string{"createRuntime": "creating", "poststop": "stopped"}[stage]
	}
	b, _ := json.Marshal(st)
	out, err := u.Hook(b, stage)
	return strings.TrimSpace(out), err
}

// endpointRow is one line of `underlay endpoint ls`, what the user sees.
type endpointRow struct {
	Network, Container, IfName, MAC, State string
	Addresses                              []string
}

func (r endpointRow) String() string {
	return fmt.Sprintf("%s %s %s %s %s %s", r.Network, r.Container, r.IfName, strings.Join(r.Addresses, ","), r.MAC, r.State)
}

// endpoints parses `underlay endpoint ls`.
func (u *underlayd) endpoints() ([]endpointRow, error) {
	fields, err := tl.EndpointRows(u.CLI)
	if err != nil {
		return nil, err
	}
	var rows []endpointRow
	for _, f := range fields {
		rows = append(rows, endpointRow{Network: f[0], Container: f[1], IfName: f[2],
			Addresses: strings.Split(f[3], ","), MAC: f[4], State: f[5]})
	}
	return rows, nil
}

// mustHook runs the hook at stage (createRuntime or poststop) for f on
// network and stops the test if it fails.
func (u *underlayd) mustHook(t *testing.T, stage string, f *fake, network string) {
	t.Helper()
	if out, err := u.hook(stage, f.state("", annFor(network))); err != nil {
		t.Fatalf("%s of %s: %v: %s", stage, f.ID, err, out)
	}
}

func (u *underlayd) mustEndpoints(t *testing.T) []endpointRow {
	t.Helper()
	rows, err := u.endpoints()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// endpointOf returns the row of container (as endpoint ls names it:
// "namespace/id" for containerd containers) on network, if any.
func (u *underlayd) endpointOf(t *testing.T, network, container string) (endpointRow, bool) {
	t.Helper()
	for _, r := range u.mustEndpoints(t) {
		if r.Network == network && r.Container == container {
			return r, true
		}
	}
	return endpointRow{}, false
}

// waitGone polls endpoint ls until container has no endpoint, and returns
// how long that took after the call.
func (u *underlayd) waitGone(t *testing.T, container string, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	return waitFor(timeout, 20*time.Millisecond, func() error {
		rows, err := u.endpoints()
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Container == container {
				return fmt.Errorf("endpoint ls still lists %s: %s", container, r)
			}
		}
		return nil
	})
}

// mustContain fails unless out contains every want.
func mustContain(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, out)
		}
	}
}
