package link

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Slave describes a container interface to create on a parent.
type Slave struct {
	Kind        string // "macvlan" or "ipvlan"
	Mode        string // macvlan: bridge|private|vepa|passthru; ipvlan: l2|l3|l3s
	Flag        string // ipvlan: bridge|private|vepa
	ParentIndex int
	Name        string           // final name inside the container, ethN
	TempName    string           // name before the rename; NewTempName()
	MAC         net.HardwareAddr // macvlan only; nil lets the kernel pick
	MTU         int
	Addrs       []netip.Prefix
	// Gateways get a default route each (one per family at most). With
	// DevRoutes the default routes go straight out of the device instead
	// (ipvlan l3/l3s).
	Gateways  []netip.Addr
	DevRoutes bool
	// DevRouteFamilies are the families (4, 6) that get `default dev`.
	DevRouteFamilies []int
	// DisableIPv6 turns IPv6 off on the interface (a network without an
	// IPv6 subnet), so that the LAN's router advertisements give it none.
	DisableIPv6 bool
	// IPv6Mode is "dhcpv6" or "slaac" on a DHCP network with IPv6: the
	// interface takes router advertisements (and, for slaac, an address
	// from them).
	IPv6Mode string
	// Addressed, if set, is called once the interface exists, before its
	// addresses are added: it fills in Addrs and the routes (Gateways,
	// DevRouteFamilies) of an address decided meanwhile. Its error undoes
	// the create. Only a macvlan may leave its addresses to it: an ipvlan
	// must be made with them (see CreateSlave).
	Addressed func(*Slave) error
	// Index is the ifindex to ask for in the container (0: the kernel's
	// choice). Knowing it spares a lookup after the create; one that is
	// taken falls back to the kernel's choice.
	Index int
	// Steps, if set, is told the wall time of each kernel step.
	Steps func(step string, d time.Duration)
	// Announce, if set, is handed the gratuitous ARPs of the interface's
	// IPv4 addresses once it is up with its routes, to send off the
	// attach's path (announce.go). Without it they are not announced; an
	// interface without ARP (ipvlan l3, l3s) should not ask. A failed
	// CreateSlave hands over nothing.
	Announce func(*Announcement)
	// Unrouted, if set, is told each family whose default route the
	// interface did not add because the namespace already has one (another
	// network's, or another CNI plugin's in a Multus pod): like Docker, the
	// first default route stays. Without it, that is an error.
	Unrouted func(family int)
}

