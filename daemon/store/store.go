package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/ipam"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrAddressInUse is the allocator's: the store's compare and the
	// allocator's mean the same thing, another endpoint has the address.
	ErrAddressInUse = ipam.ErrAddressInUse
	ErrLocked       = errors.New("state database is locked by another process (is another underlayd running?)")
)

// FileName is the database's name inside the state directory.
const FileName = "underlay.db"

// schemaVersion is the version this code writes. A new file starts at
// firstVersion; migrations bring an older released file up from there.
// Versions below firstVersion were development versions, never released
// (1 kept endpoints and leases as JSON beside the networks): they are not
// read, and such a file is refused, never reset. That is why the numbers
// start at 2.
const (
	firstVersion  = 2
	schemaVersion = 3 // firstVersion + len(migrations)
)

var (
	bucketMeta      = []byte("meta")
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
	bucketLeases    = []byte("leases")
	bucketLinks     = []byte("links")
	bucketReleases  = []byte("releases")
	keyVersion      = []byte("version")
	keyCluster      = []byte("etcd-cluster")
)

// OwnedLink is a parent link underlayd created and must remove.
type OwnedLink struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // "vlan" or "dummy"
	Base    string `json:"base,omitempty"`
	VLAN    int    `json:"vlan_id,omitempty"`
	Network string `json:"network"`
}

// Store is the bbolt-backed state.
type Store struct {
	db      *bolt.DB    // durable: networks and owned links
	eph     *bolt.DB    // this boot's endpoints and leases; see ephemeral.go
	intents *intentFile // this boot's intents; see intents.go
}

// Open opens (creating if needed) the database in dir. A database held by
// another process, or one that cannot be read, is an error, never a reset.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	// From here on this process holds the state dir: files of earlier
	// boots are nobody's.
	s := &Store{db: db}
	if s.intents, err = openIntents(dir, boot); err != nil {
		db.Close()
		return nil, err
	}
	if s.eph, err = openEphemeral(dir, boot); err != nil {
		s.intents.f.Close()
		db.Close()
		return nil, err
	}
	if err := s.migrate(); err != nil {
		s.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, nil
}

// Close closes both databases.
func (s *Store) Close() error {
	err := s.eph.Close()
	if e := s.db.Close(); err == nil {
		err = e
	}
	if e := s.intents.f.Close(); err == nil {
		err = e
	}
	return err
}

// migrations[i] brings a version firstVersion+i database to version
// firstVersion+i+1, in order. A change to the schema appends one, with a
// test, and raises schemaVersion.
var migrations = []func(tx *bolt.Tx) error{
	// 2 -> 3: releases of global networks' addresses that etcd has not
	// taken yet.
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketReleases)
		return err
	},
}

// create lays out a new, empty file at firstVersion.
func create(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketNetworks, bucketLinks} {
		if _, err := tx.CreateBucket(b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keyVersion, []byte(strconv.Itoa(firstVersion)))
}

// migrate brings the file to schemaVersion. Only a file without any bucket
// is new; one with buckets but no readable version is refused, as is a
// version this code does not read.
func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if k, _ := tx.Cursor().First(); k == nil {
			if err := create(tx); err != nil {
				return err
			}
		}
		var raw []byte
		if meta := tx.Bucket(bucketMeta); meta != nil {
			raw = meta.Get(keyVersion)
		}
		v, err := strconv.Atoi(string(raw))
		switch {
		case raw == nil:
			return errors.New("no schema version")
		case err != nil:
			return fmt.Errorf("unreadable schema version %q", raw)
		case v > schemaVersion:
			return fmt.Errorf("schema version %d is newer than this underlayd reads (want %d)", v, schemaVersion)
		case v < firstVersion:
			return fmt.Errorf("schema version %d was written by a development version of underlayd and is not read (want %d)", v, schemaVersion)
		}
		if v == schemaVersion {
			return nil
		}
		for ; v < schemaVersion; v++ {
			if err := migrations[v-firstVersion](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(strconv.Itoa(v)))
	})
}

// Version reports the schema version stored.
func (s *Store) Version() (int, error) {
	var v int
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = strconv.Atoi(string(tx.Bucket(bucketMeta).Get(keyVersion)))
		return err
	})
	return v, err
}

// EndpointKey identifies an endpoint: one container on one network.
func EndpointKey(ep api.Endpoint) []byte {
	return []byte(ep.Namespace + "/" + ep.ContainerID + "/" + ep.Network)
}

func addrKey(a netip.Addr) []byte {
	b := a.As16()
	return b[:]
}

// Networks returns every stored network.
func (s *Store) Networks() ([]api.Network, error) {
	var out []api.Network
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNetworks).ForEach(func(k, v []byte) error {
			var n api.Network
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("network %s: %w", k, err)
			}
			out = append(out, n)
			return nil
		})
	})
	return out, err
}

// CreateNetwork stores a new network; ErrExists if the name is taken.
func (s *Store) CreateNetwork(n api.Network) error {
	v, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNetworks)
		if b.Get([]byte(n.Name)) != nil {
			return fmt.Errorf("network %s: %w", n.Name, ErrExists)
		}
		return b.Put([]byte(n.Name), v)
	})
}

