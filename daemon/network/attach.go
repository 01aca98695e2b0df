package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/ipam/dhcp"
)

// stateAttached is the state of every stored endpoint: an attach commits
// its endpoint once, when the interface is ready.
const stateAttached = "attached"

// Attach gives the container of req an interface on each requested network,
// eth0 first. Either every network is attached or none is.
func (m *Manager) Attach(req api.AttachRequest) (api.AttachResponse, error) {
	if err := validateAttach(req); err != nil {
		return api.AttachResponse{}, err
	}
	key := api.Endpoint{Namespace: req.Namespace, ContainerID: req.ContainerID}.Container()
	m.containers.Lock(key)
	defer m.containers.Unlock(key)
	t := m.timer()
	ns, err := m.kernel.OpenPid(req.Pid)
	t.Step("netns")
	if err != nil {
		err = invalid("container %s: %w", req.ContainerID, err)
		m.emitAttach(api.Network{}, api.Endpoint{Namespace: req.Namespace, ContainerID: req.ContainerID}, time.Now(), err)
		return api.AttachResponse{}, err
	}
	defer ns.Close()
	var done []api.Endpoint
	// Like Docker, the first network with a gateway of a family gives the
	// container its default route for that family; later ones only add
	// their subnet, or the second default route would clash.
	routed := map[int]bool{}
	var made []api.Endpoint // by this request: what a failure takes back
	for i, na := range req.Networks {
		ep, reused, err := m.attachOne(ns, req, i, na, routed)
		if err != nil {
			for j := len(made) - 1; j >= 0; j-- {
				m.detachEndpoint(made[j], ns, true, api.ReleaseRollback)
			}
			return api.AttachResponse{}, inNetwork(na.Name, err)
		}
		done = append(done, ep)
		if !reused {
			made = append(made, ep)
		}
	}
	return api.AttachResponse{Endpoints: done}, nil
}

func validateAttach(req api.AttachRequest) error {
	if err := validID("container id", req.ContainerID); err != nil {
		return err
	}
	if req.Namespace != "" {
		if err := validID("namespace", req.Namespace); err != nil {
			return err
		}
	}
	if len(req.Networks) == 0 {
		return invalid("no networks to attach")
	}
	if len(req.Networks) > api.MaxNetworks {
		return invalid("%d networks requested, at most %d", len(req.Networks), api.MaxNetworks)
	}
	seen := map[string]bool{}
	for _, na := range req.Networks {
		if err := api.ValidName(na.Name); err != nil {
			return invalid("%w", err)
		}
		if seen[na.Name] {
			return invalid("network %s requested twice", na.Name)
		}
		seen[na.Name] = true
	}
	return nil
}

// validID accepts what containerd, podman and runc accept as ids and
// namespaces, and nothing that could break the store's key.
func validID(what, s string) error {
	if s == "" || len(s) > 256 {
		return invalid("%s must be 1-256 characters", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-+:@", c) >= 0 {
			continue
		}
		return invalid("%s %q has a character other than letters, digits and _.-+:@", what, s)
	}
	return nil
}

// undoList runs its steps in reverse unless disarmed.
type undoList []func()

func (u *undoList) add(f func()) { *u = append(*u, f) }
func (u *undoList) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}

