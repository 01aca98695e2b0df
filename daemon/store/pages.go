package store

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// DropPages unmaps the databases' pages from underlayd's address space.
// bbolt reads through a shared read-only mapping of the file, so loading
// every endpoint at start leaves the whole file resident in the daemon
// (48 MiB with 65,000 endpoints), although steady work touches a few pages.
// The pages stay in the kernel's page cache, where they are reclaimable
// and shared; the next read of one maps it again. Run inside a read
// transaction, which keeps bbolt from remapping the file meanwhile.
func (s *Store) DropPages() error {
	for _, db := range []*bolt.DB{s.db, s.eph} {
		if err := dropPages(db); err != nil {
			return err
		}
	}
	return nil
}

func dropPages(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		size := int(tx.Size())
		if size == 0 {
			return nil
		}
		// bbolt gives the mapping's address only as a uintptr; the raw
		// call takes it as one.
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
		if errno != 0 {
			return errno
		}
		return nil
	})
}
