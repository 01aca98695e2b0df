package store

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/underlay/underlay/daemon/api"
)

func open(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestNewDatabaseHasVersion(t *testing.T) {
	s, _ := open(t)
	v, err := s.Version()
	if err != nil || v != schemaVersion {
		t.Fatalf("version %d %v", v, err)
	}
}

// An empty file is new: it gets every bucket, at schemaVersion, and keeps
// working on reopen.
func TestEmptyFileIsNew(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNetwork(api.Network{Name: "n"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nets, _ := s.Networks()
	if len(nets) != 1 {
		t.Fatalf("networks after reopen: %v", nets)
	}
	if v, err := s.Version(); err != nil || v != schemaVersion {
		t.Fatalf("version %d %v, want %d", v, err, schemaVersion)
	}
}

// The migrations lead from firstVersion to schemaVersion, one each.
func TestMigrationsReachSchemaVersion(t *testing.T) {
	if firstVersion+len(migrations) != schemaVersion {
		t.Fatalf("%d migrations from version %d, but schemaVersion is %d", len(migrations), firstVersion, schemaVersion)
	}
}

// A file of a version this code does not read, newer or of a development
// version before firstVersion, is refused with one line naming the version
// found and the one wanted, and left as it was: never reset.
func TestOtherSchemaRefused(t *testing.T) {
	for _, c := range []struct {
		name    string
		version string
		want    string
	}{
		{"newer", "99", "schema version 99 is newer than this underlayd reads (want 3)"},
		{"development", "1", "schema version 1 was written by a development version of underlayd and is not read (want 3)"},
		{"zero", "0", "schema version 0 was written by a development version of underlayd and is not read (want 3)"},
		{"unreadable", "two", `unreadable schema version "two"`},
		{"missing", "", "no schema version"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, dir := open(t)
			if err := s.CreateNetwork(api.Network{Name: "n"}); err != nil {
				t.Fatal(err)
			}
			err := s.db.Update(func(tx *bolt.Tx) error {
				if c.version == "" {
					return tx.Bucket(bucketMeta).Delete(keyVersion)
				}
				return tx.Bucket(bucketMeta).Put(keyVersion, []byte(c.version))
			})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			_, err = Open(dir)
			if err == nil || !strings.HasSuffix(err.Error(), ": "+c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("open: %v, want an error ending %q", err, c.want)
			}
			db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.View(func(tx *bolt.Tx) error {
				if got := tx.Bucket(bucketMeta).Get(keyVersion); string(got) != c.version {
					t.Errorf("version after the refusal %q, want %q", got, c.version)
				}
				if tx.Bucket(bucketNetworks).Get([]byte("n")) == nil {
					t.Error("network gone after the refusal")
				}
				return nil
			})
		})
	}
}

// The layout version 1 had, refused like any development version: its
// endpoints were JSON, which nothing reads now.
func TestDevelopmentVersion1Refused(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketNetworks, bucketEndpoints, bucketLeases, bucketLinks} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		tx.Bucket(bucketNetworks).Put([]byte("n"), []byte(`{"name":"n"}`))
		tx.Bucket(bucketEndpoints).Put([]byte("/c/n"), []byte(`{"network":"n","container_id":"c"}`))
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte("1"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "schema version 1 ") || !strings.Contains(err.Error(), "(want 3)") {
		t.Fatalf("open of a version-1 file: %v", err)
	}
}

// A file with buckets but none of ours is not taken for a new one.
func TestForeignFileRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("something else"))
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.HasSuffix(err.Error(), ": no schema version") {
		t.Fatalf("open of a foreign file: %v", err)
	}
}

