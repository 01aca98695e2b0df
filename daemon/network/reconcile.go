package network

import (
	"fmt"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Reconciliation releases endpoints whose container is gone but whose
// detach never came: a poststop hook that did not run, an event missed
// while underlayd was down, a host reboot. An endpoint is dead when its
// network namespace (recorded by inode at attach) exists nowhere, or when
// containerd no longer knows its container. Endpoints newer than the
// snapshot being compared are left alone: they may belong to a container
// that started after the snapshot was taken.

// ContainerGone releases the endpoints a containerd container had when
// containerd deleted it at time at. Events can arrive late: one attached
// after that belongs to a new task of the same container (nerdctl restart)
// and must stay. A zero time releases them all.
func (m *Manager) ContainerGone(ns, id string, at time.Time) error {
	if at.IsZero() {
		_, err := m.detach(api.DetachRequest{Namespace: ns, ContainerID: id}, api.ReleaseEvent)
		return err
	}
	var gone []api.Endpoint
	for _, ep := range m.endpointsOf(ns, id) {
		if olderThan(ep, at) {
			gone = append(gone, ep)
		}
	}
	_, err := m.releaseDead(gone, "containerd deleted the container", true, api.ReleaseEvent)
	return err
}

// ReconcileContainerd releases endpoints of containerd containers (those
// with a namespace) that are not in live, a listing taken at listedAt.
func (m *Manager) ReconcileContainerd(live map[string]map[string]bool, listedAt time.Time) (int, error) {
	dead := m.endpointsWhere(func(k epKey, r *epRecord) bool {
		return k.ns != "" && !live[k.ns][k.id] && r.created < listedAt.UnixNano()
	})
	n, err := m.releaseDead(dead, "containerd no longer knows the container", true, api.ReleaseReconcile)
	m.emitReconcile("containerd", n, err)
	return n, err
}

// ReconcileNetns releases endpoints whose network namespace is gone. A live
// inode is checked against the recorded cookie too: inodes are reused as
// soon as a namespace dies.
func (m *Manager) ReconcileNetns() (int, error) {
	return m.reconcileNetns(api.ReleaseReconcile)
}

func (m *Manager) reconcileNetns(path string) (int, error) {
	start := time.Now()
	alive := m.kernel.LiveNetns()
	cookies := map[uint64]uint64{} // inode -> cookie, read once per namespace
	dead := m.endpointsWhere(func(_ epKey, r *epRecord) bool {
		if r.created >= start.UnixNano() {
			return false
		}
		path, ok := alive[r.inode]
		if ok && r.cookie != 0 {
			c, seen := cookies[r.inode]
			if !seen {
				if ns, err := m.kernel.OpenPath(path); err == nil {
					c = ns.Cookie
					ns.Close()
				}
				cookies[r.inode] = c
			}
			ok = c == r.cookie
		}
		return !ok
	})
	return m.releaseDead(dead, "network namespace is gone", false, path)
}

// Reconcile runs every check that needs nothing but the kernel and the
// address drivers: it releases the endpoints whose namespace is gone, then
// renews each network's leases and releases what its driver holds for no
// endpoint. It returns how many endpoints it released.
func (m *Manager) Reconcile() (int, error) {
	return m.reconcile(api.ReleaseReconcile)
}

// Prune is `underlay endpoint prune`: a Reconcile asked for by hand.
func (m *Manager) Prune() (int, error) {
	return m.reconcile(api.ReleasePrune)
}

func (m *Manager) reconcile(path string) (int, error) {
	n, err := m.reconcileNetns(path)
	for _, st := range m.states() {
		st.mu.Lock()
		if err := st.addrs.Renew(); err != nil {
			m.log.Warn("leases not renewed", "network", st.net.Name, "err", err)
		}
		m.releaseUnbackedLocked(st)
		unheld := unheldLocked(st)
		st.mu.Unlock()
		m.holdAgain(st, unheld)
	}
	m.reclaimGone()
	m.emitReconcile(path, n, err)
	return n, err
}

// emitReconcile tells of one reconcile run: what ran it (api.Release*
// or "containerd") and how many endpoints it released.
func (m *Manager) emitReconcile(path string, released int, err error) {
	e := api.Event{Type: api.EventReconcile, Path: path, Released: released, Result: ErrorClass(err)}
	if err != nil {
		e.Error = err.Error()
	}
	m.emit(e)
}

// releaseDead releases endpoints whose container is gone, one store
// transaction per network: after a reboot thousands are dead at once, and
// a commit each would take seconds. With findNS the interface is deleted
// where the namespace still exists.
func (m *Manager) releaseDead(dead []api.Endpoint, why string, findNS bool, path string) (int, error) {
	start := time.Now()
	byNet := map[string][]api.Endpoint{}
	for _, ep := range dead {
		byNet[ep.Network] = append(byNet[ep.Network], ep)
	}
	// Each namespace is looked for once (a walk of /proc), and before any
	// network's lock is taken: a container on several networks has one.
	namespaces := map[[2]uint64]*link.Netns{}
	if findNS {
		for _, ep := range dead {
			k := [2]uint64{ep.NetnsInode, ep.NetnsCookie}
			if _, ok := namespaces[k]; !ok {
				namespaces[k] = m.kernel.FindNetns(ep.NetnsInode, ep.NetnsCookie, 0)
			}
		}
		defer func() {
			for _, ns := range namespaces {
				if ns != nil {
					ns.Close()
				}
			}
		}()
	}
	n := 0
	for name, eps := range byNet {
		st, err := m.network(name)
		if err != nil {
			continue // network removed meanwhile: nothing left to release
		}
		st.mu.Lock()
		var cur []release
		for _, ep := range eps {
			c, ok := st.get(keyOf(ep))
			if !ok || c.NetnsInode != ep.NetnsInode || c.Created != ep.Created {
				continue // already released, or replaced by a newer attach
			}
			m.log.Info("releasing dead endpoint", "network", c.Network, "container", c.Container(),
				"ifname", c.IfName, "reason", why)
			cur = append(cur, release{ep: c, ns: namespaces[[2]uint64{c.NetnsInode, c.NetnsCookie}], path: path, start: start})
		}
		if err := m.releaseAllLocked(st, cur); err != nil {
			st.mu.Unlock()
			return n, fmt.Errorf("release dead endpoints of %s: %w", name, err)
		}
		parents := map[string]bool{}
		for _, r := range cur {
			parents[r.ep.Parent] = true
		}
		st.mu.Unlock()
		for p := range parents {
			m.releaseParent(p)
		}
		n += len(cur)
	}
	return n, nil
}

func olderThan(ep api.Endpoint, t time.Time) bool {
	created, err := time.Parse(time.RFC3339Nano, ep.Created)
	return err != nil || created.Before(t)
}
