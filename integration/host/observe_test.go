package host

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/underlay/underlay/daemon/api"
	tl "github.com/underlay/underlay/integration/testlab"
)

// What an operator sees of underlayd, in a throwaway host namespace
// (ulob-host) where it serves metrics on 127.0.0.1:9127: a real Prometheus
// (Debian's) scrapes it every second with the alert rules of
// contrib/prometheus loaded; its query API shows the addresses in use
// after 10 attaches, the failed attach by class, and the pool alert
// pending at 12 of 13; `underlay events --format json` shows each attach
// and its release in order; the JSON log has one line per attach and
// detach; /healthz, /readyz and promtool check metrics pass.
func TestPrivilegedObservePrometheus(t *testing.T) {
	tl.Require(t, "prometheus", "promtool", "busybox")
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(repo, "contrib", "prometheus", "underlay-alerts.yml")
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", filepath.Join(repo, "contrib", "prometheus", "underlay-alerts.test.yml")}} {
		if out, err := osexec.Command("promtool", args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// A /28: 13 addresses once the gateway is taken.
	l := newHostLab(t, "ulob", []string{"--metrics-address", "127.0.0.1:9127", "--log-format", "json"}, "10.131.0.1/28")
	get := func(u string) (string, error) { return l.inHost("busybox", "wget", "-q", "-O", "-", u) }
	for _, p := range []string{"/healthz", "/readyz"} {
		if out, err := get("http://127.0.0.1:9127" + p); err != nil || strings.TrimSpace(out) != "ok" {
			t.Fatalf("%s: %v %q", p, err, out)
		}
	}

	ev := startEvents(t, l.d)
	l.d.MustCLI(t, "network", "create", "-d", "macvlan", "--subnet", "10.131.0.0/28", "--gateway", "10.131.0.1",
		"-o", "parent="+l.lan.Uplink, "obnet")
	// The create's event shows the stream is live before any attach.
	ev.wait(t, func(e api.Event) bool { return e.Type == api.EventNetworkCreate && e.Network == "obnet" })

	prom := startPrometheus(t, l, rules)

	var cs []*tl.Container
	attach := func(n int) {
		for i := 0; i < n; i++ {
			c := tl.NewContainer(t, fmt.Sprintf("ulob-c%d", len(cs)))
			if out, err := l.d.Attach(c, ann("io.underlay.network", "obnet")); err != nil {
				t.Fatalf("attach %s: %v %s", c.ID, err, out)
			}
			cs = append(cs, c)
		}
	}
	attach(10)
	prom.waitValue(t, `underlay_addresses_in_use{network="obnet",subnet="10.131.0.0/28"}`, 10)
	prom.waitValue(t, `underlay_addresses_free{network="obnet"}`, 3)
	prom.waitValue(t, `underlay_attaches_total{network="obnet",driver="macvlan",result="ok"}`, 10)
	prom.waitValue(t, `underlay_endpoints{network="obnet",driver="macvlan"}`, 10)

	// 12 of 13 is over the alert's 90%: pending for its 5 minutes.
	attach(2)
	prom.waitAlert(t, "UnderlayAddressPoolNearlyFull", "obnet")
	attach(1)
	full := tl.NewContainer(t, "ulob-full")
	if out, err := l.d.Attach(full, ann("io.underlay.network", "obnet")); err == nil {
		t.Fatalf("a 14th attach to 13 addresses succeeded: %s", out)
	}
	prom.waitValue(t, `underlay_attaches_total{network="obnet",result="exhausted"}`, 1)
	prom.waitAlert(t, "UnderlayAttachFailures", "obnet")

	if out, err := l.d.Detach(cs[0], ann("io.underlay.network", "obnet")); err != nil {
		t.Fatalf("detach: %v %s", err, out)
	}
	prom.waitValue(t, `underlay_addresses_in_use{network="obnet"}`, 12)
	prom.waitValue(t, `underlay_releases_total{network="obnet",path="poststop"}`, 1)

	// The events: each attach, the refusal, then c0's release, in order.
	detach := ev.wait(t, func(e api.Event) bool { return e.Type == api.EventDetach })
	if detach.Container != cs[0].ID || detach.Path != api.ReleasePoststop || detach.Result != api.ResultOK || len(detach.Addresses) != 1 {
		t.Errorf("release event: %+v", detach)
	}
	var attached []string
	var refused *api.Event
	for _, e := range ev.all() {
		switch {
		case e.Type == api.EventAttach && e.Result == api.ResultOK:
			if refused != nil {
				t.Errorf("attach of %s after the refusal", e.Container)
			}
			attached = append(attached, e.Container)
		case e.Type == api.EventAttach:
			refused = &e
		}
	}
	if len(attached) != 13 || attached[0] != cs[0].ID || attached[12] != cs[12].ID {
		t.Errorf("attach events: %v, want ulob-c0..ulob-c12 in order", attached)
	}
	if refused == nil || refused.Container != full.ID || refused.Result != api.ErrorClassFull || refused.Error == "" {
		t.Errorf("refused attach event: %+v", refused)
	}

	// The exposition passes Prometheus' own linter.
	if out, err := l.inHost("sh", "-c", "busybox wget -q -O - http://127.0.0.1:9127/metrics | promtool check metrics"); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// One JSON log line per attach and per detach, with the same keys.
	lines := map[string]int{}
	for _, line := range strings.Split(readFile(t, l.d.LogPath), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		msg, _ := rec["msg"].(string)
		if msg != "attached" && msg != "detached" {
			continue
		}
		lines[msg]++
		for _, k := range []string{"network", "container", "ifname", "addresses", "took"} {
			if s, _ := rec[k].(string); s == "" {
				t.Errorf("log line without %s: %s", k, line)
			}
		}
		if _, err := time.ParseDuration(fmt.Sprint(rec["took"])); err != nil {
			t.Errorf("took is no duration: %s", line)
		}
	}
	if lines["attached"] != 13 || lines["detached"] != 1 {
		t.Errorf("log lines: %v, want 13 attached and 1 detached", lines)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventTail is `underlay events --format json` running in the background.
type eventTail struct {
	mu     sync.Mutex
	events []api.Event
	bad    []string
}

func startEvents(t *testing.T, d *tl.Daemon) *eventTail {
	t.Helper()
	cmd := osexec.Command(filepath.Join(tl.BinDir(), "underlay"), "--socket", d.Socket, "events", "--format", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tail := &eventTail{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e api.Event
			tail.mu.Lock()
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				tail.bad = append(tail.bad, sc.Text())
			} else {
				tail.events = append(tail.events, e)
			}
			tail.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if len(tail.bad) > 0 {
			t.Errorf("underlay events --format json printed lines that are not JSON: %q", tail.bad)
		}
	})
	return tail
}

func (e *eventTail) all() []api.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]api.Event(nil), e.events...)
}

