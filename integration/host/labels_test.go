package host

import (
	"encoding/json"
	"fmt"
	osexec "os/exec"
	"strings"
	"testing"

	tl "github.com/underlay/underlay/integration/testlab"
)

// Labels, ls --filter and prune, as in Docker: prune asks first, removes
// only networks without endpoints, and -f skips the question.
func TestPrivilegedLabelsFilterPrune(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulhl", "10.91.0.1/24")
	d := tl.StartDaemon(t)
	d.MustCLI(t, "network", "create", "--subnet", "10.91.0.0/26", "-o", "parent="+lan.Uplink, "blue", "--label", "team=blue", "--label", "lab")
	d.MustCLI(t, "network", "create", "--subnet", "10.91.0.64/26", "-o", "parent="+lan.Uplink, "--label", "team=red", "red")
	d.MustCLI(t, "network", "create", "--subnet", "10.91.0.128/26", "-o", "parent="+lan.Uplink, "busy")
	if out, err := d.CLI("network", "create", "--label", "=x", "--subnet", "10.91.0.192/26", "-o", "parent="+lan.Uplink, "bad"); err == nil || !strings.Contains(out, `--label "=x"`) {
		t.Fatalf("empty label name: %v %s", err, out)
	}
	if out := d.MustCLI(t, "network", "inspect", "blue"); !strings.Contains(out, `"team": "blue"`) {
		t.Fatalf("inspect shows no labels:\n%s", out)
	}
	for _, c := range []struct {
		filter   []string
		want, no []string
	}{
		{[]string{"label=team=blue"}, []string{"blue"}, []string{"red", "busy"}},
		{[]string{"label=team"}, []string{"blue", "red"}, []string{"busy"}},
		{[]string{"name=u"}, []string{"blue", "busy"}, []string{"red"}},
		{[]string{"driver=macvlan", "label=lab"}, []string{"blue"}, []string{"red", "busy"}},
	} {
		args := []string{"network", "ls"}
		for _, f := range c.filter {
			args = append(args, "--filter", f)
		}
		out := d.MustCLI(t, args...)
		for _, w := range c.want {
			if !tl.ContainsWord(out, w) {
				t.Errorf("ls %v: %s missing:\n%s", c.filter, w, out)
			}
		}
		for _, n := range c.no {
			if tl.ContainsWord(out, n) {
				t.Errorf("ls %v: %s listed:\n%s", c.filter, n, out)
			}
		}
	}
	c := tl.NewContainer(t, "ulhl-c")
	if out, err := d.Attach(c, ann("io.underlay.network", "busy")); err != nil {
		t.Fatalf("attach: %v %s", err, out)
	}
	// Without -f prune asks; "n" keeps everything.
	cmd := osexec.Command(tl.BinDir()+"/underlay", "--socket", d.Socket, "network", "prune")
	cmd.Stdin = strings.NewReader("n\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Are you sure") {
		t.Fatalf("prune without -f: %v %s", err, out)
	}
	if out := d.MustCLI(t, "network", "ls"); !tl.ContainsWord(out, "blue") {
		t.Fatalf("prune answered no removed networks:\n%s", out)
	}
	out := d.MustCLI(t, "network", "prune", "-f", "--filter", "label=team")
	if !strings.Contains(out, "Deleted Networks:") || !tl.ContainsWord(out, "blue") || !tl.ContainsWord(out, "red") {
		t.Fatalf("prune -f --filter label=team:\n%s", out)
	}
	if out := d.MustCLI(t, "network", "prune", "-f"); tl.ContainsWord(out, "busy") {
		t.Fatalf("prune removed a network with an endpoint:\n%s", out)
	}
	if out := d.MustCLI(t, "network", "ls"); !tl.ContainsWord(out, "busy") || tl.ContainsWord(out, "blue") {
		t.Fatalf("after prune:\n%s", out)
	}
}

// network ls -q and --format json, endpoint ls --format json, and
// underlayd --log-format json: what scripts and log shippers read.
func TestPrivilegedOutputFormats(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulhf", "10.92.0.1/24")
	d := tl.StartDaemon(t, "--log-format", "json")
	d.MustCLI(t, "network", "create", "--subnet", "10.92.0.0/24", "-o", "parent="+lan.Uplink, "fmt")
	if out := d.MustCLI(t, "network", "ls", "-q"); strings.TrimSpace(out) != "fmt" {
		t.Errorf("network ls -q: %q, want only the name", out)
	}
	var nets []map[string]any
	if err := json.Unmarshal([]byte(d.MustCLI(t, "network", "ls", "--format", "json")), &nets); err != nil || len(nets) != 1 || nets[0]["name"] != "fmt" {
		t.Errorf("network ls --format json: %v %v", nets, err)
	}
	c := tl.NewContainer(t, "ulhf-c")
	bad := tl.NewContainer(t, "ulhf-bad")
	if out, err := d.Attach(bad, ann("io.underlay.network", "fmt", "io.underlay.ip", "10.93.0.5")); err == nil {
		t.Fatalf("attach outside the subnet: %s", out)
	}
	if out, err := d.Attach(c, ann("io.underlay.network", "fmt")); err != nil {
		t.Fatalf("attach: %v %s", err, out)
	}
	var eps []map[string]any
	if err := json.Unmarshal([]byte(d.MustCLI(t, "endpoint", "ls", "--format", "json")), &eps); err != nil || len(eps) != 1 || eps[0]["container_id"] != c.ID {
		t.Errorf("endpoint ls --format json: %v %v", eps, err)
	}
	// Docker's habits: -q and Go templates, with headers for "table".
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"endpoint", "ls", "-q"}, c.ID},
		{[]string{"endpoint", "ls", "--format", "{{.Container}} {{.IfName}} {{.Network}}"}, c.ID + " eth0 fmt"},
		{[]string{"network", "ls", "--format", `table {{.Name}}\t{{.InUse}}`}, "NAME   IN USE\nfmt    1"},
		{[]string{"network", "ls", "--format", "{{.Name}} {{.InUse}} {{.Free}}"}, "fmt 1 252"},
	} {
		if out := strings.TrimSpace(d.MustCLI(t, tc.args...)); out != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, out, tc.want)
		}
	}
	attached, refused := false, false
	for _, line := range strings.Split(strings.TrimSpace(d.Log()), "\n") {
		if strings.HasPrefix(line, "--- test:") {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		attached = attached || rec["msg"] == "attached" && rec["container"] == c.ID && rec["took"] != nil
		refused = refused || rec["msg"] == "attach refused" && rec["level"] == "WARN" && rec["container"] == bad.ID &&
			rec["network"] == "fmt" && rec["result"] == "invalid" && strings.Contains(fmt.Sprint(rec["err"]), "10.93.0.5")
	}
	if !attached {
		t.Errorf("no JSON attached line for %s in:\n%s", c.ID, d.Log())
	}
	if !refused {
		t.Errorf("no JSON warning of the refused attach of %s in:\n%s", bad.ID, d.Log())
	}
	if out, err := d.CLI("network", "ls", "--format", "yaml"); err == nil || !strings.Contains(out, `--format "yaml": want table, json or a Go template`) {
		t.Errorf("--format yaml: %v %s", err, out)
	}
}