func TestLockedDatabase(t *testing.T) {
	_, dir := open(t)
	_, err := Open(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestUnreadableDatabase(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("this is not bbolt, and it is long enough to be read as a page header ........................................................................................................................................................................................................................................."), 0o600)
	if _, err := Open(dir); err == nil {
		t.Fatal("opened garbage")
	}
}

func TestEndpointAndLeasesTogether(t *testing.T) {
	s, _ := open(t)
	if err := s.CreateNetwork(api.Network{Name: "n"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNetwork(api.Network{Name: "n"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	a := api.Endpoint{Network: "n", Namespace: "default", ContainerID: "a", Addresses: []string{"10.0.0.2/24", "2001:db8::2/64"}}
	b := api.Endpoint{Network: "n", ContainerID: "b", Addresses: []string{"10.0.0.2/24"}}
	if err := s.PutEndpoint(a); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEndpoint(b); !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("double lease: %v", err)
	}
	leases, _ := s.Leases("n")
	if len(leases) != 2 || leases[netip.MustParseAddr("10.0.0.2")] != "default/a/n" {
		t.Fatalf("leases: %v", leases)
	}
	eps, _ := s.Endpoints()
	if len(eps) != 1 {
		t.Fatalf("b half-written: %v", eps)
	}
	if err := s.DeleteEndpoint(a); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEndpoint(a); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if leases, _ := s.Leases("n"); len(leases) != 0 {
		t.Fatalf("leases after delete: %v", leases)
	}
	if err := s.PutEndpoint(b); err != nil {
		t.Fatalf("released address not free: %v", err)
	}
	if err := s.DeleteNetwork("n"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEndpoint(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("endpoint on removed network: %v", err)
	}
}

func TestOwnedLinks(t *testing.T) {
	s, _ := open(t)
	l := OwnedLink{Name: "eth0.10", Kind: "vlan", Base: "eth0", VLAN: 10, Network: "v10"}
	if err := s.PutLink(l); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Links()
	if len(got) != 1 || got[0] != l {
		t.Fatalf("links: %v", got)
	}
	s.DeleteLink("eth0.10")
	if got, _ := s.Links(); len(got) != 0 {
		t.Fatalf("links after delete: %v", got)
	}
}

// Endpoints belong to one boot: after a reboot (another boot id) they are
// gone, with the file that held them, while networks and owned links stay.
func TestEndpointsEndWithTheBoot(t *testing.T) {
	dir := t.TempDir()
	bootFile := filepath.Join(t.TempDir(), "boot_id")
	old := bootIDPath
	bootIDPath = bootFile
	t.Cleanup(func() { bootIDPath = old })
	boot := func(id string) *Store {
		if err := os.WriteFile(bootFile, []byte(id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := boot("11111111-aaaa")
	if err := s.CreateNetwork(api.Network{Name: "n"}); err != nil {
		t.Fatal(err)
	}
	s.PutLink(OwnedLink{Name: "eth9.10", Kind: "vlan", Base: "eth9", VLAN: 10, Network: "n"})
	if err := s.PutEndpoint(api.Endpoint{Network: "n", ContainerID: "c", Addresses: []string{"10.0.0.2/24"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginIntent(api.Endpoint{Network: "n", ContainerID: "d", TempName: "ul0123456789"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = boot("11111111-aaaa") // underlayd restarted, same boot
	if in, _ := s.Intents(); len(in) != 1 {
		t.Errorf("same boot: intents %+v, want the one recorded", in)
	}
	if eps, _ := s.Endpoints(); len(eps) != 1 {
		t.Errorf("same boot: endpoints %+v, want the one stored", eps)
	}
	s.Close()

	s = boot("22222222-bbbb") // the host rebooted
	defer s.Close()
	if eps, _ := s.Endpoints(); len(eps) != 0 {
		t.Errorf("after a reboot: endpoints %+v, want none", eps)
	}
	if leases, _ := s.Leases("n"); len(leases) != 0 {
		t.Errorf("after a reboot: leases %v, want none", leases)
	}
	if in, _ := s.Intents(); len(in) != 0 {
		t.Errorf("after a reboot: intents %+v, want none", in)
	}
	if dirs, _ := filepath.Glob(filepath.Join(dir, "intents*")); len(dirs) != 1 || filepath.Base(dirs[0]) != "intents-22222222-bbbb" {
		t.Errorf("intent directories after a reboot: %v, want only this boot's", dirs)
	}
	nets, _ := s.Networks()
	links, _ := s.Links()
	if len(nets) != 1 || len(links) != 1 {
		t.Errorf("after a reboot: networks %+v, links %+v, want both kept", nets, links)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "endpoints-*.db"))
	if len(files) != 1 || filepath.Base(files[0]) != "endpoints-22222222-bbbb.db" {
		t.Errorf("endpoint databases after a reboot: %v, want only this boot's", files)
	}
}

// A state directory as this version writes it, built byte by byte, reads:
// the format is kept, not only whatever the encoder makes today.
func TestCurrentFormatReads(t *testing.T) {
	dir := t.TempDir()
	bootFile := filepath.Join(t.TempDir(), "boot_id")
	old := bootIDPath
	bootIDPath = bootFile
	t.Cleanup(func() { bootIDPath = old })
	if err := os.WriteFile(bootFile, []byte("33333333-cccc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name string, fill func(tx *bolt.Tx) error) {
		db, err := bolt.Open(filepath.Join(dir, name), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(fill); err != nil {
			t.Fatal(err)
		}
	}
	bucket := func(tx *bolt.Tx, name string, kv ...string) {
		b, err := tx.CreateBucket([]byte(name))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(kv); i += 2 {
			b.Put([]byte(kv[i]), []byte(kv[i+1]))
		}
	}
	write(FileName, func(tx *bolt.Tx) error {
		bucket(tx, "meta", "version", "2")
		bucket(tx, "networks", "n", `{"name":"n","driver":"macvlan","parent":"eth9"}`)
		bucket(tx, "links", "eth9", `{"name":"eth9","kind":"dummy","network":"n"}`)
		return nil
	})
	v4 := "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x0a\x00\x00"
	record := []byte("\x01" + "\x01n" + "\x00" + "\x01c" + "\x04eth0" + "\x1102:00:00:00:00:01" +
		"\x00" + "\x04eth9" + "\x08attached" + "\x05" + "\x07")
	record = binary.AppendVarint(record, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	record = append(record, "\x01"+"\x04"+v4+"\x02"+"\x18"+"\x01"+"\x04"+v4+"\x01"...)
	write("endpoints-33333333-cccc.db", func(tx *bolt.Tx) error {
		bucket(tx, "endpoints", "/c/n", string(record))
		bucket(tx, "leases")
		lb, err := tx.Bucket([]byte("leases")).CreateBucket([]byte("n"))
		if err != nil {
			return err
		}
		return lb.Put([]byte(v4+"\x02"), []byte("/c/n"))
	})
	intents := filepath.Join(dir, "intents-33333333-cccc")
	os.Mkdir(intents, 0o700)
	os.WriteFile(filepath.Join(intents, "ul0123456789"),
		[]byte(`{"network":"n","container_id":"d","ifname":"eth0","mac":"","addresses":null,"netns_inode":0,"temp_ifname":"ul0123456789","parent":"eth9","state":"","created":""}`), 0o600)

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := api.Endpoint{Network: "n", ContainerID: "c", IfName: "eth0", MAC: "02:00:00:00:00:01",
		Addresses: []string{"10.0.0.2/24"}, Gateways: []string{"10.0.0.1"}, NetnsInode: 5, NetnsCookie: 7,
		Parent: "eth9", State: "attached", Created: "2026-01-02T03:04:05Z"}
	if eps, err := s.Endpoints(); err != nil || len(eps) != 1 || !reflect.DeepEqual(eps[0], want) {
		t.Errorf("endpoints %+v (%v), want %+v", eps, err, want)
	}
	if leases, _ := s.Leases("n"); len(leases) != 1 || leases[netip.MustParseAddr("10.0.0.2")] != "/c/n" {
		t.Errorf("leases %v", leases)
	}
	if nets, _ := s.Networks(); len(nets) != 1 || nets[0].Name != "n" || nets[0].Parent != "eth9" {
		t.Errorf("networks %+v", nets)
	}
	if links, _ := s.Links(); len(links) != 1 || links[0] != (OwnedLink{Name: "eth9", Kind: "dummy", Network: "n"}) {
		t.Errorf("links %+v", links)
	}
	if in, _ := s.Intents(); len(in) != 1 || in[0].ContainerID != "d" || in[0].TempName != "ul0123456789" || in[0].Parent != "eth9" {
		t.Errorf("intents %+v", in)
	}
	// Migration 2 -> 3 added the releases bucket.
	if v, _ := s.Version(); v != 3 {
		t.Errorf("version %d, want 3", v)
	}
	if err := s.PutRelease("k", []byte("r")); err != nil {
		t.Errorf("release in a migrated file: %v", err)
	}
}

// A release kept for etcd survives a restart until it is deleted.
func TestReleasesKept(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutRelease("/ul/v1/owners/h1/g//c/eth0/4", []byte(`{"address":"10.0.0.5"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRelease("gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRelease("gone"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, err := s.Releases()
	if err != nil || len(rs) != 1 || string(rs["/ul/v1/owners/h1/g//c/eth0/4"]) != `{"address":"10.0.0.5"}` {
		t.Fatalf("releases after reopen: %v %v", rs, err)
	}
}
