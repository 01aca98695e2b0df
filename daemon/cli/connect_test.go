package main

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/underlay/underlay/daemon/api"
)

func TestParsePodman(t *testing.T) {
	exit := errors.New("exit status 125")
	for _, c := range []struct {
		name    string
		out     string
		stderr  string
		err     error
		running bool
		id      string
		pid     int
		msg     string
	}{
		{"running", "f00d 4242\n", "", nil, true, "f00d", 4242, ""},
		{"stopped for disconnect", "f00d 0\n", "", nil, false, "f00d", 0, ""},
		{"stopped for connect", "f00d 0\n", "", nil, true, "", 0, "podman container web is not running"},
		{"no such", "", "Error: no such container web\n", exit, true, "", 0, "podman has no container web"},
		{"other failure", "", "time=x level=warning msg=y\nError: database is locked\n", exit, true, "", 0,
			"podman container inspect web: database is locked"},
		{"no stderr", "", "", exit, true, "", 0, "podman container inspect web: exit status 125"},
		{"not installed", "", "", &exec.Error{Name: "podman", Err: exec.ErrNotFound}, true, "", 0, "no podman to ask (not on PATH)"},
		{"garbage", "what\n", "", nil, true, "", 0, `podman container inspect web: unexpected output "what"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, pid, err := parsePodman("web", []byte(c.out), c.stderr, c.err, c.running)
			if fmt.Sprint(err) != map[bool]string{true: "<nil>", false: c.msg}[c.msg == ""] || id != c.id || pid != c.pid {
				t.Errorf("got %q %d %v, want %q %d %q", id, pid, err, c.id, c.pid, c.msg)
			}
		})
	}
}

// podman is asked only about a bare name that underlayd did not find.
func TestAskPodman(t *testing.T) {
	notFound := &api.StatusError{Code: 404, Msg: "container web: no underlay endpoint"}
	for _, c := range []struct {
		err  error
		req  api.ConnectRequest
		want bool
	}{
		{notFound, api.ConnectRequest{Container: "web"}, true},
		{notFound, api.ConnectRequest{Container: "default/web"}, false},
		{notFound, api.ConnectRequest{Container: "web", Pid: 7}, false},
		{notFound, api.ConnectRequest{Netns: "/run/netns/x"}, false},
		{&api.StatusError{Code: 409, Msg: "not running"}, api.ConnectRequest{Container: "web"}, false},
		{api.ErrDaemonDown, api.ConnectRequest{Container: "web"}, false},
		{nil, api.ConnectRequest{Container: "web"}, false},
	} {
		if got := askPodman(c.err, c.req); got != c.want {
			t.Errorf("askPodman(%v, %+v) = %v, want %v", c.err, c.req, got, c.want)
		}
	}
}

// Arguments are checked before anything is asked: NETWORK and CONTAINER,
// or NETWORK alone with --pid.
func TestConnectArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"network", "connect", "lan"}, `"network connect" needs NETWORK and CONTAINER (or --pid PID)`},
		{[]string{"network", "connect", "lan", "a", "b"}, `"network connect" takes NETWORK and one CONTAINER, got 3 arguments`},
		{[]string{"network", "disconnect"}, `"network disconnect" needs NETWORK and CONTAINER (or --pid PID)`},
	} {
		app := newApp()
		err := app.Run(flagsFirst(app, append([]string{"underlay", "--socket", "/nonexistent/ulcx.sock"}, c.args...)))
		if fmt.Sprint(err) != c.msg {
			t.Errorf("%v: got %v, want %s", c.args, err, c.msg)
		}
	}
	// With --pid, NETWORK alone is enough: the request reaches the socket.
	app := newApp()
	err := app.Run(flagsFirst(app, []string{"underlay", "--socket", "/nonexistent/ulcx.sock", "network", "connect", "lan", "--pid", "7"}))
	if !errors.Is(err, api.ErrDaemonDown) {
		t.Errorf("connect --pid 7 lan: got %v, want underlayd not running", err)
	}
}