// attachOne attaches the container to one network in three phases. The
// network's lock covers only what must be serial: the rules, the choice of
// addresses (reserve) and the commit. The kernel work between them runs
// unlocked, so attaches to one network proceed in parallel; the reserved
// addresses keep them apart, and the pending count keeps the network (and
// a passthru parent) from being given away meanwhile. The container's own
// lock (Attach) keeps two attaches of one container apart. reused says ep
// was there already (a repeated hook): no rollback of this request's may
// take it.
func (m *Manager) attachOne(ns *link.Netns, req api.AttachRequest, idx int, na api.NetworkAttach, routed map[int]bool) (ep api.Endpoint, reused bool, err error) {
	start := time.Now()
	st, err := m.lookup(na.Name)
	defer func() {
		// An unknown network is named in the error, not in the event's
		// network, so that bad requests cannot grow the metrics' labels.
		var n api.Network
		if st != nil {
			n = st.net
		}
		if ep.ContainerID == "" {
			ep.Namespace, ep.ContainerID = req.Namespace, req.ContainerID
		}
		if err != nil {
			// The runtime shows the error to whoever started the
			// container; the operator reads it here.
			m.log.Warn("attach refused", "network", na.Name, "container", ep.Container(),
				"result", ErrorClass(err), "err", err, "took", time.Since(start).Round(time.Microsecond))
		}
		if st != nil && st.net.Scope == scopeGlobal && errors.Is(err, ErrNotFound) {
			// Removed, or removed and made again, on another host: this
			// host's copy is read again, so the next attach finds it as
			// it is now.
			m.createMu.Lock()
			if lerr := m.loadGlobal(); lerr != nil {
				m.log.Warn("global networks not read again", "err", lerr)
			}
			m.createMu.Unlock()
		}
		m.emitAttach(n, ep, start, err)
	}()
	if err != nil {
		return ep, false, err
	}
	var undo undoList
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	t := m.timer()
	ep, addrs, pending, done, err := m.reserve(st, ns, req, idx, na, &undo)
	t.Step("reserve")
	if err != nil || done {
		return ep, done, err
	}
	n := st.net
	dns := m.startDNS(n, ns) // nil without DNS on the network
	defer func() { m.servedDNS(dns, ep, ns.Inode, err == nil) }()
	var spec bundleSpec
	if dns != nil || n.IPAMDriver == dhcpIPAM {
		spec = readBundle(req.Bundle)
	}
	if dns != nil {
		ep.Names = containerNames(req, spec)
	}
	parent, mtu, err := m.parentFor(n)
	t.Step("parent")
	if err != nil {
		return ep, false, err
	}
	var configure func() error
	fixedMAC := na.MAC != ""
	if n.IPAMDriver == dhcpIPAM {
		// The address comes once the interface is up: planSlave plans
		// none, and configure leases it.
		hostname := req.Hostname
		if hostname == "" {
			hostname = spec.Hostname
		}
		name := dhcpName(req, hostname)
		// The identity (and a macvlan's MAC) comes from the name: two
		// containers of one name on a network would be one client to the
		// server, which hands the second the first one's lease.
		if other, ok := dhcpNameHolder(st, keyOf(ep), name); ok {
			return ep, false, invalid("container %s on network %s is DHCP client %q already (its name or hostname): give this container its own io.underlay.name", other.Container(), n.Name, name)
		}
		if na.MAC == "" && n.Driver == "macvlan" {
			na.MAC = dhcp.StableMAC(n.Name, name).String()
		}
		fixedMAC = n.Driver == "macvlan"
		configure = func() error {
			mac, err := net.ParseMAC(ep.MAC)
			if err != nil {
				return err
			}
			st.mu.Lock()
			var want netip.Addr
			for _, a := range st.recent[keyOf(ep)] {
				if a.Is4() {
					want = a
				}
			}
			st.mu.Unlock()
			id := dhcp.NewIdentity(n.Name, name, dhcpHostname(name, hostname), mac)
			return m.leaseInterface(st, ns, &ep, id, name, want, routed, &undo)
		}
	}
	slave, err := planSlave(st, &ep, na, parent, mtu, addrs, routed)
	if err != nil {
		return ep, false, err
	}
	if pending != nil {
		slave.Addressed = func(s *link.Slave) error {
			addrs, err := pending.wait()
			if err != nil {
				return err
			}
			planAddrs(st, &ep, s, addrs, routed)
			return nil
		}
	}
	if n.IPAMDriver == dhcpIPAM {
		slave.DisableIPv6, slave.IPv6Mode = !n.IPv6, ipv6Mode(n)
	}
	slave.Steps = m.Steps
	if err := m.createAndCommit(st, ns, &ep, slave, fixedMAC, configure, &undo); err != nil {
		return ep, false, err
	}
	m.scheduleLeases(ep)
	m.shimRoutes(st, ep, false)
	m.log.Info("attached", "network", n.Name, "container", ep.Container(), "ifname", ep.IfName,
		"addresses", strings.Join(ep.Addresses, ","), "mac", ep.MAC, "took", time.Since(start).Round(time.Microsecond))
	return ep, false, nil
}

// macHolder names what holds mac on parent, for the error of a refused
// fixed MAC: one of underlay's endpoints, or an interface underlay does
// not know. No network lock may be held.
func (m *Manager) macHolder(mac net.HardwareAddr, parent string) string {
	for _, ep := range m.endpointsWhere(func(_ epKey, r *epRecord) bool { return bytes.Equal(r.mac[:], mac) }) {
		if ep.Parent == parent {
			return fmt.Sprintf("container %s (%s on network %s)", ep.Container(), ep.IfName, ep.Network)
		}
	}
	return "an interface underlay did not make"
}

