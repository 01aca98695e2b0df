package etcd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
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

// pems are throwaway PEM files: a CA, a certificate it signed and its
// key, another key, and a file that is no PEM.
type pems struct {
	dir                              string
	ca, cert, key, otherKey, garbage string
}

func writePEMs(t *testing.T) pems {
	t.Helper()
	dir := t.TempDir()
	p := pems{dir: dir}
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyBlock := func(k *ecdsa.PrivateKey) *pem.Block {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ulfy ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ulfy client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.ca = write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p.cert = write("cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: der})
	p.key = write("key.pem", keyBlock(key))
	p.otherKey = write("other-key.pem", keyBlock(other))
	p.garbage = filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(p.garbage, []byte("this is no certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A malformed --store member or TLS file is refused at once, in one line
// that names the flag and the value, not after --etcd-timeout as a
// connection that failed.
func TestDialRefusesBadInputAtOnce(t *testing.T) {
	p := writePEMs(t)
	const store = "etcd://127.0.0.1:1"
	for _, c := range []struct {
		store string
		files TLSFiles
		want  string
	}{
		{"etcd://127.0.0.1:99999", TLSFiles{}, `--store "etcd://127.0.0.1:99999": member "127.0.0.1:99999" has port "99999": want a number from 1 to 65535`},
		{"etcd://host:port", TLSFiles{}, `member "host:port" has port "port": want a number from 1 to 65535`},
		{"etcd://:0", TLSFiles{}, `member ":0" is not HOST:PORT`},
		{"etcd://h:0", TLSFiles{}, `member "h:0" has port "0"`},
		{"etcd:///path", TLSFiles{}, `member "/path" is not HOST:PORT`},
		{"etcd://h:2379/path", TLSFiles{}, `member "h:2379/path" has port "2379/path"`},
		{"etcd://a:1,user@h:2379", TLSFiles{}, `member "user@h:2379" has host "user@h": want a host name or an IP address`},
		{"etcd://a:1,,b:2", TLSFiles{}, `member "" is not HOST:PORT`},
		{store, TLSFiles{CA: p.garbage}, "--etcd-cacert " + p.garbage + ": not a PEM file"},
		{store, TLSFiles{CA: p.key}, "--etcd-cacert " + p.key + ": no certificate in it (found PRIVATE KEY)"},
		{store, TLSFiles{CA: filepath.Join(p.dir, "nosuch.pem")}, "--etcd-cacert " + filepath.Join(p.dir, "nosuch.pem") + ": no such file or directory"},
		{store, TLSFiles{CA: p.ca, Cert: p.cert}, "--etcd-cert " + p.cert + " given without --etcd-key: give both, or neither"},
		{store, TLSFiles{Key: p.key}, "--etcd-key " + p.key + " given without --etcd-cert: give both, or neither"},
		{store, TLSFiles{Cert: p.garbage, Key: p.key}, "--etcd-cert " + p.garbage + ": not a PEM file"},
		{store, TLSFiles{Cert: p.key, Key: p.key}, "--etcd-cert " + p.key + ": no certificate in it"},
		{store, TLSFiles{Cert: p.cert, Key: p.garbage}, "--etcd-key " + p.garbage + ": not a PEM file"},
		{store, TLSFiles{Cert: p.cert, Key: p.cert}, "--etcd-key " + p.cert + ": no private key in it (found CERTIFICATE)"},
		{store, TLSFiles{CA: p.ca, Cert: p.cert, Key: p.otherKey}, "--etcd-cert " + p.cert + " and --etcd-key " + p.otherKey + " do not match"},
	} {
		t.Run(c.want, func(t *testing.T) {
			start := time.Now()
			cl, err := Dial(c.store, c.files, 3*time.Second)
			if err == nil {
				cl.Close()
				t.Fatal("no error")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refused after %s, want at once", d)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got  %v\nwant one line with %s", err, c.want)
			}
		})
	}
}

// Good members and files pass the check; they are dialled only by Dial.
func TestCheckAccepts(t *testing.T) {
	p := writePEMs(t)
	for _, c := range []struct {
		store string
		files TLSFiles
		want  []string
	}{
		{"etcd://10.0.0.5:2379", TLSFiles{}, []string{"http://10.0.0.5:2379"}},
		{"etcd://etcd-1.example.com:2379,[2001:db8::1]:2379", TLSFiles{}, []string{"http://etcd-1.example.com:2379", "http://[2001:db8::1]:2379"}},
		{"etcd://10.0.0.5:2379", TLSFiles{CA: p.ca}, []string{"https://10.0.0.5:2379"}},
		{"etcd://10.0.0.5:2379", TLSFiles{CA: p.ca, Cert: p.cert, Key: p.key}, []string{"https://10.0.0.5:2379"}},
	} {
		tg, err := Check(c.store, c.files)
		if err != nil {
			t.Errorf("%s %+v: %v", c.store, c.files, err)
			continue
		}
		if strings.Join(tg.endpoints, " ") != strings.Join(c.want, " ") || (tg.tls != nil) != (c.files != TLSFiles{}) {
			t.Errorf("%s %+v: endpoints %v tls %v", c.store, c.files, tg.endpoints, tg.tls != nil)
		}
	}
}

// silent accepts connections and says nothing on them, as a listener that
// is not etcd may; with cfg it answers TLS handshakes and nothing else.
func silent(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			if cfg != nil {
				go func() { _ = tls.Server(c, cfg).Handshake() }()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// The start check, diagnosis included, takes --etcd-timeout, as its error
// says, not twice that.
func TestDialBoundedByTimeout(t *testing.T) {
	p := writePEMs(t)
	key, err := tls.LoadX509KeyPair(p.cert, p.key)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 600 * time.Millisecond
	for _, c := range []struct {
		name string
		srv  *tls.Config
		want string
	}{
		{"not etcd", nil, "did not answer within 600ms (down, unreachable, without quorum, or not etcd)"},
		{"speaks TLS", &tls.Config{Certificates: []tls.Certificate{key}}, "did not answer within 600ms: the member speaks TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := silent(t, c.srv)
			start := time.Now()
			cl, err := Dial("etcd://"+addr, TLSFiles{}, timeout)
			d := time.Since(start)
			if err == nil {
				cl.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
			if d > timeout+timeout/4 {
				t.Errorf("answered after %s, with --etcd-timeout %s", d, timeout)
			}
		})
	}
}
