package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/ipam/etcd"
)

// The cluster's refusals reach the API as the manager's sentinels, with
// their own text.
func TestMeaning(t *testing.T) {
	for _, c := range []struct{ from, to error }{
		{etcd.ErrNetworkExists, network.ErrExists},
		{etcd.ErrNetworkInUse, network.ErrInUse},
		{etcd.ErrNetworkGone, network.ErrNotFound},
		// host reclaim NOSUCH is a 404, reclaim of a host that is up a 409,
		// of a name that is none a 400.
		{etcd.ErrHostUnknown, network.ErrNotFound},
		{etcd.ErrHostUp, network.ErrInUse},
		{etcd.ErrBadHostName, network.ErrInvalid},
	} {
		err := meaning(fmt.Errorf("global network g: %w", c.from))
		if !errors.Is(err, c.to) || !errors.Is(err, c.from) || !strings.HasPrefix(err.Error(), "global network g: ") {
			t.Errorf("%v: got %v, want it to be %v too", c.from, err, c.to)
		}
	}
	if err := meaning(nil); err != nil {
		t.Errorf("meaning(nil) = %v", err)
	}
}

func TestParseParents(t *testing.T) {
	got, err := parseParents([]string{"vlan30=ens3.30", "lab=eth1"})
	if err != nil || len(got) != 2 || got["vlan30"] != "ens3.30" || got["lab"] != "eth1" {
		t.Fatalf("parseParents: %v %v", got, err)
	}
	for _, bad := range [][]string{{"vlan30"}, {"=eth1"}, {"a=eth1", "a=eth2"}, {"a=this-name-is-too-long"}, {"a=x/y"}} {
		if _, err := parseParents(bad); err == nil {
			t.Errorf("parseParents(%q): no error", bad)
		}
	}
}

// writePEMs writes throwaway PEM files: a self-signed certificate and its
// key, another key, and a file that is no PEM.
func writePEMs(t *testing.T) (dir, cert, key, otherKey, garbage string) {
	t.Helper()
	dir = t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ulfy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	oder, _ := x509.MarshalPKCS8PrivateKey(other)
	cert = write("cert.pem", "CERTIFICATE", der)
	key = write("key.pem", "PRIVATE KEY", kder)
	otherKey = write("other.pem", "PRIVATE KEY", oder)
	garbage = filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, cert, key, otherKey, garbage
}