// DeleteNetwork removes a network and its leases. The caller has checked
// that no endpoint remains, so the leases bucket is empty: it goes first,
// and a crash before the network goes too loses nothing.
func (s *Store) DeleteNetwork(name string) error {
	err := s.eph.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketLeases).DeleteBucket([]byte(name))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("network %s: remove leases: %w", name, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNetworks)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("network %s: %w", name, ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}

// Endpoints returns every stored endpoint.
func (s *Store) Endpoints() ([]api.Endpoint, error) {
	var out []api.Endpoint
	err := s.EachEndpoint(func(ep api.Endpoint) error {
		out = append(out, ep)
		return nil
	})
	return out, err
}

// EachEndpoint calls fn with every stored endpoint, decoding one at a time:
// loading tens of thousands at start must not build them all first. fn
// runs inside a read transaction and must not write to the store.
func (s *Store) EachEndpoint(fn func(api.Endpoint) error) error {
	return s.eph.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEndpoints).ForEach(func(k, v []byte) error {
			ep, err := decodeEndpoint(v)
			if err != nil {
				return fmt.Errorf("endpoint %s: %w", k, err)
			}
			return fn(ep)
		})
	})
}

// Leases returns the leased addresses of a network with their endpoint keys.
func (s *Store) Leases(network string) (map[netip.Addr]string, error) {
	out := map[netip.Addr]string{}
	err := s.eph.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases).Bucket([]byte(network))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 16 {
				return fmt.Errorf("lease key of %d bytes in network %s", len(k), network)
			}
			out[netip.AddrFrom16([16]byte(k)).Unmap()] = string(v)
			return nil
		})
	})
	return out, err
}

// PutEndpoint writes an endpoint and takes its leases in one transaction.
// A lease held by another endpoint is ErrAddressInUse: the compare in
// compare-and-swap, which a shared store must also provide.
func (s *Store) PutEndpoint(ep api.Endpoint) error {
	v, err := encodeEndpoint(ep)
	if err != nil {
		return err
	}
	key := EndpointKey(ep)
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketNetworks).Get([]byte(ep.Network)) == nil {
			return fmt.Errorf("network %s: %w", ep.Network, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.eph.Update(func(tx *bolt.Tx) error {
		lb, err := tx.Bucket(bucketLeases).CreateBucketIfNotExists([]byte(ep.Network))
		if err != nil {
			return err
		}
		for _, p := range ep.Addresses {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return fmt.Errorf("endpoint address %q: %w", p, err)
			}
			k := addrKey(pfx.Addr())
			if owner := lb.Get(k); owner != nil && string(owner) != string(key) {
				return fmt.Errorf("%s: %w", pfx.Addr(), ErrAddressInUse)
			}
			if err := lb.Put(k, key); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketEndpoints).Put(key, v)
	})
}

// DeleteEndpoint removes an endpoint and frees its leases. Deleting one
// that is not there is not an error: detach is idempotent.
func (s *Store) DeleteEndpoint(ep api.Endpoint) error {
	return s.DeleteEndpoints([]api.Endpoint{ep})
}

// DeleteEndpoints removes endpoints and frees their leases in one
// transaction.
func (s *Store) DeleteEndpoints(eps []api.Endpoint) error {
	if len(eps) == 0 {
		return nil
	}
	return s.eph.Update(func(tx *bolt.Tx) error {
		for _, ep := range eps {
			if err := deleteEndpoint(tx, ep); err != nil {
				return err
			}
		}
		return nil
	})
}

func deleteEndpoint(tx *bolt.Tx, ep api.Endpoint) error {
	key := EndpointKey(ep)
	if lb := tx.Bucket(bucketLeases).Bucket([]byte(ep.Network)); lb != nil {
		for _, p := range ep.Addresses {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				continue
			}
			k := addrKey(pfx.Addr())
			if owner := lb.Get(k); string(owner) == string(key) {
				if err := lb.Delete(k); err != nil {
					return err
				}
			}
		}
	}
	return tx.Bucket(bucketEndpoints).Delete(key)
}

// Links returns the links underlayd owns.
func (s *Store) Links() ([]OwnedLink, error) {
	var out []OwnedLink
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLinks).ForEach(func(k, v []byte) error {
			var l OwnedLink
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("link %s: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// PutLink records that underlayd created a link.
func (s *Store) PutLink(l OwnedLink) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLinks).Put([]byte(l.Name), v)
	})
}

// DeleteLink forgets an owned link.
func (s *Store) DeleteLink(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLinks).Delete([]byte(name))
	})
}

// PutRelease keeps a release of a global network's address that etcd did
// not take, under key, until DeleteRelease: it is fsynced, so it outlives
// a crash and a reboot and the address is freed once etcd is back.
func (s *Store) PutRelease(key string, rec []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReleases).Put([]byte(key), rec)
	})
}

// DeleteRelease forgets a release that etcd has taken.
func (s *Store) DeleteRelease(key string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReleases).Delete([]byte(key))
	})
}

// Releases returns the releases still to apply, by key.
func (s *Store) Releases() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReleases).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// Cluster returns the id of the etcd cluster this host's global networks
// belong to, "" if it never joined one.
func (s *Store) Cluster() (string, error) {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(keyCluster))
		return nil
	})
	return id, err
}

// SetCluster records the id of the etcd cluster joined.
func (s *Store) SetCluster(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyCluster, []byte(id))
	})
}
