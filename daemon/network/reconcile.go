package network

import (
	"fmt"
	"os"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"golang.org/x/sys/unix"
)

// Reconciliation releases endpoints whose container is gone but whose
// detach never came: a poststop hook that did not run, an event missed
// while underlayd was down, a host reboot. An endpoint is dead when its
// network namespace (recorded by inode at attach) exists nowhere, or when
// containerd no longer knows its container. Endpoints newer than the
// snapshot being compared are left alone: they may belong to a container
// that started after the snapshot was taken.

// ContainerGone releases a container containerd deleted.
func (m *Manager) ContainerGone(ns, id string) error {
	_, err := m.Detach(api.DetachRequest{Namespace: ns, ContainerID: id})
	return err
}

// ReconcileContainerd releases endpoints of containerd containers (those
// with a namespace) that are not in live, a listing taken at listedAt.
func (m *Manager) ReconcileContainerd(live map[string]map[string]bool, listedAt time.Time) (int, error) {
	var dead []api.Endpoint
	for _, ep := range m.Endpoints() {
		if ep.Namespace == "" || live[ep.Namespace][ep.ContainerID] || !olderThan(ep, listedAt) {
			continue
		}
		dead = append(dead, ep)
	}
	return m.releaseDead(dead, "containerd no longer knows the container")
}

// ReconcileNetns releases endpoints whose network namespace is gone.
func (m *Manager) ReconcileNetns() (int, error) {
	start := time.Now()
	alive := liveNetns()
	var dead []api.Endpoint
	for _, ep := range m.Endpoints() {
		if !alive[ep.NetnsInode] && olderThan(ep, start) {
			dead = append(dead, ep)
		}
	}
	return m.releaseDead(dead, "network namespace is gone")
}

// Reconcile runs every check that needs nothing but the kernel.
func (m *Manager) Reconcile() (int, error) { return m.ReconcileNetns() }

func (m *Manager) releaseDead(dead []api.Endpoint, why string) (int, error) {
	n := 0
	for _, ep := range dead {
		m.log.Info("releasing dead endpoint", "network", ep.Network, "container", containerName(ep),
			"ifname", ep.IfName, "reason", why)
		if err := m.detachEndpoint(ep, nil); err != nil {
			return n, fmt.Errorf("release %s on %s: %w", containerName(ep), ep.Network, err)
		}
		n++
	}
	return n, nil
}

func olderThan(ep api.Endpoint, t time.Time) bool {
	created, err := time.Parse(time.RFC3339Nano, ep.Created)
	return err != nil || created.Before(t)
}

// liveNetns returns the inodes of every network namespace that a process
// is in or that is bind-mounted under /run/netns.
func liveNetns() map[uint64]bool {
	alive := map[uint64]bool{}
	add := func(path string) {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			alive[st.Ino] = true
		}
	}
	for _, dir := range []string{"/run/netns", "/var/run/netns"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			add(dir + "/" + e.Name())
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if c := e.Name()[0]; c >= '0' && c <= '9' {
			add("/proc/" + e.Name() + "/ns/net")
		}
	}
	return alive
}
