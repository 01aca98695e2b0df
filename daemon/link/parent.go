package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CreateVLAN creates the 802.1q sub-interface name (VID vid) on base and
// brings it up. An existing link of that name is an error: the caller
// decides what it owns before calling.
func CreateVLAN(base string, vid int, name string) error {
	b, err := Lookup(base)
	if err != nil {
		return fmt.Errorf("vlan base %w", err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.ParentIndex = b.Index
	v := &netlink.Vlan{LinkAttrs: attrs, VlanId: vid, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("create vlan %s on %s: %w", name, base, kernelErr("vlan", err))
	}
	if err := netlink.LinkSetUp(v); err != nil {
		_ = netlink.LinkDel(v)
		return fmt.Errorf("bring vlan %s up: %w", name, err)
	}
	return nil
}

// CreateDummy creates a dummy link (the parent of an internal network) and
// brings it up.
func CreateDummy(name string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	d := &netlink.Dummy{LinkAttrs: attrs}
	if err := netlink.LinkAdd(d); err != nil {
		return fmt.Errorf("create dummy %s: %w", name, kernelErr("dummy", err))
	}
	if err := netlink.LinkSetUp(d); err != nil {
		_ = netlink.LinkDel(d)
		return fmt.Errorf("bring dummy %s up: %w", name, err)
	}
	return nil
}

// Delete removes a host link; a missing one is success.
func Delete(name string) error {
	return deleteNamed(netlink.LinkByName, netlink.LinkDel, name, "")
}

// deleteNamed deletes the link called name through byName and del (the
// host's netlink or a handle in a container); a missing link is success.
func deleteNamed(byName func(string) (netlink.Link, error), del func(netlink.Link) error, name, where string) error {
	l, err := byName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look up %s%s: %w", name, where, err)
	}
	if err := del(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s%s: %w", name, where, err)
	}
	return nil
}

// Supported reports, for each link type underlay uses, whether this kernel
// can create it. Each probe sends a request the type's own validation must
// refuse (no parent, or a malformed address), so nothing is created: a known
// type answers EINVAL, a missing one EOPNOTSUPP.
func Supported() map[string]error {
	out := map[string]error{}
	for _, kind := range []string{"macvlan", "ipvlan", "vlan", "dummy"} {
		out[kind] = Probe(kind)
	}
	return out
}

// Probe reports whether this kernel can create links of kind, without
// creating one.
func Probe(kind string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "ulprobe0"
	// Slave kinds get a parent index that cannot exist: a kernel with the
	// type answers ENODEV, one without it EOPNOTSUPP. Dummy gets a
	// malformed MAC: EINVAL with the type, EOPNOTSUPP without.
	attrs.ParentIndex = 1 << 30
	var l netlink.Link
	switch kind {
	case "dummy":
		attrs.ParentIndex = 0
		attrs.HardwareAddr = []byte{2, 0, 0}
		l = &netlink.Dummy{LinkAttrs: attrs}
	case "macvlan":
		l = &netlink.Macvlan{LinkAttrs: attrs}
	case "ipvlan":
		l = &netlink.IPVlan{LinkAttrs: attrs}
	case "vlan":
		l = &netlink.Vlan{LinkAttrs: attrs, VlanId: 4094}
	default:
		return fmt.Errorf("unknown link type %s", kind)
	}
	err := netlink.LinkAdd(l)
	var errno unix.Errno
	switch {
	case err == nil:
		// Should not happen; leave nothing behind if it does.
		_ = netlink.LinkDel(l)
		return nil
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EAFNOSUPPORT):
		return kernelErr(kind, err)
	case errors.As(err, &errno):
		return nil
	}
	return fmt.Errorf("probe %s: %w", kind, err)
}
