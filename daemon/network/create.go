package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/underlay/underlay/cni/conflist"
	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/ipam"
)

// knownOptions are the -o keys each driver accepts.
var knownOptions = map[string][]string{
	"macvlan": {"parent", "macvlan_mode", "mtu", "dhcp_timeout", "ipv6_mode", "dns"},
	"ipvlan":  {"parent", "ipvlan_mode", "ipvlan_flag", "mtu", "dhcp_timeout", "ipv6_mode", "dns"},
}

// Create validates a network request against the kernel and the other
// networks, prepares its parent, and stores it. On any error nothing is
// stored and no link is left behind.
func (m *Manager) Create(req api.NetworkCreate) (api.Network, error) {
	n, pools, err := m.validate(req)
	if err != nil {
		return api.Network{}, err
	}
	m.createMu.Lock()
	defer m.createMu.Unlock()
	if m.global != nil {
		// The rules below (one name, no overlap on a parent) look at the
		// networks other hosts made too, as they are now. A local network
		// does not wait for etcd: it goes by the copies this host has.
		if err := m.loadGlobal(); err != nil && n.Scope == scopeGlobal {
			return api.Network{}, err
		} else if err != nil {
			m.log.Warn("local network checked against the global networks as last seen", "network", n.Name, "err", err)
		}
	}
	if _, err := m.network(n.Name); err == nil {
		return api.Network{}, inNetwork(n.Name, ErrExists)
	}
	// The record keeps the parent asked for; this host's checks and its
	// parent go by the parent it has here.
	shared := n
	if p, ok := m.parentOf[n.Name]; ok && n.Scope == scopeGlobal {
		n.Parent = p
	}
	if err := m.checkParentRules(n, pools); err != nil {
		return api.Network{}, err
	}
	// A kernel without the driver is caught here, not at the first
	// container. (Missing 802.1q or dummy shows when the parent is made.)
	if err := m.kernel.Probe(n.Driver); err != nil {
		return api.Network{}, invalid("driver %s: %w", n.Driver, err)
	}
	_, created, err := m.ensureParent(n)
	if err != nil {
		if created {
			m.releaseParent(n.Parent)
		}
		return api.Network{}, err
	}
	undoShim := func() {}
	if len(n.HostAddresses) > 0 {
		// The shim comes before the record: a network stored without
		// the shim it promises would be a lie until the next event.
		st, err := newStateWith(n, pools)
		if err == nil {
			err = m.syncShim(st)
		}
		undoShim = func() { _ = m.shims.DeleteShim(shimName(n)) }
		if err != nil {
			undoShim()
			if created {
				m.releaseParent(n.Parent)
			}
			return api.Network{}, err
		}
	}
	if req.CNIConfDir != "" {
		n.CNIConf = filepath.Join(req.CNIConfDir, conflist.FileName(n.Name))
		shared.CNIConf = n.CNIConf
		if err := writeFileAtomic(n.CNIConf, conflist.Build(n, req.CNISocket)); err != nil {
			undoShim()
			if created {
				m.releaseParent(n.Parent)
			}
			return api.Network{}, fmt.Errorf("--cni-conf-dir %s: %w", req.CNIConfDir, err)
		}
		prev := undoShim
		undoShim = func() { prev(); _ = os.Remove(n.CNIConf) }
	}
	if err := m.storeNetwork(shared, pools); err != nil {
		undoShim()
		if created {
			m.releaseParent(n.Parent)
		}
		return api.Network{}, err
	}
	m.log.Info("network created", "network", n.Name, "driver", n.Driver, "parent", n.Parent, "mode", n.Mode, "scope", n.Scope)
	m.emit(api.Event{Type: api.EventNetworkCreate, Network: n.Name, Driver: n.Driver, Parent: n.Parent})
	return n, nil
}

// storeNetwork stores a new network where its scope says, and makes it
// known.
func (m *Manager) storeNetwork(n api.Network, pools []ipam.Pool) error {
	if n.Scope == scopeGlobal {
		return m.createGlobal(n, pools)
	}
	st, err := newStateWith(n, pools)
	if err != nil {
		return err
	}
	if err := m.store.CreateNetwork(n); err != nil {
		return err
	}
	m.mu.Lock()
	m.nets[n.Name] = st
	m.mu.Unlock()
	return nil
}

