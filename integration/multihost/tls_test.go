package multihost

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki writes a CA, a server certificate for ip and a client certificate
// into dir, as PEM files named ca.pem, server.pem, server-key.pem,
// client.pem and client-key.pem.
func pki(t *testing.T, dir, ip string) {
	t.Helper()
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key := func(name string) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalECPrivateKey(k)
		if name != "" {
			write(name, "EC PRIVATE KEY", der)
		}
		return k
	}
	caKey := key("")
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ulmh test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for i, c := range []struct {
		name string
		use  x509.ExtKeyUsage
	}{{"server", x509.ExtKeyUsageServerAuth}, {"client", x509.ExtKeyUsageClientAuth}} {
		k := key(c.name + "-key.pem")
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "ulmh " + c.name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{c.use}, IPAddresses: []net.IP{net.ParseIP(ip)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(c.name+".pem", "CERTIFICATE", der)
	}
}

// etcd with TLS and client certificates: underlayd with the CA and a
// client certificate joins and serves a global network; without the
// client certificate, or without TLS, it refuses to start, naming TLS.
func TestPrivilegedMultihostTLS(t *testing.T) {
	l := newLab(t, 1)
	h := l.hosts[0]
	dir := t.TempDir()
	pki(t, dir, h.addr)
	f := func(name string) string { return filepath.Join(dir, name) }
	m := &member{t: t, h: h, log: f("etcd.log"), args: []string{"--name", "tls", "--data-dir", f("data"),
		"--listen-client-urls", "https://" + h.addr + ":2379", "--advertise-client-urls", "https://" + h.addr + ":2379",
		"--listen-peer-urls", "http://" + h.addr + ":2380", "--initial-advertise-peer-urls", "http://" + h.addr + ":2380",
		"--initial-cluster", "tls=http://" + h.addr + ":2380", "--cert-file", f("server.pem"), "--key-file", f("server-key.pem"),
		"--client-cert-auth", "--trusted-ca-file", f("ca.pem"), "--logger", "zap", "--log-level", "warn"}}
	m.start()
	t.Cleanup(m.kill)
	l.store = "etcd://" + h.addr + ":2379"
	tlsArgs := []string{"--etcd-cacert", f("ca.pem"), "--etcd-cert", f("client.pem"), "--etcd-key", f("client-key.pem")}
	var d = l.daemon(h, tlsArgs...)
	var err error
	for range 40 { // until the member is up
		if err = d.TryStart(); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("underlayd with TLS: %v", err)
	}
	d.MustCLI(t, "network", "create", "--scope", "global", "--subnet", "10.77.0.0/24", "-o", "parent=lan0", "g")
	if out := d.MustCLI(t, "network", "ls"); !strings.Contains(out, "global") {
		t.Fatalf("network ls over TLS:\n%s", out)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no client certificate", []string{"--etcd-cacert", f("ca.pem")}, "the member refused this host's client certificate, or wants one"},
		{"no TLS", nil, "the member speaks TLS: give --etcd-cacert"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--store", l.store, "--host-name", "other", "--etcd-prefix", "/ulmh", "--etcd-timeout", "1s"}, c.args...)
			out, err := underlayd(h, t.TempDir(), args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("underlayd %v: %v, want an error saying %q:\n%s", c.args, err, c.want, out)
			}
		})
	}
}
