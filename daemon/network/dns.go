package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
)

// Name resolution, as Docker's embedded DNS: a container's names resolve
// to its addresses on a network, for the containers on that network. The
// manager keeps the names (each network's index, netState.names); the
// NameServer (package resolver) answers on 127.0.0.11 in each container,
// from the first endpoint on a network with DNS to the last one's release.

// NameServer serves a container's 127.0.0.11.
type NameServer interface {
	Serve(ns, id string, netns *link.Netns) error
	Stop(ns, id string)
}

// SetNameServer wires the resolver in, before the first request; it is
// told of every container alive now.
func (m *Manager) SetNameServer(s NameServer) {
	m.dns = s
	live := m.kernel.LiveNetns()
	served := map[string]bool{}
	for _, st := range m.states() {
		if !dnsOn(st.net) {
			continue
		}
		st.mu.Lock()
		eps := st.all()
		st.mu.Unlock()
		for _, ep := range eps {
			key := containerName(ep)
			m.dnsRef(key, 1)
			path, ok := live[ep.NetnsInode]
			if !ok || served[key] {
				continue
			}
			served[key] = true
			if ns, err := m.kernel.OpenPath(path); err == nil {
				if err := s.Serve(ep.Namespace, ep.ContainerID, ns); err != nil {
					m.log.Warn("container DNS not served", "container", key, "err", err)
				}
				ns.Close()
			}
		}
	}
}

// dnsOn is a network's -o dns (on unless "false").
func dnsOn(n api.Network) bool { return n.Options["dns"] != "false" }

// dnsRef counts a container's endpoints on networks with DNS, and stops
// its name server with the last. It is a leaf lock: callers may hold a
// network's.
func (m *Manager) dnsRef(key string, d int) {
	if m.dns == nil {
		return
	}
	m.dnsMu.Lock()
	defer m.dnsMu.Unlock()
	if m.dnsRefs == nil {
		m.dnsRefs = map[string]int{}
	}
	m.dnsRefs[key] += d
	if m.dnsRefs[key] <= 0 {
		delete(m.dnsRefs, key)
		ns, id, ok := strings.Cut(key, "/")
		if !ok {
			ns, id = "", key
		}
		m.dns.Stop(ns, id)
	}
}

// serveDNS starts the container's name server after an attach commits.
func (m *Manager) serveDNS(n api.Network, ep api.Endpoint, ns *link.Netns) {
	if m.dns == nil || !dnsOn(n) {
		return
	}
	m.dnsRef(containerName(ep), 1)
	if err := m.dns.Serve(ep.Namespace, ep.ContainerID, ns); err != nil {
		m.log.Warn("container DNS not served", "container", containerName(ep), "err", err)
	}
}

// Resolve answers the resolver: name's addresses on the networks that the
// asking container ns/id is on (with DNS), and whether name is any
// container's.
func (m *Manager) Resolve(ns, id, name string) ([]netip.Addr, bool) {
	asker := epKey{ns, id}
	var out []netip.Addr
	known := false
	for _, st := range m.states() {
		if !dnsOn(st.net) {
			continue
		}
		st.mu.Lock()
		holders := st.names[name]
		known = known || len(holders) > 0
		if _, on := st.eps[asker]; on {
			for k := range holders {
				if r, ok := st.eps[k]; ok {
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
// OCI hostname, in that order, lower-cased and without duplicates.
func containerNames(req api.AttachRequest) []string {
	var raw []string
	if req.Bundle != "" && filepath.IsAbs(req.Bundle) {
		if b, err := os.ReadFile(filepath.Join(req.Bundle, "config.json")); err == nil {
			var spec struct {
				Hostname    string            `json:"hostname"`
				Annotations map[string]string `json:"annotations"`
			}
			if json.Unmarshal(b, &spec) == nil {
				if v, ok := spec.Annotations[api.AnnotationName]; ok {
					names, _ := api.ContainerNames(v)
					raw = append(raw, names...)
				}
				raw = append(raw, spec.Annotations["nerdctl/name"], req.Name, spec.Hostname)
			}
		}
	}
	raw = append(raw, req.Name, req.Hostname)
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