// validate checks everything that needs no other network.
func (m *Manager) validate(req api.NetworkCreate) (api.Network, []ipam.Pool, error) {
	if err := api.ValidName(req.Name); err != nil {
		return api.Network{}, nil, invalid("%w", err)
	}
	n := api.Network{Name: req.Name, Driver: req.Driver, Internal: req.Internal,
		Created: time.Now().UTC().Format(time.RFC3339)}
	if n.Driver == "" {
		n.Driver = "macvlan"
	}
	opts, ok := knownOptions[n.Driver]
	if !ok {
		return n, nil, invalid("unknown driver %q: underlay has macvlan and ipvlan", req.Driver)
	}
	if err := m.applyOptions(&n, req.Options, opts); err != nil {
		return n, nil, err
	}
	switch req.Scope {
	case "", scopeLocal:
		n.Scope = scopeLocal
	case scopeGlobal:
		if m.global == nil {
			return n, nil, invalid("--scope global needs underlayd started with --store etcd://HOST:PORT (the cluster that shares the network)")
		}
		n.Scope = scopeGlobal
	default:
		return n, nil, invalid("--scope %q: want local or global", req.Scope)
	}
	for k := range req.Labels {
		if k == "" {
			return n, nil, invalid("--label %q: a label needs a name", k)
		}
		if strings.ContainsAny(k, "\n\x00") {
			return n, nil, invalid("--label %q: a label's name is one line", k)
		}
	}
	if len(req.Labels) > 0 {
		n.Labels = req.Labels
	}
	n.IPAMDriver = valueOr(req.IPAMDriver, defaultIPAM)
	if !slices.Contains(ipamDrivers, n.IPAMDriver) {
		return n, nil, invalid("unknown --ipam-driver %q: underlay has %s", req.IPAMDriver, strings.Join(ipamDrivers, ", "))
	}
	if n.Driver == "ipvlan" && n.Mode != "l2" && len(req.Gateways) > 0 {
		// As in Docker, the gateway is still the IPAM's: kept out of the
		// pool (it is the router's address on the LAN), just not routed.
		m.log.Info("gateway not routed: ipvlan l3/l3s containers route out of their own interface; the address is still never handed out",
			"network", n.Name, "gateways", strings.Join(req.Gateways, ","))
	}
	if n.Parent == "" {
		// No parent is the same as --internal: an isolated network.
		n.Internal = true
	}
	if n.IPAMDriver == dhcpIPAM {
		if err := checkDHCP(n, req); err != nil {
			return n, nil, err
		}
	} else {
		for _, o := range []string{"dhcp_timeout", "ipv6_mode"} {
			if _, ok := n.Options[o]; ok {
				return n, nil, invalid("-o %s is for networks with --ipam-driver dhcp", o)
			}
		}
	}
	var pools []ipam.Pool
	var err error
	if len(req.Subnets) == 0 && n.IPAMDriver == dhcpIPAM {
		// The lease says the subnet.
	} else if pools, err = m.buildPools(&n, &req); err != nil {
		return n, nil, err
	}
	if n.IPAMDriver == dhcpIPAM {
		// The addresses come from DHCPv6 or the router's advertisements.
		n.IPv6 = n.IPv6 || req.IPv6
	}
	if req.IPv6 && !n.IPv6 {
		return n, nil, invalid("--ipv6 needs an IPv6 --subnet (underlay does not invent IPv6 prefixes)")
	}
	if _, ok := n.Options["ipv6_mode"]; ok && !n.IPv6 {
		return n, nil, invalid("-o ipv6_mode is for networks with --ipv6")
	}
	if n.IPv6 && n.MTU > 0 && n.MTU < 1280 {
		// The kernel takes the link but refuses every IPv6 address on it.
		return n, nil, invalid("-o mtu=%d is below IPv6's minimum of 1280, and the network has IPv6", n.MTU)
	}
	if req.CNIConfDir != "" {
		if !filepath.IsAbs(req.CNIConfDir) {
			return n, nil, invalid("--cni-conf-dir %s: want an absolute path", req.CNIConfDir)
		}
		if fi, err := os.Stat(req.CNIConfDir); err != nil || !fi.IsDir() {
			return n, nil, invalid("--cni-conf-dir %s: not a directory (nerdctl's is /etc/cni/net.d)", req.CNIConfDir)
		}
		if n.Scope == scopeGlobal {
			return n, nil, invalid("--cni-conf-dir with --scope global: write each host's file with `underlay network cni-config NAME`")
		}
	}
	if len(req.HostAddresses) > 0 && len(pools) == 0 {
		return n, nil, invalid("--host-address needs a --subnet that holds it (with --ipam-driver dhcp too; keep the address out of the server's pool)")
	}
	if err := checkHostAddresses(&n, req.HostAddresses, pools); err != nil {
		return n, nil, err
	}
	if len(n.HostAddresses) > 0 {
		// The reservation is stored with the pools, as an aux address.
		n.Subnets = nil
		for _, p := range pools {
			n.Subnets = append(n.Subnets, subnetOf(p))
		}
	}
	id, err := newID()
	if err != nil {
		return n, nil, err
	}
	n.ID = id
	// A global network's parent is checked as this host has it: the
	// record keeps the one asked for, which --parent may name otherwise
	// here (ens3.30 for eth0.30).
	local := n
	if p, ok := m.parentOf[n.Name]; ok && n.Scope == scopeGlobal {
		local.Parent = p
	}
	if err := m.choosParent(&local); err != nil {
		return n, nil, err
	}
	if n.Parent == "" || n.Internal {
		n.Parent = local.Parent // a dummy's name is chosen here
	}
	return n, pools, nil
}