// reserve applies the network's rules and leases the endpoint's addresses
// under the network's lock, counting the attach as pending until it
// commits or rolls back. done reports a repeated hook for an endpoint that
// is already whole: ep is that endpoint and nothing else is to do.
func (m *Manager) reserve(st *netState, ns *link.Netns, req api.AttachRequest, idx int, na api.NetworkAttach, undo *undoList) (ep api.Endpoint, addrs []netip.Prefix, pending *pendingAddrs, done bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.removed {
		return ep, nil, nil, false, inNetwork(na.Name, ErrNotFound)
	}
	n := st.net
	ep = api.Endpoint{Network: n.Name, Namespace: req.Namespace, ContainerID: req.ContainerID,
		IfName: "eth" + strconv.Itoa(idx), NetnsInode: ns.Inode, NetnsCookie: ns.Cookie, Parent: n.Parent,
		Created: time.Now().UTC().Format(time.RFC3339Nano), CNI: na.CNI}
	if na.IfName != "" {
		ep.IfName = na.IfName
	}
	prefer := st.recent[keyOf(ep)]
	if old, ok := st.get(keyOf(ep)); ok {
		if ns.Same(old.NetnsInode, old.NetnsCookie) {
			// The hook ran twice for the same container, or a CNI ADD
			// came again: the same answer, if it asks for the same.
			if err := sameAsked(old, na); err != nil {
				return ep, nil, nil, false, err
			}
			return old, nil, nil, true, nil
		}
		// A restarted container: its old namespace is gone. Give back the
		// old lease and try to keep the same addresses.
		prefer = addrsOf(old)
		if err := m.releaseLocked(st, old, nil, api.ReleaseReplaced); err != nil {
			return ep, nil, nil, false, err
		}
		defer m.releaseParent(old.Parent)
	}
	if err := checkAttach(st, na); err != nil {
		return ep, nil, nil, false, err
	}
	st.pending++
	undo.add(func() { st.mu.Lock(); st.pending--; st.mu.Unlock() })
	// Counted before the parent is looked up or made, so that no
	// concurrent last detach removes an owned parent under this attach.
	m.addRef(n.Parent, 1)
	undo.add(func() { m.addRef(n.Parent, -1); m.releaseParent(n.Parent) })
	if n.IPAMDriver == dhcpIPAM {
		return ep, nil, nil, false, nil // the server gives the address later
	}
	if concurrent(st.addrs) {
		// A shared driver waits on a round trip per address and keeps
		// its own state safe: the network's other attaches need not
		// queue behind it. The pending count holds the network meanwhile.
		// A macvlan is made while etcd decides (link.Slave.Addressed):
		// its own MAC tells it apart after a crash, with no address yet.
		if n.Driver == "macvlan" {
			return ep, nil, m.takeLater(st, ep, na, prefer, undo), false, nil
		}
		st.mu.Unlock()
		addrs, err = m.takeAddresses(st, ep, na, prefer, undo)
		st.mu.Lock()
		return ep, addrs, nil, false, err
	}
	addrs, err = m.takeAddresses(st, ep, na, prefer, undo)
	return ep, addrs, nil, false, err
}

// parentFor makes sure n's parent exists and returns it with the MTU the
// container's interface gets.
func (m *Manager) parentFor(n api.Network) (link.Info, int, error) {
	parent, _, err := m.ensureParent(n)
	if err != nil {
		return parent, 0, err
	}
	if n.MTU == 0 {
		return parent, parent.MTU, nil
	}
	if n.MTU > parent.MTU {
		return parent, 0, invalid("network MTU %d is larger than the MTU %d of parent %s", n.MTU, parent.MTU, n.Parent)
	}
	return parent, n.MTU, nil
}

// createAndCommit records the attach's intent, creates the interface
// (unlocked; fixedMAC says its MAC is not the kernel's or a random one),
// runs configure if set (a DHCP lease, once the interface is up), and
// commits the endpoint under the network's lock: once, when the interface
// is ready. A restart after a crash undoes an intent whose endpoint never
// came.
func (m *Manager) createAndCommit(st *netState, ns *link.Netns, ep *api.Endpoint, slave link.Slave, fixedMAC bool, configure func() error, undo *undoList) error {
	t := m.timer()
	var err error
	if slave.TempName, err = link.NewTempName(); err != nil {
		return err
	}
	intent := *ep
	intent.TempName = slave.TempName
	if err := m.store.BeginIntent(intent); err != nil {
		return err
	}
	undo.add(func() { m.store.EndIntent(intent) })
	t.Step("intent")
	// A detached interface still being deleted holds its name in its
	// namespace and its MAC on its parent until it is gone.
	m.deletions.wait(ep.NetnsInode, ep.Parent, fixedMAC)
	t.Step("wait deletions")
	var ann *link.Announcement
	if arpCapable(st.net) {
		slave.Announce = func(a *link.Announcement) { ann = a }
	}
	slave.Unrouted = func(fam int) { ep.Gateways = withoutFamily(ep.Gateways, fam) }
	if err := m.kernel.CreateSlave(ns, slave); err != nil {
		if fixedMAC && errors.Is(err, syscall.EADDRINUSE) {
			// macvlan refuses a MAC that another slave of the parent has.
			return fmt.Errorf("MAC address %s: %s on parent %s has it: %w", slave.MAC, m.macHolder(slave.MAC, ep.Parent), ep.Parent, ErrAddressInUse)
		}
		return err
	}
	undo.add(func() { _ = m.kernel.DeleteSlave(ns, ep.IfName) })
	if ann != nil {
		undo.add(func() { m.inBackground(ann.Close) })
	}
	if configure != nil {
		t.Reset()
		if err := configure(); err != nil {
			return err
		}
		t.Step("lease")
	}
	t.Reset()
	ep.State = stateAttached
	if err := m.commitAttach(st, *ep, intent); err != nil {
		return err
	}
	t.Step("commit")
	m.announce(st.net, *ep, slave.ParentIndex, ann)
	t.Step("announce")
	return nil
}

