package multihost

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tl "github.com/underlay/underlay/integration/testlab"
	"github.com/underlay/underlay/ipam"
	"github.com/underlay/underlay/ipam/etcd"
)

// perHost is how many addresses each host takes in
// TestPrivilegedMultihostAllocations: 3 x 2,000 is more than the /20
// holds (4,093), so the last ones find it full. About 7 s here.
const perHost = 2000

// reachFromRoot gives the test's own namespace a leg on the LAN
// (ulmh0, 10.77.0.2), so that it can drive the address driver against
// the members directly.
func (l *lab) reachFromRoot() {
	l.t.Helper()
	tl.MustRun(l.t, "ip", "link", "add", "ulmh0", "type", "veth", "peer", "name", "ulmh0b")
	l.t.Cleanup(func() { _, _ = tl.Run("ip", "link", "del", "ulmh0") })
	tl.MustRun(l.t, "ip", "link", "set", "ulmh0b", "netns", lanNS)
	tl.MustRun(l.t, "ip", "-n", lanNS, "link", "set", "ulmh0b", "master", "br0", "up")
	tl.MustRun(l.t, "ip", "addr", "add", "10.77.0.2/24", "dev", "ulmh0")
	tl.MustRun(l.t, "ip", "link", "set", "ulmh0", "up")
}

// leader returns the member that leads the cluster now.
func (l *lab) leader() *member {
	l.t.Helper()
	for _, m := range l.members {
		out, err := l.etcdctl("--endpoints", m.h.addr+":2379", "endpoint", "status", "-w", "fields")
		if err == nil && strings.Contains(out, `"Leader" : `) {
			var id, lead string
			for _, line := range strings.Split(out, "\n") {
				if v, ok := strings.CutPrefix(line, `"MemberID" : `); ok {
					id = v
				}
				if v, ok := strings.CutPrefix(line, `"Leader" : `); ok {
					lead = v
				}
			}
			if id != "" && id == lead {
				return m
			}
		}
	}
	l.t.Fatal("no member leads")
	return nil
}