// checkDHCP applies the rules of --ipam-driver dhcp: the server decides
// the addresses, gateway and ranges, and it is reached on the LAN.
func checkDHCP(n api.Network, req api.NetworkCreate) error {
	switch {
	case n.Internal:
		return invalid("--ipam-driver dhcp needs -o parent=IF and no --internal: the DHCP server is on the parent's LAN")
	case n.Scope == scopeGlobal:
		return invalid("--ipam-driver dhcp networks are --scope local: the LAN's DHCP server already shares the addresses between hosts")
	case n.Driver == "ipvlan" && n.Mode != "l2":
		return invalid("--ipam-driver dhcp needs ipvlan_mode=l2: DHCP is broadcast, which ipvlan %s does not carry", n.Mode)
	case len(req.Gateways) > 0 || len(req.IPRanges) > 0 || len(req.Aux) > 0:
		return invalid("--gateway, --ip-range and --aux-address do not apply to --ipam-driver dhcp: the DHCP server decides them")
	}
	switch m := n.Options["ipv6_mode"]; m {
	case "", "dhcpv6", "slaac":
	default:
		return invalid("-o ipv6_mode=%s: want dhcpv6 (an address from the LAN's DHCPv6 server) or slaac (from its router advertisements)", m)
	}
	if _, err := parseDHCPTimeout(n.Options["dhcp_timeout"]); err != nil {
		return invalid("%w", err)
	}
	return nil
}

// buildPools builds the pools of req's subnets into n, choosing a subnet
// for an internal network that names none.
func (m *Manager) buildPools(n *api.Network, req *api.NetworkCreate) ([]ipam.Pool, error) {
	if len(req.Subnets) == 0 {
		if !n.Internal {
			return nil, invalid("at least one --subnet is required: underlay puts containers on an existing network, so give its subnet (or use --ipam-driver dhcp)")
		}
		// An isolated network reaches nothing outside, so any private
		// subnet will do: like Docker, take the first free 172.x.0.0/16.
		sub, err := m.defaultSubnet()
		if err != nil {
			return nil, err
		}
		req.Subnets = []string{sub}
	}
	pools, err := ipam.BuildPools(ipam.Spec{Subnets: req.Subnets, Gateways: req.Gateways,
		Ranges: req.IPRanges, Aux: req.Aux, NoGateway: n.IPAMDriver == dhcpIPAM})
	if err != nil {
		return nil, invalid("%w", err)
	}
	for _, p := range pools {
		n.Subnets = append(n.Subnets, subnetOf(p))
		if p.Subnet.Addr().Is6() {
			n.IPv6 = true
		}
	}
	return pools, nil
}