var macvlanModes = map[string]netlink.MacvlanMode{
	"bridge": netlink.MACVLAN_MODE_BRIDGE, "private": netlink.MACVLAN_MODE_PRIVATE,
	"vepa": netlink.MACVLAN_MODE_VEPA, "passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

var ipvlanModes = map[string]netlink.IPVlanMode{
	"l2": netlink.IPVLAN_MODE_L2, "l3": netlink.IPVLAN_MODE_L3, "l3s": netlink.IPVLAN_MODE_L3S,
}

var ipvlanFlags = map[string]netlink.IPVlanFlag{
	"": netlink.IPVLAN_FLAG_BRIDGE, "bridge": netlink.IPVLAN_FLAG_BRIDGE,
	"private": netlink.IPVLAN_FLAG_PRIVATE, "vepa": netlink.IPVLAN_FLAG_VEPA,
}

// ValidMode reports whether mode (and flag) is known for the driver.
func ValidMode(kind, mode, flag string) error {
	switch kind {
	case "macvlan":
		if _, ok := macvlanModes[mode]; !ok {
			return fmt.Errorf("unknown macvlan_mode %q (bridge, private, vepa, passthru)", mode)
		}
	case "ipvlan":
		if _, ok := ipvlanModes[mode]; !ok {
			return fmt.Errorf("unknown ipvlan_mode %q (l2, l3, l3s)", mode)
		}
		if _, ok := ipvlanFlags[flag]; !ok {
			return fmt.Errorf("unknown ipvlan_flag %q (bridge, private, vepa)", flag)
		}
	default:
		return fmt.Errorf("unknown driver %q (macvlan, ipvlan)", kind)
	}
	return nil
}

// CreateSlave creates the interface directly inside ns, gives it its
// addresses and brings it up with its routes. On any failure it deletes
// what it created, so the namespace is left as found.
//
// After a crash, what tells an interface of underlayd's apart from another
// one of the same name is its MAC and its addresses (DeleteSlaveMatching).
// A macvlan has a MAC of its own, so it is made under its final name. An
// ipvlan shares its parent's MAC: it is made under a temporary name and
// renamed only once it has its addresses, so that an ethN ipvlan of
// underlayd's always carries them. A macvlan takes that path too where the
// kernel refuses the final name: kernels that look a new link's name and
// index up in the caller's namespace (not the container's) find the
// host's own eth0.
func CreateSlave(ns *Netns, s Slave) (err error) {
	if s.Kind != "macvlan" && s.Kind != "ipvlan" {
		return fmt.Errorf("unknown driver %q", s.Kind)
	}
	tmp := s.TempName
	if tmp == "" {
		if tmp, err = NewTempName(); err != nil {
			return err
		}
	}
	t := NewStepTimer(s.Steps)
	// One visit to the container's namespace opens the netlink socket
	// there, has the interface made with IPv6 off if it must have none,
	// and writes its sysctls, before it comes up. The create itself goes
	// through a socket of underlayd's namespace, from the visiting thread:
	// the kept one, or one opened now, before the visit.
	host, release, err := hostSocket()
	if err != nil {
		return err
	}
	defer release()
	// Creates into one namespace take turns: the default an interface
	// copies its IPv6 state from is changed for the length of one.
	lock := &nsCreate[ns.Inode%uint64(len(nsCreate))]
	lock.Lock()
	var h *netlink.Handle
	var name string
	var index int
	var refused []createTry
	var ann *Announcement
	made := false
	err = ns.Do(func() error {
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("netlink in container namespace: %w", err)
		}
		err = withIPv6Off(s.DisableIPv6, s.Name, func() error {
			t.Step("socket + ipv6 off")
			var err error
			name, index, refused, err = createTried(host, ns, s, tmp, &t)
			made = err == nil
			return err
		})
		if err != nil {
			return err
		}
		t.Step("create")
		if s.Announce != nil && (s.Addressed != nil || hasIPv4(s.Addrs)) {
			if ann, err = announcement(); err != nil {
				return err
			}
		}
		return writeDevConf(name, devConfFor(s))
	})
	lock.Unlock()
	if err != nil {
		if ann != nil {
			go ann.Close()
		}
		if made {
			_ = h.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name}})
		}
		if h != nil {
			h.Close()
		}
		return err
	}
	defer h.Close()
	t.Step("sysctl")
	var created netlink.Link = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name}}
	if index == 0 {
		if created, err = h.LinkByName(name); err != nil {
			return fmt.Errorf("find new %s %s in container: %w", s.Kind, name, err)
		}
		t.Step("look up")
	}
	defer func() {
		if err != nil {
			_ = h.LinkDel(created)
			if ann != nil {
				go ann.Close()
			}
			return
		}
		learnRefusals(refused, s.Name, created.Attrs().Index)
		if ann != nil {
			ann.name, ann.index, ann.addrs = s.Name, created.Attrs().Index, ipv4Of(s.Addrs)
			if len(ann.addrs) == 0 { // the addresses decided meanwhile were IPv6 only
				go ann.Close()
			} else {
				s.Announce(ann)
			}
		}
	}()
	if s.Addressed != nil {
		if err := s.Addressed(&s); err != nil {
			return err
		}
		t.Step("wait address")
	}
	for _, p := range s.Addrs {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			// A static address on a network the operator planned: waiting
			// a second or more for DAD only delays the container.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(created, a); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p, s.Name, err)
		}
	}
	t.Step("address")
	if name != s.Name {
		if err := h.LinkSetName(created, s.Name); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("rename to %s: the container already has an interface %s", s.Name, s.Name)
			}
			return fmt.Errorf("rename %s to %s: %w", name, s.Name, err)
		}
		t.Step("rename")
	}
	if err := h.LinkSetUp(created); err != nil {
		return fmt.Errorf("bring %s up: %w", s.Name, err)
	}
	t.Step("up")
	if err := addDefaultRoutes(h, created, s); err != nil {
		return err
	}
	t.Step("route")
	return nil
}