// wait returns the first event that match accepts, waiting up to 10 s.
func (e *eventTail) wait(t *testing.T, match func(api.Event) bool) api.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ev := range e.all() {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such event in 10 s; got %+v", e.all())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// promServer is Prometheus in the lab's host namespace, on 127.0.0.1:9090.
type promServer struct {
	get func(string) (string, error)
	p   *tl.Proc
}

func startPrometheus(t *testing.T, l *shimLab, rules string) *promServer {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [`+strconv.Quote(rules)+`]
scrape_configs:
  - job_name: underlay
    static_configs:
      - targets: ["127.0.0.1:9127"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs prometheus: the pid is prometheus'.
	p := tl.StartProc(t, filepath.Join(dir, "prometheus.log"), nil, "ip", "netns", "exec", l.host,
		"prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:9090")
	s := &promServer{p: p, get: func(u string) (string, error) { return l.inHost("busybox", "wget", "-q", "-O", "-", u) }}
	p.WaitFor(t, "ready", 60*time.Second, func() error {
		_, err := s.get("http://127.0.0.1:9090/-/ready")
		return err
	})
	return s
}

// api GETs path from Prometheus' HTTP API and decodes its data.
func (s *promServer) api(path string, data any) error {
	out, err := s.get("http://127.0.0.1:9090/api/v1/" + path)
	if err != nil {
		return err
	}
	var resp struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return fmt.Errorf("%s: %w: %s", path, err, out)
	}
	if resp.Status != "success" {
		return fmt.Errorf("%s: %s", path, resp.Error)
	}
	return json.Unmarshal(resp.Data, data)
}

// waitValue waits up to 30 s until the query's one series has value want.
func (s *promServer) waitValue(t *testing.T, query string, want float64) {
	t.Helper()
	s.p.WaitFor(t, fmt.Sprintf("%s == %v", query, want), 30*time.Second, func() error {
		var data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		}
		if err := s.api("query?query="+url.QueryEscape(query), &data); err != nil {
			return err
		}
		if len(data.Result) != 1 {
			return fmt.Errorf("%d series", len(data.Result))
		}
		v, err := strconv.ParseFloat(fmt.Sprint(data.Result[0].Value[1]), 64)
		if err != nil || v != want {
			return fmt.Errorf("value %v", data.Result[0].Value[1])
		}
		return nil
	})
}

// waitAlert waits up to 30 s until alert is pending or firing for network.
func (s *promServer) waitAlert(t *testing.T, alert, network string) {
	t.Helper()
	s.p.WaitFor(t, alert+" for "+network, 30*time.Second, func() error {
		var data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := s.api("alerts", &data); err != nil {
			return err
		}
		for _, a := range data.Alerts {
			if a.Labels["alertname"] == alert && a.Labels["network"] == network {
				return nil
			}
		}
		return fmt.Errorf("alerts: %+v", data.Alerts)
	})
}