func (m *Manager) applyOptions(n *api.Network, opts map[string]string, known []string) error {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ok := false
		for _, kn := range known {
			ok = ok || k == kn
		}
		if !ok {
			return invalid("unknown option -o %s for driver %s (known: %s)", k, n.Driver, strings.Join(known, ", "))
		}
	}
	n.Options = opts
	n.Parent = opts["parent"]
	switch n.Driver {
	case "macvlan":
		n.Mode = valueOr(opts["macvlan_mode"], "bridge")
	case "ipvlan":
		n.Mode = valueOr(opts["ipvlan_mode"], "l2")
		n.Flag = valueOr(opts["ipvlan_flag"], "bridge")
	}
	if err := link.ValidMode(n.Driver, n.Mode, n.Flag); err != nil {
		return invalid("%w", err)
	}
	if v, ok := opts["dns"]; ok && v != "true" && v != "false" {
		return invalid("-o dns=%s: want true or false", v)
	}
	if v, ok := opts["mtu"]; ok {
		mtu, err := strconv.Atoi(v)
		if err != nil || mtu < 68 || mtu > 65535 {
			return invalid("-o mtu=%s: want a number from 68 to 65535", v)
		}
		n.MTU = mtu
	}
	return nil
}

// choosParent settles the parent's name and checks it against the kernel:
// an existing link, a NAME.VID sub-interface to create, or a dummy for an
// internal network.
func (m *Manager) choosParent(n *api.Network) error {
	if n.Parent == "" || n.Internal {
		prefix := "dm-"
		if n.Driver == "ipvlan" {
			prefix = "di-"
		}
		n.Parent = prefix + n.ID[:12]
		return nil
	}
	if err := link.ValidIfName(n.Parent); err != nil {
		return invalid("-o parent=%s: %w", n.Parent, err)
	}
	if n.Parent == "lo" {
		return invalid("-o parent=lo: the loopback interface cannot be a parent")
	}
	in, err := m.kernel.Lookup(n.Parent)
	switch {
	case err == nil:
		if in.Kind == "macvlan" || in.Kind == "ipvlan" {
			return invalid("-o parent=%s: a %s cannot be the parent of another", n.Parent, in.Kind)
		}
		if n.MTU > in.MTU {
			return invalid("-o mtu=%d is larger than the MTU %d of parent %s", n.MTU, in.MTU, n.Parent)
		}
		return nil
	case errors.Is(err, link.ErrNotFound):
		base, vid, ok := splitVLAN(n.Parent)
		if !ok {
			return noParent("parent interface %s does not exist", n.Parent)
		}
		if vid < 1 || vid > 4094 {
			return invalid("-o parent=%s: VLAN id %d is outside 1-4094", n.Parent, vid)
		}
		bin, err := m.kernel.Lookup(base)
		if err != nil {
			return noParent("-o parent=%s: VLAN base interface %s does not exist", n.Parent, base)
		}
		if n.MTU > bin.MTU {
			return invalid("-o mtu=%d is larger than the MTU %d of %s", n.MTU, bin.MTU, base)
		}
		return nil
	default:
		return err
	}
}

// splitVLAN parses NAME.VID.
func splitVLAN(name string) (string, int, bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false
	}
	vid, err := strconv.Atoi(name[i+1:])
	if err != nil || strings.HasPrefix(name[i+1:], "+") {
		return "", 0, false
	}
	return name[:i], vid, true
}

// checkParentRules applies the kernel's rules for sharing a parent up front,
// so users get a sentence instead of EBUSY at the first container.
func (m *Manager) checkParentRules(n api.Network, pools []ipam.Pool) error {
	return parentRules(n, pools, m.known())
}

// parentRules checks network n, of pools, against the networks others on
// the parents they have here.
func parentRules(n api.Network, pools []ipam.Pool, others []api.Network) error {
	for _, o := range others {
		if o.Parent != n.Parent {
			continue
		}
		switch {
		case o.Driver != n.Driver:
			return invalid("parent %s already carries %s network %s; a parent takes one driver type", n.Parent, o.Driver, o.Name)
		case n.Driver == "ipvlan":
			return invalid("parent %s already carries ipvlan network %s; the ipvlan mode belongs to the parent, so one ipvlan network per parent", n.Parent, o.Name)
		case n.Mode == "passthru" || o.Mode == "passthru":
			return invalid("parent %s already carries network %s; macvlan passthru needs the parent to itself", n.Parent, o.Name)
		}
		op, err := poolsOf(o)
		if err != nil {
			return err
		}
		if a, b, ok := ipam.Overlaps(pools, op); ok {
			return invalid("subnet %s overlaps %s of network %s on the same parent %s", a, b, o.Name, n.Parent)
		}
	}
	return nil
}