// createTried creates s through host, inside ns, under the first of its
// tries (createTries) the kernel accepts, and returns the name and index
// it asked for and the tries refused before.
func createTried(host *netlink.Handle, ns *Netns, s Slave, tmp string, t *StepTimer) (name string, index int, refused []createTry, err error) {
	tries := createTries(s, tmp)
	for i, try := range tries {
		name, index = try.name, try.index
		err = host.LinkAdd(slaveLink(s, name, index, ns))
		if err == nil || i == len(tries)-1 || !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.EBUSY) {
			break
		}
		refused = append(refused, try)
		t.Step("create refused")
	}
	if err != nil {
		return name, index, refused, fmt.Errorf("create %s on parent: %w", s.Kind, createErr(s.Kind, err))
	}
	return name, index, refused, nil
}

func hasIPv4(ps []netip.Prefix) bool { return len(ipv4Of(ps)) > 0 }

func ipv4Of(ps []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, p := range ps {
		if p.Addr().Is4() {
			out = append(out, p.Addr())
		}
	}
	return out
}

// nsCreate are the locks that make creates into one namespace take turns,
// picked by the namespace's inode: two namespaces may share one, which
// costs them no more than waiting for each other's create.
var nsCreate [64]sync.Mutex

// createTry is a name and an ifindex (0: the kernel's) to create a slave
// under.
type createTry struct {
	name  string
	index int
}

// createTries lists what to ask for, best first: the final name (a macvlan
// only) with the index hint, then with the kernel's index, then the
// temporary name. A taken name or index is refused with EEXIST (or EBUSY:
// the index, in the container) before anything is made, and the next try
// follows.
func createTries(s Slave, tmp string) []createTry {
	var tries []createTry
	index := s.Index
	if _, ok := hostHas.indexes.Load(index); ok {
		index = 0
	}
	_, hostName := hostHas.names.Load(s.Name)
	if s.Kind == "macvlan" && len(s.MAC) > 0 && !hostName {
		if index != 0 {
			tries = append(tries, createTry{s.Name, index})
		}
		tries = append(tries, createTry{s.Name, 0})
	} else if index != 0 {
		tries = append(tries, createTry{tmp, index})
	}
	return append(tries, createTry{tmp, 0})
}

// hostHas holds the names and ifindexes that a kernel refused for a new
// link although the container turned out to have neither: kernels that
// look them up in underlayd's own namespace (Debian 12's 6.1) refuse what
// the host has. Later creates skip those tries; the temporary name, with
// the kernel's index, always remains.
var hostHas struct{ names, indexes sync.Map }

// learnRefusals records in hostHas what the refused tries of a create
// asked for that the container did not have: the interface now has the
// final name, and index is the one it got.
func learnRefusals(refused []createTry, final string, index int) {
	for _, r := range refused {
		switch {
		case r.index != 0 && r.index == index:
			hostHas.indexes.Store(r.index, true)
		case r.index == 0 && r.name == final:
			hostHas.names.Store(final, true)
		}
	}
}

// slaveLink is the link to create: s under name, with ifindex index (0:
// the kernel's choice), inside ns.
func slaveLink(s Slave, name string, index int, ns *Netns) netlink.Link {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.Index = index
	attrs.ParentIndex = s.ParentIndex
	attrs.MTU = s.MTU
	attrs.Namespace = netlink.NsFd(ns.Fd())
	if s.Kind == "ipvlan" {
		return &netlink.IPVlan{LinkAttrs: attrs, Mode: ipvlanModes[s.Mode], Flag: ipvlanFlags[s.Flag]}
	}
	attrs.HardwareAddr = s.MAC
	return &netlink.Macvlan{LinkAttrs: attrs, Mode: macvlanModes[s.Mode]}
}

func addDefaultRoutes(h *netlink.Handle, l netlink.Link, s Slave) error {
	idx := l.Attrs().Index
	if s.DevRoutes {
		for _, fam := range s.DevRouteFamilies {
			r := &netlink.Route{LinkIndex: idx, Dst: defaultDst(fam), Scope: netlink.SCOPE_LINK}
			if err := addDefaultRoute(h, r, s, fam); err != nil {
				return fmt.Errorf("add default route dev %s: %w", s.Name, err)
			}
		}
		return nil
	}
	for _, gw := range s.Gateways {
		fam := 4
		if gw.Is6() {
			fam = 6
		}
		r := &netlink.Route{LinkIndex: idx, Dst: defaultDst(fam), Gw: gw.AsSlice()}
		if err := addDefaultRoute(h, r, s, fam); err != nil {
			return fmt.Errorf("add default route via %s dev %s: %w", gw, s.Name, err)
		}
	}
	return nil
}

