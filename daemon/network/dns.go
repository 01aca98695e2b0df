package network

import (
	"net/netip"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Name resolution, as Docker's embedded DNS: a container's names resolve
// to its addresses on a network, for the containers on that network. The
// manager keeps the names (each network's index, netState.names); the
// NameServer (package resolver) answers on 127.0.0.11 in each container,
// from the first endpoint on a network with DNS to the last one's release.

// NameServer serves 127.0.0.11 in a network namespace (all the
// containers that share it, as a pod's do).
type NameServer interface {
	Serve(netns *link.Netns) error
	Stop(inode uint64)
}

// SetNameServer wires the resolver in, before the first request. The
// namespaces alive now get their name servers in the background: with
// thousands of them that takes seconds, which must not delay the first
// answer after a restart.
func (m *Manager) SetNameServer(s NameServer) {
	m.dns = s
	live := m.kernel.LiveNetns()
	var later []uint64
	seen := map[uint64]bool{}
	for _, st := range m.states() {
		if !dnsOn(st.net) {
			continue
		}
		st.mu.Lock()
		for _, r := range st.eps {
			m.dnsRef(r.inode, 1)
			if _, ok := live[r.inode]; ok && !seen[r.inode] {
				seen[r.inode] = true
				later = append(later, r.inode)
			}
		}
		st.mu.Unlock()
	}
	m.inBackground(func() {
		for _, inode := range later {
			m.dnsMu.Lock()
			// Released meanwhile: a server now would hold its namespace.
			if m.dnsRefs[inode] > 0 {
				if ns, err := m.kernel.OpenPath(live[inode]); err == nil {
					if err := s.Serve(ns); err != nil {
						m.log.Warn("container DNS not served", "netns", inode, "err", err)
					}
					ns.Close()
				}
			}
			m.dnsMu.Unlock()
		}
	})
}

// dnsOn is a network's -o dns (on unless "false").
func dnsOn(n api.Network) bool { return n.Options["dns"] != "false" }

// dnsRef counts the endpoints on networks with DNS in a network namespace,
// and stops its name server with the last. It is a leaf lock: callers may
// hold a network's.
func (m *Manager) dnsRef(inode uint64, d int) {
	if m.dns == nil {
		return
	}
	m.dnsMu.Lock()
	defer m.dnsMu.Unlock()
	if m.dnsRefs == nil {
		m.dnsRefs = map[uint64]int{}
	}
	m.dnsRefs[inode] += d
	if m.dnsRefs[inode] <= 0 {
		delete(m.dnsRefs, inode)
		m.dns.Stop(inode)
	}
}

// startDNS counts an attach into ns and starts the namespace's name
// server beside the attach's kernel work (a goroutine of its own, with
// its own thread in the namespace). The attach ends it with servedDNS,
// whatever its outcome, before ns is closed. nil when the network has no
// DNS.
func (m *Manager) startDNS(n api.Network, ns *link.Netns) chan error {
	if m.dns == nil || !dnsOn(n) {
		return nil
	}
	m.dnsRef(ns.Inode, 1)
	started := make(chan error, 1)
	go func() { started <- m.dns.Serve(ns) }()
	return started
}

// servedDNS waits for the server startDNS started. An attach that failed
// gives its count back. A server nobody counts any more (the attach
// failed, or releases came meanwhile) is stopped again: the count is
// taken outside the server's start, so that attaches into different
// namespaces do not queue behind each other.
func (m *Manager) servedDNS(started chan error, ep api.Endpoint, inode uint64, ok bool) {
	if started == nil {
		return
	}
	err := <-started
	if ok && err != nil {
		m.log.Warn("container DNS not served", "container", ep.Container(), "err", err)
	}
	if !ok {
		m.dnsRef(inode, -1)
		return
	}
	m.dnsMu.Lock()
	defer m.dnsMu.Unlock()
	if m.dnsRefs[inode] <= 0 {
		m.dns.Stop(inode)
	}
}

// Resolve answers the resolver: name's addresses on the networks (with
// DNS) of the containers in the asking namespace, and whether name is any
// container's.
func (m *Manager) Resolve(netns uint64, name string) ([]netip.Addr, bool) {
	var out []netip.Addr
	known := false
	for _, st := range m.states() {
		if !dnsOn(st.net) {
			continue
		}
		st.mu.Lock()
		holders := st.names[name]
		known = known || len(holders) > 0
		if len(holders) > 0 {
			on := false
			for _, r := range st.eps {
				if r.inode == netns {
					on = true
					break
				}
			}
			for k := range holders {
				if r, ok := st.eps[k]; ok && on {
					out = append(out, r.addrs()...)
				}
			}
		}
		st.mu.Unlock()
	}
	return out, known
}

// containerNames are the names a container answers to: io.underlay.name
// (with its aliases), nerdctl's name, the name the runtime passed, and the
// OCI hostname, in that order, lower-cased and without duplicates. spec is
// the container's bundle (readBundle).
func containerNames(req api.AttachRequest, spec bundleSpec) []string {
	var raw []string
	if v, ok := spec.Annotations[api.AnnotationName]; ok {
		names, _ := api.ContainerNames(v)
		raw = append(raw, names...)
	}
	raw = append(raw, spec.Annotations["nerdctl/name"], req.Name, spec.Hostname, req.Hostname)
	var out []string
	seen := map[string]bool{}
	for _, r := range raw {
		for _, n := range strings.Split(r, ",") {
			n = strings.ToLower(strings.TrimSpace(n))
			if n == "" || seen[n] || strings.ContainsAny(n, " ") {
				continue
			}
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
