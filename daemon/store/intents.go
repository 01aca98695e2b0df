package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/underlay/underlay/daemon/api"
)

// Intents live beside the databases as one small file each, named after a
// temporary interface name. An attach writes one before any kernel work and
// removes it once the endpoint is committed; a detach writes one before it
// commits the release and renames the interface to that name, and removes
// it once the kernel has deleted the interface. They are not fsynced,
// on purpose: an intent only matters while the host stays up (a crashed
// underlayd leaves an interface in a namespace that still exists), and a
// write survives a process crash without a sync. After a power loss or a
// reboot every namespace it could name is gone, and the directory of an
// earlier boot is removed unread. That keeps attach at one commit, and
// lets a detach answer before the kernel's slow unregister finishes.

// intentPrefix names the intent directory of a boot inside the state
// directory: intents-<boot id>. Like the endpoint database, intents belong
// to one boot: a namespace's inode and cookie count again from the start
// after a reboot, so an old intent could name a new namespace.
const intentPrefix = "intents-"

// BeginIntent records that the kernel work of an attach or a detach of ep
// is about to start. ep.TempName names the intent and must be set.
func (s *Store) BeginIntent(ep api.Endpoint) error {
	if !validTempName(ep.TempName) {
		return fmt.Errorf("intent: bad temporary name %q", ep.TempName)
	}
	b, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	path := filepath.Join(s.intents, ep.TempName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("record intent: %w", err)
	}
	return nil
}

// EndIntent forgets the intent of ep: the work it announced is finished or
// rolled back.
func (s *Store) EndIntent(ep api.Endpoint) {
	if validTempName(ep.TempName) {
		_ = os.Remove(filepath.Join(s.intents, ep.TempName))
	}
}

// Intents returns the intents a crash left behind. An intent
// that cannot be read (torn by a power loss) is removed: the namespace it
// named died with the host.
func (s *Store) Intents() ([]api.Endpoint, error) {
	dir := s.intents
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read intents: %w", err)
	}
	var out []api.Endpoint
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		var ep api.Endpoint
		if err == nil {
			err = json.Unmarshal(b, &ep)
		}
		if err != nil || ep.TempName != e.Name() {
			_ = os.Remove(path)
			continue
		}
		out = append(out, ep)
	}
	return out, nil
}

// validTempName keeps an intent's file name inside the intent directory.
func validTempName(name string) bool {
	return name != "" && len(name) < 16 && !strings.ContainsAny(name, "/.\x00")
}

// makeIntentDir creates this boot's intent directory and removes those of
// earlier boots. The caller holds the state dir.
func makeIntentDir(dir, boot string) (string, error) {
	path := filepath.Join(dir, intentPrefix+boot)
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, intentPrefix+"*"))
	for _, p := range old {
		if p != path {
			_ = os.RemoveAll(p)
		}
	}
	return path, nil
}
