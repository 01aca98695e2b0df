package lifecycle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	tl "github.com/underlay/underlay/integration/testlab"
)

// throwawayAccount makes a group and two users, one in the group and one
// not, all named ull<something>, and removes them at cleanup.
func throwawayAccounts(t *testing.T) (group, member, outsider string) {
	t.Helper()
	n := os.Getpid() % 100000
	group, member, outsider = fmt.Sprintf("ullg%d", n), fmt.Sprintf("ullm%d", n), fmt.Sprintf("ullo%d", n)
	remove := func() {
		for _, u := range []string{member, outsider} {
			_, _ = run(10*time.Second, nil, "userdel", u)
		}
		_, _ = run(10*time.Second, nil, "groupdel", group)
	}
	remove()
	t.Cleanup(remove)
	tl.MustRun(t, "groupadd", group)
	// -N: no group of their own; their primary group is "users", not ours.
	tl.MustRun(t, "useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", group, member)
	tl.MustRun(t, "useradd", "-M", "-N", "-s", "/usr/sbin/nologin", outsider)
	return group, member, outsider
}

// cliAs runs the underlay CLI as user (with the groups /etc/group gives it).
func (u *underlayd) cliAs(who string, args ...string) (string, error) {
	return run(30*time.Second, nil, "setpriv", append([]string{"--reuid=" + who, "--regid=users", "--init-groups", "--",
		bin("underlay"), "--socket", u.Socket}, args...)...)
}

// The socket is root's, mode 0660; with --socket-group a member of that
// group may create networks and an outsider gets "permission denied". Even
// when the socket's mode lets everyone connect, the daemon checks the
// peer (SO_PEERCRED): an outsider may look, but not change anything.
func TestPrivilegedSocketAccess(t *testing.T) {
	require(t, "setpriv", "useradd", "userdel", "groupadd", "groupdel")
	group, member, outsider := throwawayAccounts(t)
	grp, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(grp.Gid)
	lan := tl.NewLAN(t, "ulla", "10.90.0.1/24")
	dir := tempDir(t)

	// Without --socket-group: root only.
	u0 := startUnderlayd(t, filepath.Join(dir, "root-only"))
	checkSocket(t, u0.Socket, 0)
	if out, err := u0.cliAs(member, "network", "ls"); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("non-root user on a root-only socket: want permission denied, got %v: %s", err, out)
	}
	if err := u0.Stop(); err != nil {
		t.Fatal(err)
	}

	u := startUnderlayd(t, filepath.Join(dir, "group"), "--socket-group", group)
	checkSocket(t, u.Socket, gid)
	create := func(name, subnet string) []string {
		return []string{"network", "create", "--subnet", subnet, "-o", "parent=" + lan.Uplink, name}
	}
	if out, err := u.cliAs(member, create("ulla-member", "10.90.0.0/25")...); err != nil {
		t.Errorf("member of %s: network create: %v", group, err)
	} else {
		t.Logf("member created a network: %s", strings.TrimSpace(out))
	}
	if out, err := u.cliAs(member, "network", "ls"); err != nil || !strings.Contains(out, "ulla-member") {
		t.Errorf("member of %s: network ls: %v: %s", group, err, out)
	}
	out, err := u.cliAs(outsider, create("ulla-outsider", "10.90.0.128/25")...)
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("outsider: network create: want permission denied, got %v: %s", err, out)
	} else {
		t.Logf("outsider refused: %s", strings.TrimSpace(out))
	}
	if out, err := u.cliAs(outsider, "network", "ls"); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("outsider: network ls: want permission denied, got %v: %s", err, out)
	}

	// A socket whose mode was loosened: connecting works, changing does not.
	if err := os.Chmod(u.Socket, 0o666); err != nil {
		t.Fatal(err)
	}
	if out, err := u.cliAs(outsider, "network", "ls"); err != nil {
		t.Errorf("outsider on a 0666 socket: network ls (read only) refused: %v", err)
	} else if !strings.Contains(out, "ulla-member") {
		t.Errorf("outsider on a 0666 socket: network ls: %s", out)
	}
	out, err = u.cliAs(outsider, create("ulla-outsider", "10.90.0.128/25")...)
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("outsider on a 0666 socket: network create: want permission denied from the peer check, got %v: %s", err, out)
	} else {
		t.Logf("outsider refused by the peer check: %s", strings.TrimSpace(out))
	}
	if out, err := u.cliAs(outsider, "network", "rm", "ulla-member"); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("outsider on a 0666 socket: network rm: want permission denied, got %v: %s", err, out)
	}
	if out := u.MustCLI(t, "network", "ls"); strings.Contains(out, "ulla-outsider") || !strings.Contains(out, "ulla-member") {
		t.Errorf("after the outsider's attempts:\n%s", out)
	}
	if out, err := u.cliAs(member, "network", "rm", "ulla-member"); err != nil {
		t.Errorf("member: network rm: %v: %s", err, out)
	}
}

