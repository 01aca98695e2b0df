package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

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

// Each migration brings an older file forward; here version 0 (an empty
// file) to 1 must create every bucket and keep working on reopen.
func TestMigrationFromEmpty(t *testing.T) {
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
}

func TestNewerSchemaRefused(t *testing.T) {
	s, dir := open(t)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte("99")) })
	s.Close()
	if _, err := Open(dir); err == nil {
		t.Fatal("opened a database from the future")
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