// A bad cluster flag is refused by underlayd at once, in one line naming
// the flag and its value, before it opens, binds or writes anything: the
// --state-dir it was given is not made. The store, where one is needed,
// is a port nothing answers on, which would take --etcd-timeout (2s).
func TestBadClusterFlagsRefusedAtOnce(t *testing.T) {
	_, cert, key, otherKey, garbage := writePEMs(t)
	const store = "etcd://127.0.0.1:1"
	long := strings.Repeat("x", 300)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		// 1: TLS files
		{args: []string{"--store", store, "--etcd-cacert", garbage}, want: "--etcd-cacert " + garbage + ": not a PEM file"},
		{args: []string{"--store", store, "--etcd-cacert", key}, want: "--etcd-cacert " + key + ": no certificate in it (found PRIVATE KEY)"},
		{args: []string{"--store", store, "--etcd-cert", cert}, want: "--etcd-cert " + cert + " given without --etcd-key: give both, or neither"},
		{args: []string{"--store", store, "--etcd-key", key}, want: "--etcd-key " + key + " given without --etcd-cert: give both, or neither"},
		{args: []string{"--store", store, "--etcd-cert", garbage, "--etcd-key", key}, want: "--etcd-cert " + garbage + ": not a PEM file"},
		{args: []string{"--store", store, "--etcd-cert", cert, "--etcd-key", garbage}, want: "--etcd-key " + garbage + ": not a PEM file"},
		{args: []string{"--store", store, "--etcd-cert", cert, "--etcd-key", otherKey}, want: "--etcd-cert " + cert + " and --etcd-key " + otherKey + " do not match: the key is not the certificate's"},
		// 2: members
		{args: []string{"--store", "etcd://127.0.0.1:99999"}, want: `--store "etcd://127.0.0.1:99999": member "127.0.0.1:99999" has port "99999": want a number from 1 to 65535`},
		{args: []string{"--store", "etcd://host:port"}, want: `--store "etcd://host:port": member "host:port" has port "port": want a number from 1 to 65535`},
		{args: []string{"--store", "etcd://:0"}, want: `--store "etcd://:0": member ":0" is not HOST:PORT`},
		{args: []string{"--store", "etcd:///path"}, want: `--store "etcd:///path": member "/path" is not HOST:PORT`},
		// 4: host names
		{args: []string{"--store", store, "--host-name", "bad name"}, want: `--host-name "bad name": ' ' is not allowed: a host name is one word, without '/'`},
		{args: []string{"--store", store, "--host-name", "a/b"}, want: `--host-name "a/b": '/' is not allowed`},
		{args: []string{"--store", store, "--host-name", long}, want: `--host-name "` + long[:40] + `"...: 300 characters: want at most 253`},
		{args: []string{"--host-name", "a/b"}, want: `--host-name "a/b": '/' is not allowed`},
		// 5: cluster flags without --store, and negative durations either way
		{args: []string{"--reclaim-after", "5m"}, want: "--reclaim-after needs --store etcd://HOST:PORT"},
		{args: []string{"--etcd-prefix", "/x"}, want: "--etcd-prefix needs --store etcd://HOST:PORT"},
		{args: []string{"--etcd-timeout", "5s"}, want: "--etcd-timeout needs --store etcd://HOST:PORT"},
		{args: []string{"--release-cooldown", "5s"}, want: "--release-cooldown needs --store etcd://HOST:PORT"},
		{args: []string{"--host-name", "h1"}, want: "--host-name needs --store etcd://HOST:PORT"},
		{args: []string{"--parent", "g=eth1"}, want: "--parent needs --store etcd://HOST:PORT"},
		{args: []string{"--etcd-cacert", cert}, want: "--etcd-cacert needs --store etcd://HOST:PORT"},
		{args: []string{"--host-name", "h1", "--etcd-prefix", "/x"}, want: "--etcd-prefix, --host-name need --store etcd://HOST:PORT"},
		{env: map[string]string{"UNDERLAY_RECLAIM_AFTER": "5m"}, want: "--reclaim-after needs --store etcd://HOST:PORT"},
		{args: []string{"--reclaim-after", "-5m"}, want: "--reclaim-after -5m0s: want 0 (only by hand) or more"},
		{args: []string{"--store", store, "--reclaim-after", "-5m"}, want: "--reclaim-after -5m0s: want 0 (only by hand) or more"},
		{args: []string{"--release-cooldown", "-1s"}, want: "--release-cooldown -1s: want 0 or more"},
		{env: map[string]string{"UNDERLAY_RELEASE_COOLDOWN": "-1s"}, want: "--release-cooldown -1s: want 0 or more"},
	} {
		t.Run(c.want, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			args := append([]string{"underlayd", "--state-dir", state, "--socket", filepath.Join(dir, "run", "s.sock")}, c.args...)
			start := time.Now()
			err := newApp().Run(args)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("underlayd %q:\ngot  %v\nwant one line with %s", c.args, err, c.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refused after %s, want at once", d)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				t.Errorf("a refused start left %s behind", ents[0].Name())
			}
		})
	}
}

// Good cluster flags pass, and are what the cluster is joined with; none
// at all is no cluster.
func TestParseClusterAccepts(t *testing.T) {
	_, cert, key, _, _ := writePEMs(t)
	parse := func(args ...string) (*clusterSpec, error) {
		var spec *clusterSpec
		var perr error
		app := newApp()
		app.Action = func(c *cli.Context) error {
			spec, perr = parseCluster(c)
			return nil
		}
		if err := app.Run(append([]string{"underlayd"}, args...)); err != nil {
			t.Fatal(err)
		}
		return spec, perr
	}
	if spec, err := parse(); spec != nil || err != nil {
		t.Errorf("no flags: %+v %v", spec, err)
	}
	if spec, err := parse("--reclaim-after", "0", "--release-cooldown", "0s"); err == nil || spec != nil {
		t.Errorf("zero durations without --store: %+v %v, want needs --store", spec, err)
	}
	spec, err := parse("--store", "etcd://10.0.0.5:2379,etcd-2.example.com:2379", "--etcd-cacert", cert, "--etcd-cert", cert, "--etcd-key", key,
		"--host-name", "node-1.example.com", "--parent", "vlan30=ens3.30", "--reclaim-after", "0", "--etcd-prefix", "/ul")
	if err != nil || spec == nil {
		t.Fatalf("good flags: %v", err)
	}
	if spec.cfg.Host != "node-1.example.com" || spec.cfg.Prefix != "/ul" || spec.reclaimAfter != 0 || spec.parents["vlan30"] != "ens3.30" {
		t.Errorf("good flags: %+v", spec)
	}
	// The hostname is the default name; an empty one (UNDERLAY_HOST_NAME=) is none given.
	t.Setenv("UNDERLAY_HOST_NAME", "")
	hn, _ := os.Hostname()
	if spec, err := parse("--store", "etcd://10.0.0.5:2379"); etcd.CheckHostName(hn) == nil && (err != nil || spec.cfg.Host != hn) {
		t.Errorf("default host name: %+v %v, want %q", spec, err, hn)
	}
}
