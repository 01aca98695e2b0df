package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Endpoints and leases describe interfaces in network namespaces, and no
// namespace outlives the boot that made it: after a reboot every endpoint
// is dead. So they live in a second database, one per boot, named after the
// kernel's boot id (endpoints-<boot id>.db), and its commits are not
// fsynced. A commit then costs a few page-cache writes instead of two disk
// flushes, which is most of an attach's or a detach's time on a slow disk.
//
// That is safe because of what can and cannot happen to the file:
//   - underlayd crashing or being killed loses nothing: its writes are in
//     the page cache, and bbolt's copy-on-write pages and checksummed meta
//     pages keep the file whole at every point of a commit;
//   - a kernel crash or power loss can leave the file torn, but it also
//     ends the boot: the next boot has another id, so the file is never
//     opened again, only removed, and with it every lease of namespaces
//     that no longer exist.
// One more way to lose page-cache writes within a boot is a writeback
// error (the disk failing, a thin pool filling up): bbolt never hears of
// it without a sync, so underlayd syncs this file now and then (CheckSync)
// and says so loudly when that fails.
//
// Networks and the links underlayd owns outlive a reboot, so they stay in
// the fsynced database (underlay.db).

// bootIDPath is where the kernel gives this boot's random id.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

// ephemeralPrefix and ephemeralSuffix frame the boot id in the file name.
const (
	ephemeralPrefix = "endpoints-"
	ephemeralSuffix = ".db"
)

// bootID reads this boot's id.
func bootID() (string, error) {
	raw, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	boot := strings.TrimSpace(string(raw))
	if boot == "" || strings.ContainsAny(boot, "/.\x00") {
		return "", fmt.Errorf("read boot id: unusable %q", boot)
	}
	return boot, nil
}

// openEphemeral opens this boot's endpoint database in dir, creating it if
// needed, and removes those of earlier boots. The caller holds the state
// dir (underlay.db's lock).
func openEphemeral(dir, boot string) (*bolt.DB, error) {
	path := filepath.Join(dir, ephemeralPrefix+boot+ephemeralSuffix)
	// NoGrowSync too: growing the file needs no flush either.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoGrowSync: true})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open endpoint database %s: %w", path, err)
	}
	db.NoSync = true
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEndpoints, bucketLeases} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("endpoint database %s: %w", path, err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, ephemeralPrefix+"*"+ephemeralSuffix))
	for _, p := range old {
		if p != path {
			_ = os.Remove(p)
		}
	}
	return db, nil
}

// CheckSync flushes the endpoint database to disk and reports a writeback
// error, which would otherwise go unnoticed (see above). It is for a
// periodic check, off every request's path.
func (s *Store) CheckSync() error {
	if err := s.eph.Sync(); err != nil {
		return fmt.Errorf("flush endpoint database: %w", err)
	}
	return nil
}
