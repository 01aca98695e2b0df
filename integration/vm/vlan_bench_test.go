//go:build linux

package vm

import (
	"fmt"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/underlay/underlay/daemon/link"
)

// vlanParents is how many 802.1q parents the VM stage of make bench makes.
const vlanParents = 1000

// BenchmarkVMVLANParents is the VM stage of make bench: it creates 1,000
// 802.1q sub-interfaces of one base, then removes them, through underlay's
// own link package (what underlayd does when a network's NAME.VID parent
// is missing, and when its last endpoint leaves). It runs in the test VM
// (this host's kernel has no 802.1q) and reports milliseconds per parent.
// The VM is emulated (TCG, no KVM), so absolute times are slower than on
// hardware; it checks, outside the timing, that every parent was there and
// that none is left.
func BenchmarkVMVLANParents(b *testing.B) {
	requireVM(b)
	const base = "ulvb0"
	attrs := netlink.NewLinkAttrs()
	attrs.Name = base
	if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: attrs}); err != nil {
		b.Fatalf("create base %s: %v", base, err)
	}
	b.Cleanup(func() { _ = link.Delete(base) })
	if err := netlink.LinkSetUp(&netlink.Dummy{LinkAttrs: attrs}); err != nil {
		b.Fatalf("bring base %s up: %v", base, err)
	}
	name := func(vid int) string { return fmt.Sprintf("%s.%d", base, vid) }
	var create, remove time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for vid := 1; vid <= vlanParents; vid++ {
			if err := link.CreateVLAN(base, vid, name(vid)); err != nil {
				b.Fatalf("create %s: %v", name(vid), err)
			}
		}
		create += time.Since(t0)
		b.StopTimer()
		if n := countVLANs(b, base); n != vlanParents {
			b.Fatalf("%d VLAN parents on %s after creating %d", n, base, vlanParents)
		}
		b.StartTimer()
		t1 := time.Now()
		for vid := 1; vid <= vlanParents; vid++ {
			if err := link.Delete(name(vid)); err != nil {
				b.Fatalf("remove %s: %v", name(vid), err)
			}
		}
		remove += time.Since(t1)
		b.StopTimer()
		if n := countVLANs(b, base); n != 0 {
			b.Fatalf("%d VLAN parents left on %s after removing them all", n, base)
		}
		b.StartTimer()
	}
	per := float64(b.N * vlanParents)
	b.ReportMetric(float64(create.Microseconds())/1000/per, "create-ms/parent")
	b.ReportMetric(float64(remove.Microseconds())/1000/per, "remove-ms/parent")
	b.ReportMetric(float64(create.Milliseconds())/float64(b.N), "create-ms/1000")
	b.ReportMetric(float64(remove.Milliseconds())/float64(b.N), "remove-ms/1000")
}

func countVLANs(b *testing.B, base string) int {
	bl, err := netlink.LinkByName(base)
	if err != nil {
		b.Fatal(err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, l := range links {
		if v, ok := l.(*netlink.Vlan); ok && v.Attrs().ParentIndex == bl.Attrs().Index {
			n++
		}
	}
	return n
}