// checkSocket asserts a socket owned by root:gid with mode 0660.
func checkSocket(t *testing.T, path string, gid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 || st.Uid != 0 || int(st.Gid) != gid {
		t.Errorf("socket %s: mode %v owner %d:%d, want a socket, mode 0660, owner 0:%d", path, fi.Mode(), st.Uid, st.Gid, gid)
	}
}

// rawRequest sends one HTTP request over the socket, body as given, and
// returns the status and the error text of the answer.
func rawRequest(t *testing.T, sock, method, path string, body []byte) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: underlayd\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		method, path, len(body))
	// Write and read at once: a daemon that stops reading an oversized
	// body answers before the client has sent it all.
	go func() { _, _ = c.Write(append([]byte(head), body...)) }()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: no answer: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	return resp.StatusCode, e.Error
}

// Oversized, malformed and unknown-field bodies, bad interface names and bad
// container ids are refused with a status and a sentence, change nothing,
// and the daemon keeps serving.
func TestPrivilegedAPIRejectsBadBodies(t *testing.T) {
	require(t)
	lan := tl.NewLAN(t, "ullb", "10.91.0.1/24")
	u := startUnderlayd(t, filepath.Join(tempDir(t), "uld"))
	p := "/" + api.Version
	good := fmt.Sprintf(`{"name":"ullb-net","driver":"macvlan","subnets":["10.91.0.0/24"],"options":{"parent":%q}`, lan.Uplink)
	huge := []byte(`{"name":"` + strings.Repeat("a", api.MaxBodyBytes+1024) + `"}`)
	cases := []struct {
		name, method, path string
		body               []byte
		code               int
		want               string
	}{
		{"oversized", "POST", p + "/networks", huge, http.StatusRequestEntityTooLarge, "larger than"},
		{"oversized attach", "POST", p + "/attach", huge, http.StatusRequestEntityTooLarge, "larger than"},
		{"truncated json", "POST", p + "/networks", []byte(good), http.StatusBadRequest, "malformed request"},
		{"not json", "POST", p + "/networks", []byte("name=ullb-net"), http.StatusBadRequest, "malformed request"},
		{"unknown field", "POST", p + "/networks", []byte(good + `,"bogus":1}`), http.StatusBadRequest, `unknown field "bogus"`},
		{"unknown field in attach", "POST", p + "/attach", []byte(`{"container_id":"ullb-c","pid":1,"networks":[{"name":"ullb-net"}],"netns":"/proc/1/ns/net"}`), http.StatusBadRequest, `unknown field "netns"`},
		{"wrong type", "POST", p + "/networks", []byte(`{"name":5}`), http.StatusBadRequest, "malformed request"},
		{"data after the object", "POST", p + "/networks", []byte(good + `} {}`), http.StatusBadRequest, "after the JSON object"},
		{"empty body", "POST", p + "/networks", nil, http.StatusBadRequest, "malformed request"},
		{"parent name too long", "POST", p + "/networks", []byte(`{"name":"ullb-net","subnets":["10.91.0.0/24"],"options":{"parent":"ullbabcdefghijklmnop"}}`), http.StatusBadRequest, "longer than 15"},
		{"parent name with a slash", "POST", p + "/networks", []byte(`{"name":"ullb-net","subnets":["10.91.0.0/24"],"options":{"parent":"ullb/up"}}`), http.StatusBadRequest, "interface name"},
		{"parent name with a newline", "POST", p + "/networks", []byte(`{"name":"ullb-net","subnets":["10.91.0.0/24"],"options":{"parent":"ullb\nup"}}`), http.StatusBadRequest, "interface name"},
		{"container id with a slash", "POST", p + "/attach", []byte(`{"container_id":"../../x","pid":1,"networks":[{"name":"ullb-net"}]}`), http.StatusBadRequest, "container id"},
		{"detach container id with a slash", "POST", p + "/detach", []byte(`{"container_id":"a/b"}`), http.StatusBadRequest, "container id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, msg := rawRequest(t, u.Socket, c.method, c.path, c.body)
			if code != c.code || !strings.Contains(msg, c.want) {
				t.Errorf("got %d %q, want %d and %q", code, msg, c.code, c.want)
			}
			if strings.Contains(msg, "goroutine") || strings.Count(msg, "\n") > strings.Count(string(c.body), "\\n") {
				t.Errorf("answer is not one sentence: %q", msg)
			}
		})
	}
	if out := u.MustCLI(t, "network", "ls"); strings.Contains(out, "ullb") {
		t.Errorf("a refused request created a network:\n%s", out)
	}
	// Still serving, and a good request works.
	if code, msg := rawRequest(t, u.Socket, "POST", p+"/networks", []byte(good+"}")); code != http.StatusCreated {
		t.Errorf("good create after the bad ones: %d %s", code, msg)
	}
	if rows := u.mustEndpoints(t); len(rows) != 0 {
		t.Errorf("endpoints: %v", rows)
	}
}
