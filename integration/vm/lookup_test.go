//go:build linux

package vm

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/underlay/underlay/daemon/link"
)

// An attach looks its parent up with one request: a VLAN parent's index,
// MTU and VLAN id, without its base's name, which Lookup (network
// inspect, create's checks) finds with a second request.
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
	if p.VLAN != 30 || p.Base != "" || p.MTU != 9000 || p.Index != full.Index || p.Kind != full.Kind {
		t.Errorf("LookupParent(%s) = %+v, want Lookup's %+v without the base", name, p, full)
	}
	if _, err := link.LookupParent("ulvl0.31"); err == nil {
		t.Error("LookupParent of a missing VLAN: no error")
	}
}
