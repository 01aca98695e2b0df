package network

import (
	"errors"
	"fmt"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/store"
)

// Parent links have a lifecycle of their own: underlayd creates VLAN
// sub-interfaces and dummies on demand and removes them when no endpoint
// uses them. A parent that existed before underlayd looked is never
// changed or removed.
//
// Lock order: a network's lock, then a parent's lock (m.parents), then
// m.refMu, which is a leaf. releaseParent takes only the parent's lock, so
// it never waits on a network.

// parentRefs counts endpoints per parent; guarded by m.refMu.
type parentRefs map[string]int

func (m *Manager) addRef(parent string, d int) {
	m.refMu.Lock()
	m.refs[parent] += d
	if m.refs[parent] <= 0 {
		delete(m.refs, parent)
	}
	m.refMu.Unlock()
}

func (m *Manager) refCount(parent string) int {
	m.refMu.Lock()
	defer m.refMu.Unlock()
	return m.refs[parent]
}

// ensureParent makes sure n's parent exists, creating an owned VLAN or dummy
// parent if needed. It returns what the kernel says of the parent and
// whether it created it.
func (m *Manager) ensureParent(n api.Network) (link.Info, bool, error) {
	m.parents.Lock(n.Parent)
	defer m.parents.Unlock(n.Parent)
	if in, err := m.kernel.LookupParent(n.Parent); err == nil {
		return in, false, nil
	} else if !errors.Is(err, link.ErrNotFound) {
		return in, false, err
	}
	if err := m.createParentLocked(n); err != nil {
		return link.Info{}, false, err
	}
	in, err := m.kernel.LookupParent(n.Parent)
	if err != nil {
		return in, true, fmt.Errorf("parent %w", err)
	}
	return in, true, nil
}

// createParentLocked creates n's missing parent as an owned VLAN
// sub-interface or dummy; the caller holds the parent's lock.
func (m *Manager) createParentLocked(n api.Network) error {
	owned := store.OwnedLink{Name: n.Parent, Network: n.Name}
	dummy := (n.Internal || n.Options["parent"] == "") && isDummyName(n.Parent)
	if dummy {
		owned.Kind = "dummy"
	} else if base, vid, ok := splitVLAN(n.Parent); ok {
		owned.Kind, owned.Base, owned.VLAN = "vlan", base, vid
	} else {
		return noParent("parent interface %s does not exist", n.Parent)
	}
	// Record ownership before creating: a crash in between leaves a record
	// without a link, which is harmless; the reverse would leak a link.
	if err := m.store.PutLink(owned); err != nil {
		return fmt.Errorf("record parent %s: %w", n.Parent, err)
	}
	var err error
	if dummy {
		err = m.kernel.CreateDummy(n.Parent)
	} else {
		err = m.kernel.CreateVLAN(owned.Base, owned.VLAN, n.Parent)
	}
	if err != nil {
		_ = m.store.DeleteLink(n.Parent)
		return err
	}
	m.setOwned(owned)
	m.log.Info("parent created", "parent", n.Parent, "kind", owned.Kind, "network", n.Name)
	m.emit(api.Event{Type: api.EventParentCreate, Parent: n.Parent, Network: n.Name, Driver: n.Driver})
	return nil
}

func isDummyName(name string) bool {
	return len(name) == 15 && (strings.HasPrefix(name, "dm-") || strings.HasPrefix(name, "di-"))
}

func (m *Manager) setOwned(l store.OwnedLink) {
	m.refMu.Lock()
	m.owned[l.Name] = l
	m.refMu.Unlock()
}

func (m *Manager) isOwned(name string) bool {
	m.refMu.Lock()
	defer m.refMu.Unlock()
	_, ok := m.owned[name]
	return ok
}

// releaseParent removes an owned parent once no endpoint uses it.
func (m *Manager) releaseParent(parent string) {
	m.parents.Lock(parent)
	defer m.parents.Unlock(parent)
	if m.refCount(parent) > 0 || !m.isOwned(parent) {
		return
	}
	if err := m.kernel.Delete(parent); err != nil {
		m.log.Warn("owned parent not removed", "parent", parent, "err", err)
		return
	}
	if err := m.store.DeleteLink(parent); err != nil {
		m.log.Warn("owned parent record not removed", "parent", parent, "err", err)
	}
	m.refMu.Lock()
	delete(m.owned, parent)
	m.refMu.Unlock()
	m.log.Info("parent removed", "parent", parent)
	m.emit(api.Event{Type: api.EventParentRemove, Parent: parent})
}
