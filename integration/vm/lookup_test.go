//go:build linux

package vm

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/underlay/underlay/daemon/link"
)

// An attach looks its parent up by what it needs of it (LookupParent's
// ioctls): a VLAN parent's index, MTU, MAC and state, as Lookup (network
// inspect, create's checks) reads them over netlink, without the kind,
// the VLAN id or the base.
func TestVMLookupParentVLAN(t *testing.T) {
	requireVM(t)
	const base, name = "ulvl0", "ulvl0.30"
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = base, 9000
	if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: attrs}); err != nil {
		t.Fatalf("create base %s: %v", base, err)
	}
	t.Cleanup(func() { _ = link.Delete(base) })
	if err := netlink.LinkSetUp(&netlink.Dummy{LinkAttrs: attrs}); err != nil {
		t.Fatalf("bring base %s up: %v", base, err)
	}
	if err := link.CreateVLAN(base, 30, name); err != nil {
		t.Fatal(err)
	}
	full, err := link.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if full.VLAN != 30 || full.Base != base || full.MTU != 9000 || full.Index == 0 {
		t.Errorf("Lookup(%s) = %+v, want VLAN 30 on %s, MTU 9000", name, full, base)
	}
	p, err := link.LookupParent(name)
	if err != nil {
		t.Fatal(err)
	}
	want := link.Info{Name: name, Index: full.Index, MTU: 9000, Up: true, MAC: full.MAC}
	if p.Name != want.Name || p.Index != want.Index || p.MTU != want.MTU || p.Up != want.Up || p.MAC.String() != want.MAC.String() ||
		p.Kind != "" || p.VLAN != 0 || p.Base != "" {
		t.Errorf("LookupParent(%s) = %+v, want %+v (Lookup's index, MTU, state and MAC)", name, p, want)
	}
	if _, err := link.LookupParent("ulvl0.31"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("LookupParent of a missing VLAN: want ErrNotFound, got %v", err)
	}
}
