//go:build linux

package vm

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireVM skips the test unless it runs inside the test VM (run.sh sets
// UNDERLAY_VM=1 there).
func requireVM(t testing.TB) {
	t.Helper()
	if os.Getenv("UNDERLAY_VM") != "1" {
		t.Skip("VM-only test: run make test-vm")
	}
}

// newNetns creates a throwaway named network namespace (ulvm-<random>) and a
// netlink handle inside it; both are removed by t.Cleanup, which also
// destroys every link created in it.
func newNetns(t *testing.T) *netlink.Handle {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "ulvm-" + hex.EncodeToString(b[:])

	// netns.NewNamed moves the calling thread into the new namespace: do it
	// on a locked thread and move back before unlocking.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread is in the wrong namespace: never unlock it, so the
		// Go runtime throws it away when the goroutine exits.
		runtime.LockOSThread()
		t.Fatalf("return to original netns: %v", err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})

	// Only NETLINK_ROUTE: the default family list also opens XFRM and
	// netfilter sockets, which this kernel may not have loaded.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	return h
}

func linkAdd(t *testing.T, h *netlink.Handle, l netlink.Link) netlink.Link {
	t.Helper()
	if err := h.LinkAdd(l); err != nil {
		t.Fatalf("add %s %q: %v", l.Type(), l.Attrs().Name, err)
	}
	return linkGet(t, h, l.Attrs().Name, l.Type())
}

// linkGet reads a link back by name and checks its kind.
func linkGet(t *testing.T, h *netlink.Handle, name, kind string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("read back %q: %v", name, err)
	}
	if l.Type() != kind {
		t.Fatalf("%q: type %q, want %q", name, l.Type(), kind)
	}
	return l
}

func linkUp(t *testing.T, h *netlink.Handle, l netlink.Link) {
	t.Helper()
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("set %q up: %v", l.Attrs().Name, err)
	}
	got := linkGet(t, h, l.Attrs().Name, l.Type())
	if got.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("%q: not up after LinkSetUp (flags %v)", l.Attrs().Name, got.Attrs().Flags)
	}
}

// TestVMKernelLinkTypes checks that the VM kernel provides every link type
// underlay uses, by creating each one in a throwaway netns and reading it
// back.
func TestVMKernelLinkTypes(t *testing.T) {
	requireVM(t)
	h := newNetns(t)

	// veth pair
	veth0 := linkAdd(t, h, &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: "ulvm-veth0"},
		PeerName:  "ulvm-veth1",
	})
	veth1 := linkGet(t, h, "ulvm-veth1", "veth")
	if p := veth0.Attrs().ParentIndex; p != veth1.Attrs().Index {
		t.Errorf("ulvm-veth0: peer index %d, want %d (ulvm-veth1)", p, veth1.Attrs().Index)
	}
	linkUp(t, h, veth0)
	linkUp(t, h, veth1)

	// dummy
	dummy := linkAdd(t, h, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "ulvm-dummy0"}})
	linkUp(t, h, dummy)

	// 802.1q VLAN 10 on the veth
	l := linkAdd(t, h, &netlink.Vlan{
		LinkAttrs:    netlink.LinkAttrs{Name: "ulvm-veth0.10", ParentIndex: veth0.Attrs().Index},
		VlanId:       10,
		VlanProtocol: netlink.VLAN_PROTOCOL_8021Q,
	})
	vlan := l.(*netlink.Vlan)
	if vlan.VlanId != 10 {
		t.Errorf("vlan: id %d, want 10", vlan.VlanId)
	}
	if vlan.VlanProtocol != netlink.VLAN_PROTOCOL_8021Q {
		t.Errorf("vlan: protocol %v, want 802.1Q", vlan.VlanProtocol)
	}
	if vlan.ParentIndex != veth0.Attrs().Index {
		t.Errorf("vlan: parent %d, want %d", vlan.ParentIndex, veth0.Attrs().Index)
	}
	linkUp(t, h, vlan)

	// ipvlan: the mode belongs to the parent (all ipvlans on one parent
	// share it), so l2 and l3 get different parents.
	for _, tc := range []struct {
		name   string
		parent netlink.Link
		mode   netlink.IPVlanMode
	}{
		{"ulvm-ipvl2", dummy, netlink.IPVLAN_MODE_L2},
		{"ulvm-ipvl3", veth1, netlink.IPVLAN_MODE_L3},
	} {
		l := linkAdd(t, h, &netlink.IPVlan{
			LinkAttrs: netlink.LinkAttrs{Name: tc.name, ParentIndex: tc.parent.Attrs().Index},
			Mode:      tc.mode,
		})
		ipv := l.(*netlink.IPVlan)
		if ipv.Mode != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.name, ipv.Mode, tc.mode)
		}
		if ipv.ParentIndex != tc.parent.Attrs().Index {
			t.Errorf("%s: parent %d, want %d", tc.name, ipv.ParentIndex, tc.parent.Attrs().Index)
		}
		linkUp(t, h, ipv)
	}

	// macvlan (bridge mode) on the veth that also carries the VLAN
	l = linkAdd(t, h, &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: "ulvm-macvl0", ParentIndex: veth0.Attrs().Index},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	})
	mv := l.(*netlink.Macvlan)
	if mv.Mode != netlink.MACVLAN_MODE_BRIDGE {
		t.Errorf("macvlan: mode %v, want bridge", mv.Mode)
	}
	if mv.ParentIndex != veth0.Attrs().Index {
		t.Errorf("macvlan: parent %d, want %d", mv.ParentIndex, veth0.Attrs().Index)
	}
	linkUp(t, h, mv)

	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		t.Logf("link %d %s type=%s parent=%d", l.Attrs().Index, l.Attrs().Name, l.Type(), l.Attrs().ParentIndex)
	}
}