// commitAttach records ep, attached, under its network's lock.
func (m *Manager) commitAttach(st *netState, ep api.Endpoint, intent api.Endpoint) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := m.store.PutEndpoint(ep); err != nil {
		return fmt.Errorf("record endpoint: %w", err)
	}
	st.pending--
	st.put(ep, m.intern)
	m.store.EndIntent(intent)
	return nil
}

// inBackground runs f in a goroutine that Wait waits for.
func (m *Manager) inBackground(f func()) {
	m.background.Add(1)
	go func() {
		defer m.background.Done()
		f()
	}()
}

// checkAttach applies the per-network rules that need no kernel call.
func checkAttach(st *netState, na api.NetworkAttach) error {
	n := st.net
	if n.IPAMDriver == dhcpIPAM && (na.IP != "" || na.IP6 != "") {
		return invalid("static address %s: network %s is --ipam-driver dhcp: %w", na.IP+na.IP6, n.Name, errDHCPStatic)
	}
	if n.Driver == "ipvlan" && na.MAC != "" {
		return invalid("ipvlan containers share the parent's MAC address, so a MAC address cannot be set")
	}
	if n.Mode == "passthru" {
		for k := range st.eps {
			return fmt.Errorf("macvlan passthru gives parent %s to one container, and %s has it: %w",
				n.Parent, api.Endpoint{Namespace: k.ns, ContainerID: k.id}.Container(), ErrParentBusy)
		}
		if st.pending > 0 {
			return fmt.Errorf("macvlan passthru gives parent %s to one container, and another is attaching: %w",
				n.Parent, ErrParentBusy)
		}
	}
	has := map[int]bool{}
	for _, p := range st.addrs.Pools() {
		has[p.Family()] = true
	}
	// Named as the address, not as the annotation: it may come from CNI's
	// IP= or ips, or from connect's --ip.
	if na.IP != "" && !has[4] {
		return invalid("static address %s: network %s has no IPv4 subnet", na.IP, n.Name)
	}
	if na.IP6 != "" && !has[6] {
		return invalid("static address %s: network %s has no IPv6 subnet", na.IP6, n.Name)
	}
	return nil
}

// sameAsked refuses a repeated attach whose static address or MAC is not
// what the endpoint already has: answering with the endpoint would pass
// over what was asked without a word.
func sameAsked(old api.Endpoint, na api.NetworkAttach) error {
	for _, ip := range []string{na.IP, na.IP6} {
		if a, err := netip.ParseAddr(ip); ip != "" && (err != nil || !slices.Contains(addrsOf(old), a.Unmap())) {
			return fmt.Errorf("container %s is already on network %s as %s with %s, not %s: detach it first: %w",
				old.Container(), old.Network, old.IfName, strings.Join(old.Addresses, ","), ip, ErrExists)
		}
	}
	if mac, err := api.ParseMAC(na.MAC); na.MAC != "" && (err != nil || !strings.EqualFold(mac, old.MAC)) {
		return fmt.Errorf("container %s is already on network %s as %s with MAC %s, not %s: detach it first: %w",
			old.Container(), old.Network, old.IfName, old.MAC, na.MAC, ErrExists)
	}
	return nil
}

func addrsOf(ep api.Endpoint) []netip.Addr {
	var out []netip.Addr
	for _, a := range ep.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// withoutFamily returns the addresses of gws that are not of family fam.
func withoutFamily(gws []string, fam int) []string {
	var out []string
	for _, g := range gws {
		if a, err := netip.ParseAddr(g); err == nil && (a.Is4() == (fam == 4)) {
			continue
		}
		out = append(out, g)
	}
	return out
}