// Remove deletes a network that has no endpoints, and the parent underlayd
// created for it when nothing else uses that parent.
func (m *Manager) Remove(name string) error {
	if err := api.ValidName(name); err != nil {
		return invalid("%w", err)
	}
	// Interfaces still being deleted after a detach keep their parent
	// busy; a network removed (and perhaps made again with the other
	// driver) must find it free.
	m.Wait()
	m.createMu.Lock()
	defer m.createMu.Unlock()
	st, err := m.network(name)
	if err != nil && m.global != nil {
		if lerr := m.loadGlobal(); lerr != nil {
			return lerr
		}
		st, err = m.network(name)
	}
	if err != nil {
		// A global network whose removal stopped half-way goes by its
		// name alone (the store hides it); only then is name an ID.
		if ferr := m.finishRemove(name, err); !errors.Is(ferr, ErrNotFound) {
			return ferr
		}
		if st, err = m.byID(name); err != nil {
			return err
		}
		name = st.net.Name
	}
	st.mu.Lock()
	if len(st.eps) > 0 {
		eps := st.all()
		st.mu.Unlock()
		var names []string
		for _, ep := range eps {
			names = append(names, ep.Container()+" ("+ep.IfName+")")
		}
		where := ""
		if st.net.Scope == scopeGlobal {
			// Other hosts' are counted by the shared store, once these go.
			where = " on this host"
		}
		return fmt.Errorf("network %s has %d attached endpoint(s)%s: %s; stop those containers first: %w",
			name, len(eps), where, strings.Join(names, ", "), ErrInUse)
	}
	if st.pending > 0 {
		n := st.pending
		st.mu.Unlock()
		return fmt.Errorf("network %s has %d container(s) attaching right now; try again when they have started: %w", name, n, ErrInUse)
	}
	if st.net.Scope == scopeGlobal {
		// Refused while another host has endpoints on it.
		if err := m.global.RemoveNetwork(name, st.rec); err != nil {
			st.mu.Unlock()
			return err
		}
	}
	if err := m.store.DeleteNetwork(name); err != nil {
		st.mu.Unlock()
		return err
	}
	st.removed = true
	st.mu.Unlock()
	m.mu.Lock()
	delete(m.nets, name)
	m.mu.Unlock()
	if f := st.net.CNIConf; f != "" {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("CNI conflist not removed", "network", name, "file", f, "err", err)
		}
	}
	if len(st.net.HostAddresses) > 0 {
		if err := m.shims.DeleteShim(shimName(st.net)); err != nil {
			m.log.Warn("host shim not removed", "network", name, "shim", shimName(st.net), "err", err)
		}
	}
	m.releaseParent(st.net.Parent)
	m.log.Info("network removed", "network", name)
	m.emit(api.Event{Type: api.EventNetworkRemove, Network: name})
	return nil
}

func subnetOf(p ipam.Pool) api.Subnet {
	s := api.Subnet{Subnet: p.Subnet.String()}
	if p.Gateway.IsValid() {
		s.Gateway = p.Gateway.String()
	}
	if p.Range.IsValid() {
		s.IPRange = p.Range.String()
	}
	if len(p.Aux) > 0 {
		s.Aux = map[string]string{}
		for k, v := range p.Aux {
			s.Aux[k] = v.String()
		}
	}
	return s
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func newID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// defaultSubnet is the first of 172.18.0.0/16 ... 172.31.0.0/16 that no
// network uses.
func (m *Manager) defaultSubnet() (string, error) {
	used := m.known()
	for b := 18; b <= 31; b++ {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(b), 0, 0}), 16)
		free := true
		for _, n := range used {
			for _, s := range n.Subnets {
				if p, err := netip.ParsePrefix(s.Subnet); err == nil && p.Overlaps(cand) {
					free = false
				}
			}
		}
		if free {
			return cand.String(), nil
		}
	}
	return "", invalid("no --subnet given and 172.18.0.0/16 to 172.31.0.0/16 are all in use: give a --subnet")
}

// gatewayFor returns the gateway of the pool holding addr, if any.
func gatewayFor(pools []ipam.Pool, addr netip.Addr) (netip.Addr, bool) {
	for _, p := range pools {
		if p.Subnet.Contains(addr) && p.Gateway.IsValid() {
			return p.Gateway, true
		}
	}
	return netip.Addr{}, false
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so a runtime that reads the conf dir never sees half a file.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
