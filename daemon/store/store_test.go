package store

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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

// A version-1 file kept endpoints and leases beside the networks; version 2
// moves them to the boot's endpoint database and keeps everything else.
func TestMigrationMovesEndpoints(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep := api.Endpoint{Network: "n", ContainerID: "c", IfName: "eth0", Addresses: []string{"10.0.0.2/24"}, State: "attached"}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := migrations[0](tx, migrationEnv{}); err != nil {
			return err
		}
		tx.Bucket(bucketMeta).Put(keyVersion, []byte("1"))
		tx.Bucket(bucketNetworks).Put([]byte("n"), []byte(`{"name":"n","subnets":[{"subnet":"10.0.0.0/24"}]}`))
		lb, _ := tx.Bucket(bucketLeases).CreateBucket([]byte("n"))
		lb.Put(addrKey(netip.MustParseAddr("10.0.0.2")), EndpointKey(ep))
		return tx.Bucket(bucketEndpoints).Put(EndpointKey(ep), []byte(`{"network":"n","container_id":"c","ifname":"eth0","addresses":["10.0.0.2/24"],"state":"attached"}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.Version(); v != 2 {
		t.Errorf("version %d after migration, want 2", v)
	}
	eps, _ := s.Endpoints()
	leases, _ := s.Leases("n")
	if len(eps) != 1 || eps[0].ContainerID != "c" || leases[netip.MustParseAddr("10.0.0.2")] != "/c/n" {
		t.Errorf("after migration: endpoints %+v, leases %v", eps, leases)
	}
	if nets, _ := s.Networks(); len(nets) != 1 {
		t.Errorf("networks after migration: %+v", nets)
	}
	s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketEndpoints) != nil || tx.Bucket(bucketLeases) != nil {
			t.Error("the durable database still has endpoint buckets")
		}
		return nil
	})
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

// A version-1 file last written in an earlier boot holds only dead
// endpoints, whose inodes and cookies a new boot may hand out again: the
// migration drops them instead of moving them, and keeps the networks.
func TestMigrationDropsEndpointsOfAnEarlierBoot(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep := api.Endpoint{Network: "n", ContainerID: "c", Addresses: []string{"10.0.0.2/24"}}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := migrations[0](tx, migrationEnv{}); err != nil {
			return err
		}
		tx.Bucket(bucketMeta).Put(keyVersion, []byte("1"))
		tx.Bucket(bucketNetworks).Put([]byte("n"), []byte(`{"name":"n"}`))
		return tx.Bucket(bucketEndpoints).Put(EndpointKey(ep), []byte(`{"network":"n","container_id":"c"}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(t.TempDir(), "stat")
	old := procStatPath
	procStatPath = stat
	t.Cleanup(func() { procStatPath = old })
	// The boot began after the file's last write.
	os.WriteFile(stat, []byte(fmt.Sprintf("cpu 1 2 3\nbtime %d\nprocesses 9\n", time.Now().Add(time.Hour).Unix())), 0o600)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if eps, _ := s.Endpoints(); len(eps) != 0 {
		t.Errorf("endpoints of an earlier boot moved: %+v", eps)
	}
	if nets, _ := s.Networks(); len(nets) != 1 {
		t.Errorf("networks: %+v, want n kept", nets)
	}
	if v, _ := s.Version(); v != 2 {
		t.Errorf("version %d, want 2", v)
	}
}
