package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	tl "github.com/underlay/underlay/integration/testlab"
)

// 100 containers attach to one network at once, whose lock no longer spans
// the kernel work. Ten of them ask for the same static address, and ten
// also ask for a second network with a single free address. Exactly one of
// each contended group wins; every loser is left with nothing (no
// interface, no lease on either network); every winner's interface holds
// exactly the address the store records, and no address is given twice.
// Then all detach at once and every lease is free. Run with -race.
func TestPrivilegedParallelAttachOneNetwork(t *testing.T) {
	tl.Require(t)
	const n = 100
	m, s := newManager(t, t.TempDir())
	defer s.Close()
	lan := tl.NewLAN(t, "ulmp", "10.87.0.1/24")
	tiny := tl.NewLAN(t, "ulmq", "10.86.0.1/30")
	for _, c := range []api.NetworkCreate{
		{Name: "big", Subnets: []string{"10.87.0.0/24"}, Options: map[string]string{"parent": lan.Uplink}},
		{Name: "tiny", Subnets: []string{"10.86.0.0/30"}, Options: map[string]string{"parent": tiny.Uplink}},
	} {
		if _, err := m.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	const static = "10.87.0.200"
	reqs := make([]api.AttachRequest, n)
	cs := make([]*tl.Container, n)
	for i := range cs {
		cs[i] = tl.NewContainer(t, fmt.Sprintf("ulmp-c%d", i))
		r := api.AttachRequest{ContainerID: cs[i].ID, Pid: cs[i].Pid, Networks: []api.NetworkAttach{{Name: "big"}}}
		switch {
		case i < 10:
			r.Networks[0].IP = static
		case i < 20:
			r.Networks = append(r.Networks, api.NetworkAttach{Name: "tiny"})
		}
		reqs[i] = r
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = m.Attach(reqs[i])
		}(i)
	}
	wg.Wait()

	won := func(lo, hi int, want error) int {
		w := 0
		for i := lo; i < hi; i++ {
			switch {
			case errs[i] == nil:
				w++
			case !errors.Is(errs[i], want):
				t.Errorf("container %d: %v, want %v", i, errs[i], want)
			}
		}
		return w
	}
	if w := won(0, 10, ErrAddressInUse); w != 1 {
		t.Fatalf("%d containers got static %s", w, static)
	}
	if w := won(10, 20, ErrExhausted); w != 1 {
		t.Fatalf("%d containers got tiny's only address", w)
	}
	if w := won(20, n, nil); w != n-20 {
		t.Fatalf("%d of %d plain attaches succeeded", w, n-20)
	}

	byID := map[string]map[string]string{} // container -> ifname -> address
	seen := map[string]bool{}
	for _, ep := range m.Endpoints() {
		a := ep.Addresses[0]
		if seen[a] {
			t.Fatalf("address %s handed out twice", a)
		}
		seen[a] = true
		if byID[ep.ContainerID] == nil {
			byID[ep.ContainerID] = map[string]string{}
		}
		byID[ep.ContainerID][ep.IfName] = a
	}
	for net, want := range map[string]int{"big": n - 18, "tiny": 1} {
		if leases, _ := s.Leases(net); len(leases) != want {
			t.Fatalf("%s has %d leases, want %d", net, len(leases), want)
		}
	}
	for i, c := range cs {
		out, err := c.Exec("ip", "-o", "-4", "addr", "show")
		if err != nil {
			t.Fatal(err)
		}
		want := byID[c.ID]
		if errs[i] != nil && (len(want) != 0 || strings.Contains(out, "eth")) {
			t.Fatalf("container %d failed (%v) but kept %v / %s", i, errs[i], want, out)
		}
		for ifname, a := range want {
			if !strings.Contains(out, ifname+"    inet "+netip.MustParsePrefix(a).String()) {
				t.Fatalf("container %d: store says %s %s, netns has:\n%s", i, ifname, a, out)
			}
		}
		if got := strings.Count(out, ": eth"); got != len(want) {
			t.Fatalf("container %d: %d interfaces with addresses, store has %d:\n%s", i, got, len(want), out)
		}
	}

	for i := range cs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := m.Detach(api.DetachRequest{ContainerID: cs[i].ID, Pid: cs[i].Pid}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	for _, net := range []string{"big", "tiny"} {
		if leases, _ := s.Leases(net); len(leases) != 0 {
			t.Fatalf("leases left on %s: %v", net, leases)
		}
	}
}
