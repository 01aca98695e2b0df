package lifecycle

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/store"
	tl "github.com/underlay/underlay/integration/testlab"
)

// storeView is the state database, read after the daemon stopped.
type storeView struct {
	endpoints []api.Endpoint
	leases    map[string]map[netip.Addr]string // network -> address -> endpoint key
	links     []store.OwnedLink
}

// readStore opens the state database; the daemon must not be running.
func readStore(t *testing.T, dir string, networks ...string) storeView {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatalf("open the store after underlayd stopped: %v", err)
	}
	defer s.Close()
	v := storeView{leases: map[string]map[netip.Addr]string{}}
	if v.endpoints, err = s.Endpoints(); err != nil {
		t.Fatal(err)
	}
	for _, n := range networks {
		if v.leases[n], err = s.Leases(n); err != nil {
			t.Fatal(err)
		}
	}
	if v.links, err = s.Links(); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkStoreInvariants reports every way the store contradicts itself: a
// lease without its endpoint or the reverse, an address held twice, an
// endpoint left half-attached, an owned parent without endpoints (or
// missing from the kernel while endpoints use it).
func checkStoreInvariants(v storeView) []string {
	var bad []string
	held := map[string]map[netip.Addr]string{} // network -> address -> endpoint key
	parents := map[string]int{}
	for _, ep := range v.endpoints {
		key := string(store.EndpointKey(ep))
		if ep.State != "attached" {
			bad = append(bad, fmt.Sprintf("endpoint %s is %q after a restart", key, ep.State))
		}
		parents[ep.Parent]++
		if held[ep.Network] == nil {
			held[ep.Network] = map[netip.Addr]string{}
		}
		for _, a := range ep.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				bad = append(bad, fmt.Sprintf("endpoint %s has unparsable address %q", key, a))
				continue
			}
			if other, dup := held[ep.Network][p.Addr()]; dup {
				bad = append(bad, fmt.Sprintf("address %s held by both %s and %s", p.Addr(), other, key))
			}
			held[ep.Network][p.Addr()] = key
			leases, ok := v.leases[ep.Network]
			if !ok {
				continue // network not asked for
			}
			if owner, ok := leases[p.Addr()]; !ok {
				bad = append(bad, fmt.Sprintf("endpoint %s has %s without a lease", key, p.Addr()))
			} else if owner != key {
				bad = append(bad, fmt.Sprintf("endpoint %s has %s, whose lease is %s's", key, p.Addr(), owner))
			}
		}
	}
	for n, leases := range v.leases {
		for a, owner := range leases {
			if held[n][a] != owner {
				bad = append(bad, fmt.Sprintf("lease %s on %s names %s, which does not hold it", a, n, owner))
			}
		}
	}
	for _, l := range v.links {
		if parents[l.Name] == 0 {
			bad = append(bad, fmt.Sprintf("owned parent %s (%s) recorded with no endpoint on it", l.Name, l.Kind))
		}
		if exists := tl.LinkExists(l.Name); parents[l.Name] == 0 && exists {
			bad = append(bad, fmt.Sprintf("owned parent %s still exists with no endpoint on it", l.Name))
		}
	}
	sort.Strings(bad)
	return bad
}
