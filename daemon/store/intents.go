package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/underlay/underlay/daemon/api"
)

// Intents live beside the databases in one file per boot,
// intents-<boot id>, as fixed slots: an attach writes its intent into a
// free slot (one pwrite) before any kernel work and clears the slot's
// length (a 4-byte pwrite) once the endpoint is committed; a detach writes
// one before it commits the release and clears it once the kernel has
// deleted the interface. A file per intent cost its creation and its
// unlink, about 0.3 ms of every attach here.
//
// Nothing is fsynced, on purpose: an intent only matters while the host
// stays up (a crashed underlayd leaves an interface in a namespace that
// still exists), and a write survives a process crash without a sync.
// After a power loss or a reboot every namespace an intent could name is
// gone, and the file of an earlier boot is removed unread. That keeps
// attach at one commit, and lets a detach answer before the kernel's slow
// unregister finishes.
//
// A slot is a big-endian uint32 length, 0 when free, then that many bytes
// of the endpoint as JSON. A slot that does not decode (a torn write) is
// freed: the namespace it named died with the host.

// intentPrefix names the intent file of a boot inside the state
// directory: intents-<boot id>. Like the endpoint database, intents belong
// to one boot: a namespace's inode and cookie count again from the start
// after a reboot, so an old intent could name a new namespace.
const intentPrefix = "intents-"

// intentSlot is the size of a slot: the file grows by one per attach or
// detach in flight at once, and shrinks at the next boot.
const intentSlot = 4096

// intentFile is this boot's intent file and which slot holds which
// intent, by temporary name.
type intentFile struct {
	mu    sync.Mutex
	f     *os.File
	slots map[string]int
	free  []int
	n     int // slots the file has
}

// BeginIntent records that the kernel work of an attach or a detach of ep
// is about to start. ep.TempName names the intent and must be set.
func (s *Store) BeginIntent(ep api.Endpoint) error {
	if !validTempName(ep.TempName) {
		return fmt.Errorf("intent: bad temporary name %q", ep.TempName)
	}
	// What undoes the kernel work: the names are the resolver's.
	ep.Names = nil
	b, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	if len(b) > intentSlot-4 {
		return fmt.Errorf("record intent: %d bytes, more than a slot's %d", len(b), intentSlot-4)
	}
	rec := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(rec, uint32(len(b)))
	copy(rec[4:], b)
	in := s.intents
	in.mu.Lock()
	defer in.mu.Unlock()
	slot, ok := in.slots[ep.TempName]
	if !ok {
		slot = in.take()
	}
	if _, err := in.f.WriteAt(rec, int64(slot)*intentSlot); err != nil {
		if !ok {
			in.free = append(in.free, slot)
		}
		return fmt.Errorf("record intent: %w", err)
	}
	in.slots[ep.TempName] = slot
	return nil
}

// take returns a free slot, or a new one at the end of the file.
func (in *intentFile) take() int {
	if n := len(in.free); n > 0 {
		slot := in.free[n-1]
		in.free = in.free[:n-1]
		return slot
	}
	in.n++
	return in.n - 1
}

// EndIntent forgets the intent of ep: the work it announced is finished or
// rolled back.
func (s *Store) EndIntent(ep api.Endpoint) {
	in := s.intents
	in.mu.Lock()
	defer in.mu.Unlock()
	slot, ok := in.slots[ep.TempName]
	if !ok {
		return
	}
	if _, err := in.f.WriteAt(make([]byte, 4), int64(slot)*intentSlot); err != nil {
		return // still recorded: the next start finishes it
	}
	delete(in.slots, ep.TempName)
	in.free = append(in.free, slot)
}

// Intents returns the intents not ended yet: at start, those a crash left
// behind.
func (s *Store) Intents() ([]api.Endpoint, error) {
	in := s.intents
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []api.Endpoint
	for name, slot := range in.slots {
		ep, ok := in.read(slot)
		if !ok || ep.TempName != name {
			return nil, fmt.Errorf("read intents: slot %d of %s changed under us", slot, in.f.Name())
		}
		out = append(out, ep)
	}
	return out, nil
}

// read decodes slot.
func (in *intentFile) read(slot int) (api.Endpoint, bool) {
	buf := make([]byte, intentSlot)
	n, err := in.f.ReadAt(buf, int64(slot)*intentSlot)
	if err != nil && !errors.Is(err, io.EOF) || n < 4 {
		return api.Endpoint{}, false
	}
	l := binary.BigEndian.Uint32(buf)
	var ep api.Endpoint
	if l == 0 || int(l) > n-4 || json.Unmarshal(buf[4:4+l], &ep) != nil || !validTempName(ep.TempName) {
		return api.Endpoint{}, false
	}
	return ep, true
}

// validTempName accepts the temporary interface names that name intents.
func validTempName(name string) bool {
	return name != "" && len(name) < 16 && !strings.ContainsAny(name, "/.\x00")
}

// openIntents opens this boot's intent file, reads what a crash left in
// it, and removes the intents of earlier boots. An intent directory of
// this boot (an underlayd before the slotted file, upgraded without a
// reboot) is carried over into the file. The caller holds the state dir.
func openIntents(dir, boot string) (*intentFile, error) {
	path := filepath.Join(dir, intentPrefix+boot)
	var carried []api.Endpoint
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		carried = readIntentDir(path)
		if err := os.RemoveAll(path); err != nil {
			return nil, fmt.Errorf("replace intent directory %s: %w", path, err)
		}
	}
	old, _ := filepath.Glob(filepath.Join(dir, intentPrefix+"*"))
	for _, p := range old {
		if p != path {
			_ = os.RemoveAll(p)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open intents %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open intents %s: %w", path, err)
	}
	in := &intentFile{f: f, slots: map[string]int{}, n: int((fi.Size() + intentSlot - 1) / intentSlot)}
	for slot := 0; slot < in.n; slot++ {
		ep, ok := in.read(slot)
		if _, dup := in.slots[ep.TempName]; !ok || dup {
			_, _ = f.WriteAt(make([]byte, 4), int64(slot)*intentSlot)
			in.free = append(in.free, slot)
			continue
		}
		in.slots[ep.TempName] = slot
	}
	s := &Store{intents: in}
	for _, ep := range carried {
		if err := s.BeginIntent(ep); err != nil {
			f.Close()
			return nil, err
		}
	}
	return in, nil
}

// readIntentDir reads the intents of the directory format: one JSON file
// each, named after the temporary name.
func readIntentDir(dir string) []api.Endpoint {
	ents, _ := os.ReadDir(dir)
	var out []api.Endpoint
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		var ep api.Endpoint
		if err == nil && json.Unmarshal(b, &ep) == nil && ep.TempName == e.Name() && validTempName(ep.TempName) {
			out = append(out, ep)
		}
	}
	return out
}
