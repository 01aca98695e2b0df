package testlab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DHCPServer is a real DHCP server from Debian (dnsmasq or ISC Kea) on a
// LAN's router, with its lease file.
type DHCPServer struct {
	Leases string
	proc   *Proc
	kind   string
}

// Lease is one live lease in a server's lease file.
type Lease struct {
	Address, MAC, ClientID, Hostname string
}

// StartDnsmasq serves DHCPv4 from lan's router: addresses first..last of
// its subnet, the router as gateway, lease time lease ("2m" is dnsmasq's
// least), with extra flags after.
func StartDnsmasq(t testing.TB, lan *LAN, first, last int, lease string, extra ...string) *DHCPServer {
	t.Helper()
	dir := t.TempDir()
	s := &DHCPServer{Leases: filepath.Join(dir, "leases"), kind: "dnsmasq"}
	mask := "255.255.255.0"
	args := append([]string{"netns", "exec", lan.NS, "dnsmasq", "--keep-in-foreground", "--no-daemon",
		"--port=0", "--interface=lan0", "--bind-interfaces", "--log-dhcp", "--no-resolv", "--no-hosts",
		"--conf-file=/dev/null", "--user=root", "--pid-file=" + filepath.Join(dir, "pid"),
		"--dhcp-leasefile=" + s.Leases,
		fmt.Sprintf("--dhcp-range=%s,%s,%s,%s", lan.Host(first), lan.Host(last), mask, lease),
		"--dhcp-option=3," + lan.Router.Addr().String(),
		"--dhcp-option=6," + lan.Router.Addr().String(),
		"--domain=lan.test"}, extra...)
	s.proc = StartProc(t, filepath.Join(dir, "dnsmasq.log"), nil, "ip", args...)
	s.proc.Name = "dnsmasq"
	waitListening(t, lan.NS, 67)
	return s
}

// StartKea serves DHCPv4 from lan's router with ISC Kea: addresses
// first..last, and short leases (valid seconds, T1 and T2 as given).
func StartKea(t testing.TB, lan *LAN, first, last, valid, t1, t2 int) *DHCPServer {
	t.Helper()
	dir := t.TempDir()
	s := &DHCPServer{Leases: filepath.Join(dir, "leases.csv"), kind: "kea"}
	conf := map[string]any{"Dhcp4": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{"lan0"}, "dhcp-socket-type": "raw"},
		"lease-database":    map[string]any{"type": "memfile", "name": s.Leases, "lfc-interval": 0},
		"valid-lifetime":    valid, "renew-timer": t1, "rebind-timer": t2,
		"subnet4": []any{map[string]any{"id": 1, "subnet": lan.Router.Masked().String(),
			"pools":       []any{map[string]any{"pool": lan.Host(first) + " - " + lan.Host(last)}},
			"option-data": []any{map[string]any{"name": "routers", "data": lan.Router.Addr().String()}}}},
		"loggers": []any{map[string]any{"name": "kea-dhcp4", "severity": "INFO",
			"output_options": []any{map[string]any{"output": "stdout"}}}},
	}}
	b, _ := json.Marshal(conf)
	path := filepath.Join(dir, "kea.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KEA_LOCKFILE_DIR="+dir, "KEA_PIDFILE_DIR="+dir)
	s.proc = StartProc(t, filepath.Join(dir, "kea.log"), env, "ip", "netns", "exec", lan.NS, "kea-dhcp4", "-c", path)
	s.proc.Name = "kea-dhcp4"
	waitListening(t, lan.NS, 67)
	return s
}

// waitListening waits until something in ns has UDP port open (a raw
// socket server like Kea opens a UDP one too).
func waitListening(t testing.TB, ns string, port int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		// ss on the hosts; busybox's netstat in the test VM.
		out, err := Run("ip", "netns", "exec", ns, "ss", "-uln")
		if err != nil {
			out, _ = Run("ip", "netns", "exec", ns, "netstat", "-uln")
		}
		if strings.Contains(out, fmt.Sprintf(":%d ", port)) {
			return
		}
	}
	t.Fatalf("no DHCP server listening on port %d in %s", port, ns)
}

// Stop stops the server (SIGKILL: a dead server, not a polite one).
func (s *DHCPServer) Stop() {
	if s.proc.Cmd.Process != nil {
		_ = s.proc.Cmd.Process.Signal(syscall.SIGKILL)
	}
	for end := time.Now().Add(5 * time.Second); !s.proc.Exited() && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
	}
}

// Log is the server's log.
func (s *DHCPServer) Log() string {
	b, _ := os.ReadFile(s.proc.Log)
	return string(b)
}

// Live returns the server's live leases by address, read from its lease
// file: dnsmasq rewrites it whole; Kea appends, a lease of valid lifetime
// 0 (or state 2, reclaimed) being one that ended.
func (s *DHCPServer) Live() map[string]Lease {
	b, _ := os.ReadFile(s.Leases)
	out := map[string]Lease{}
	for _, line := range strings.Split(string(b), "\n") {
		if s.kind == "dnsmasq" {
			// expiry mac address hostname client-id
			f := strings.Fields(line)
			if len(f) >= 5 {
				out[f[2]] = Lease{Address: f[2], MAC: f[1], Hostname: f[3], ClientID: f[4]}
			}
			continue
		}
		// address,hwaddr,client_id,valid_lifetime,expire,subnet_id,
		// fqdn_fwd,fqdn_rev,hostname,state,...
		f := strings.Split(line, ",")
		if len(f) < 10 || f[0] == "address" {
			continue
		}
		if f[3] == "0" || f[9] == "2" {
			delete(out, f[0])
			continue
		}
		out[f[0]] = Lease{Address: f[0], MAC: f[1], ClientID: f[2], Hostname: f[8]}
	}
	return out
}

// WaitLive polls the lease file until ok is true of the live leases or 5 s
// pass, and returns them: servers write their files a moment after they
// answer.
func (s *DHCPServer) WaitLive(ok func(map[string]Lease) bool) map[string]Lease {
	var got map[string]Lease
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got = s.Live(); ok(got) {
			break
		}
	}
	return got
}