// addDefaultRoute adds r, or leaves the namespace's own default route of
// the family if it has one and s.Unrouted takes that.
func addDefaultRoute(h *netlink.Handle, r *netlink.Route, s Slave, fam int) error {
	err := h.RouteAdd(r)
	if errors.Is(err, unix.EEXIST) && s.Unrouted != nil {
		s.Unrouted(fam)
		return nil
	}
	return err
}

// DeleteSlave removes the named interfaces from ns, through one netlink
// handle. A missing interface is success: detach is idempotent.
func DeleteSlave(ns *Netns, names ...string) error {
	h, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, name := range names {
		if name == "" {
			continue
		}
		if err := deleteNamed(h.LinkByName, h.LinkDel, name, " in container"); err != nil {
			return err
		}
	}
	return nil
}

func createErr(kind string, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("parent is busy (another driver or a passthru slave owns it): %w", err)
	case errors.Is(err, unix.EADDRINUSE) || errors.Is(err, unix.ENOTUNIQ):
		return fmt.Errorf("MAC address already used on this parent: %w", err)
	}
	return kernelErr(kind, err)
}

// NewTempName returns a random interface name for a slave before its
// rename; the caller records it so an interrupted attach can be undone.
func NewTempName() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "ul" + hex.EncodeToString(b), nil
}

// RandomMAC returns a locally administered unicast MAC.
func RandomMAC() (net.HardwareAddr, error) {
	m := make(net.HardwareAddr, 6)
	if _, err := rand.Read(m); err != nil {
		return nil, err
	}
	m[0] = m[0]&^0x01 | 0x02
	return m, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

func defaultDst(fam int) *net.IPNet {
	if fam == 6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// DeleteSlaveMatching removes the interface name from ns only if it is the
// one an attach made: its MAC is mac and it carries one of addrs (CIDR
// strings; none given, the MAC alone decides) or, stripped by a detach
// that was cut short, no address but link-local ones. Undoing an attach or a
// detach after a crash must not take an interface of the same name that
// someone else made, and ipvlan slaves all share their parent's MAC.
func DeleteSlaveMatching(ns *Netns, name, mac string, addrs []string) error {
	h, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	byName := func(name string) (netlink.Link, error) {
		l, err := h.LinkByName(name)
		if err == nil && (l.Attrs().HardwareAddr.String() != mac || !hasAnyAddr(h, l, addrs)) {
			return nil, netlink.LinkNotFoundError{}
		}
		return l, err
	}
	return deleteNamed(byName, h.LinkDel, name, " in container")
}

func hasAnyAddr(h *netlink.Handle, l netlink.Link, addrs []string) bool {
	if len(addrs) == 0 {
		return true
	}
	have, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	stripped := true
	for _, a := range have {
		for _, want := range addrs {
			if a.IPNet.String() == want {
				return true
			}
		}
		if !a.IP.IsLinkLocalUnicast() {
			stripped = false
		}
	}
	return stripped
}

// Strip removes every address of the interface name in ns and reports
// whether it found the interface. Without addresses it holds nothing the
// next container needs (ipvlan refuses an address that any slave of the
// parent has, up or down), so deleting it can wait: taking an interface
// down or deleting it makes the kernel wait for an RCU grace period, 10-20
// ms here. Until then it keeps its name and its MAC.
func Strip(ns *Netns, name string) (bool, error) {
	h, err := handleAt(ns)
	if err != nil {
		return false, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s in container: %w", name, err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return true, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	for i := range addrs {
		if err := h.AddrDel(l, &addrs[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return true, fmt.Errorf("remove address %s from %s: %w", addrs[i].IPNet, name, err)
		}
	}
	return true, nil
}

// HasSlave fails, saying what is wrong, unless ns has an interface name
// that is up and holds every one of addrs (CIDR strings): a CNI CHECK.
func HasSlave(ns *Netns, name string, addrs []string) error {
	h, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("interface %s is missing from the container: %w", name, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("interface %s is down", name)
	}
	have, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, want := range addrs {
		found := false
		for _, a := range have {
			found = found || a.IPNet.String() == want
		}
		if !found {
			return fmt.Errorf("interface %s lacks its address %s", name, want)
		}
	}
	return nil
}
