package link

import (
	"net/netip"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
)

// The router's addresses answer a probe, v4 and v6; free ones do not.
func TestPrivilegedAnswering(t *testing.T) {
	tl.Require(t)
	lan := tl.NewLAN(t, "ulkn", "10.57.1.1/24", "2001:db8:571::1/64")
	held, free := netip.MustParseAddr("10.57.1.1"), netip.MustParseAddr("10.57.1.9")
	held6, free6 := netip.MustParseAddr("2001:db8:571::1"), netip.MustParseAddr("2001:db8:571::9")
	got, err := Answering(lan.Uplink, []netip.Addr{held, free, held6, free6}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]bool{held: true, free: false, held6: true, free6: false}
	for a, w := range want {
		if got[a] != w {
			t.Errorf("%s: answering %v, want %v", a, got[a], w)
		}
	}
	if _, err := Answering("ulkn-none", []netip.Addr{held}, time.Millisecond); err == nil {
		t.Error("probe on a missing parent: no error")
	}
}