// Three hosts, three members: each host's address driver takes its share
// of one /20 at once, while the leader is SIGKILLed and started again.
// Requests that fail may fail (the cluster is electing), but no address is
// ever held twice, in etcd or among what the hosts were given, and every
// address a host was given is its lease in etcd.
func TestPrivilegedMultihostAllocations(t *testing.T) {
	l := newLab(t, 3)
	l.etcd(3)
	l.reachFromRoot()
	n := perHost
	pools, err := ipam.BuildPools(ipam.Spec{Subnets: []string{"10.80.0.0/20"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := []byte(`{"name":"alloc"}`)
	type host struct {
		name string
		d    *etcd.Addresses
	}
	var hosts []host
	for _, h := range l.hosts {
		kv, err := etcd.Dial(l.store, etcd.TLSFiles{}, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kv.Close() })
		c, err := etcd.New(kv, etcd.Config{Prefix: "/ulmh", Host: h.name, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if err := c.CreateNetwork("alloc", rec); err != nil && !errors.Is(err, etcd.ErrNetworkExists) {
			t.Fatal(err)
		}
		d, err := c.Addresses("alloc", rec, pools)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, host{h.name, d})
	}
	var mu sync.Mutex
	given := map[netip.Addr]string{}
	var failed, exhausted, done atomic.Int64
	var wg sync.WaitGroup
	for _, h := range hosts {
		for w := range 4 { // four attaches at a time per host
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 4 {
					id := fmt.Sprintf("%s-c%d", h.name, i)
					a, _, err := h.d.Allocate(ipam.Owner{Network: "alloc", Container: id, IfName: "eth0"}, 4)
					done.Add(1)
					if errors.Is(err, ipam.ErrPoolExhausted) {
						exhausted.Add(1)
						continue
					}
					if err != nil {
						failed.Add(1)
						continue
					}
					mu.Lock()
					if prev, dup := given[a]; dup {
						t.Errorf("%s given to %s and %s", a, prev, id)
					}
					given[a] = id
					mu.Unlock()
				}
			}()
		}
	}
	// Kill the leader a third of the way in, start it again at two thirds.
	for done.Load() < int64(3*n/3) {
		time.Sleep(5 * time.Millisecond)
	}
	lead := l.leader()
	lead.kill()
	for done.Load() < int64(3*n*2/3) {
		time.Sleep(5 * time.Millisecond)
	}
	lead.start()
	wg.Wait()
	l.healthy()
	t.Logf("%d allocations on 3 hosts into a /20: %d given, %d refused as the /20 filled, %d failed while the leader (%s) was down",
		3*n, len(given), exhausted.Load(), failed.Load(), lead.h.name)
	if failed.Load() > int64(n) {
		t.Errorf("%d of %d allocations failed: the cluster kept a quorum throughout", failed.Load(), 3*n)
	}
	leases := map[string]string{}
	out, err := l.etcdctl("get", "--prefix", "/ulmh/v1/leases/alloc/")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		a := lines[i][strings.LastIndexByte(lines[i], '/')+1:]
		if _, dup := leases[a]; dup {
			t.Errorf("two lease keys for %s", a)
		}
		leases[a] = lines[i+1]
	}
	for a, id := range given {
		hn := strings.SplitN(id, "-", 2)[0]
		if v := leases[a.String()]; !strings.Contains(v, `"host":"`+hn+`"`) || !strings.Contains(v, `"container":"`+id+`"`) {
			t.Errorf("%s was given to %s, etcd says %s", a, id, v)
		}
	}
	// A request whose answer was lost may hold a lease nobody was told
	// of: the host's reconciliation releases it (no endpoint backs it).
	if len(given)+int(exhausted.Load())+int(failed.Load()) != 3*n {
		t.Errorf("%d given, %d refused, %d failed: want %d answers", len(given), exhausted.Load(), failed.Load(), 3*n)
	}
	if exhausted.Load() > 0 && len(leases) < 4093-int(failed.Load()) {
		t.Errorf("%d refused as full with %d of 4,093 addresses leased", exhausted.Load(), len(leases))
	}
	if extra := len(leases) - len(given); extra < 0 || extra > int(failed.Load()) {
		t.Errorf("%d leases in etcd for %d addresses given (%d failures)", len(leases), len(given), failed.Load())
	}
}

// Three hosts, three members, 50 containers starting at once on each,
// through the hook: no two containers share an address, and each answers
// from the LAN's router and from a container on another host.
func TestPrivilegedMultihostAttachLoad(t *testing.T) {
	l := newLab(t, 3)
	l.etcd(3)
	for _, h := range l.hosts {
		l.start(h)
	}
	l.hosts[0].d.MustCLI(t, "network", "create", "--scope", "global", "--subnet", "10.77.0.0/20",
		"--gateway", "10.77.0.1", "--ip-range", "10.77.8.0/21", "-o", "parent=lan0", "g")
	const each = 50
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[netip.Addr]*tl.Container{}
	byHost := make([][]*tl.Container, len(l.hosts))
	for i, h := range l.hosts {
		for j := range each {
			c := tl.NewContainer(t, fmt.Sprintf("ulmh-%s-l%d", h.name, j))
			byHost[i] = append(byHost[i], c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if out, err := h.d.Attach(c, onG); err != nil {
					t.Errorf("attach %s on %s: %v %s", c.ID, h.name, err, out)
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, cs := range byHost {
		for _, c := range cs {
			a := eth0(t, c)
			mu.Lock()
			if o, dup := got[a]; dup {
				t.Errorf("%s on %s and %s", a, o.ID, c.ID)
			}
			got[a] = c
			mu.Unlock()
		}
	}
	other := byHost[2][0]
	for a, c := range got {
		if out, err := tl.Run("ip", "netns", "exec", lanNS, "ping", "-c", "1", "-W", "1", a.String()); err != nil {
			t.Errorf("router cannot reach %s (%s): %s", a, c.ID, out)
		}
		if c == other || strings.Contains(c.ID, "-h3-") {
			continue
		}
		if out, err := other.Exec("ping", "-c", "1", "-W", "1", a.String()); err != nil {
			t.Errorf("%s on h3 cannot reach %s (%s): %s", other.ID, a, c.ID, out)
		}
	}
	if leases := l.keys("/ulmh/v1/leases/g/"); len(leases) != 3*each {
		t.Errorf("%d leases in etcd for %d containers", len(leases), 3*each)
	}
}
