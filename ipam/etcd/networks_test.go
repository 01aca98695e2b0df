package etcd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/underlay/underlay/ipam"
)

// member starts host name's part of a cluster on kv, with a short request
// bound: a stalled write costs the test that long.
func member(t *testing.T, kv *memKV, name string) *Cluster {
	t.Helper()
	c, err := New(kv, Config{Prefix: "/ul", Host: name, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// record is what etcd holds for network name: its value, "" if none.
func record(t *testing.T, kv *memKV, name string) string {
	t.Helper()
	p, _ := kv.Get(t.Context(), "/ul/v1/networks/"+name)
	if !p.Exists() {
		return ""
	}
	return string(p.Value)
}

// holdAddress takes an address of network g for host c: an endpoint.
func holdAddress(t *testing.T, c *Cluster) *Addresses {
	t.Helper()
	pools, err := ipam.BuildPools(ipam.Spec{Subnets: []string{"10.9.0.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Addresses("g", netRec, pools)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Allocate(owner("c1"), 4); err != nil {
		t.Fatal(err)
	}
	return d
}

func etcdDown(m *memKV) { m.down = true }

// A create whose answer never comes may have landed: a read on a request
// of its own settles it, and when etcd does not answer that either, the
// error says so and how to find out.
func TestCreateNetworkTimeout(t *testing.T) {
	for _, c := range []struct {
		name    string
		fault   func(kv *memKV)
		unknown bool   // the error says the outcome is unknown
		want    string // the record once etcd is back
	}{
		{"answer lost after the write", func(kv *memKV) { kv.stall = 1 }, false, string(netRec)},
		{"etcd gone after the write", func(kv *memKV) { kv.stall = 1; kv.onApply = etcdDown }, true, string(netRec)},
		{"write never applied", func(kv *memKV) { kv.fail = 1 }, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			kv := newMemKV()
			cl := member(t, kv, "h1")
			kv.mu.Lock()
			c.fault(kv)
			kv.mu.Unlock()
			err := cl.CreateNetwork("g", netRec)
			switch {
			case c.unknown:
				if !errors.Is(err, ErrOutcomeUnknown) || !strings.Contains(err.Error(), "`underlay network ls` shows whether g was created") {
					t.Fatalf("got %v, want an unknown outcome that says how to find out", err)
				}
			case c.want != "" && err != nil:
				t.Fatalf("create that landed: %v", err)
			case c.want == "" && (err == nil || errors.Is(err, ErrOutcomeUnknown)):
				t.Fatalf("create that did not land: %v, want an etcd error", err)
			}
			kv.set(0, 0, false)
			if got := record(t, kv, "g"); got != c.want {
				t.Fatalf("etcd holds %q, want %q", got, c.want)
			}
			nets, err := cl.Networks()
			if err != nil {
				t.Fatal(err)
			}
			if _, listed := nets["g"]; listed != (c.want != "") {
				t.Fatalf("network ls lists g: %v, want %v", listed, c.want != "")
			}
		})
	}
}

// A remove whose answers never come leaves the network either removed, or
// whole, or marked and said so; a remove again settles a mark, and never
// drops a record whose network has endpoints.
func TestRemoveNetworkTimeout(t *testing.T) {
	for _, c := range []struct {
		name      string
		endpoints bool
		fault     func(kv *memKV) // set before the remove
		want      string          // its error ("" none; "unknown"; or a part of the text)
		left      string          // the record right after, once etcd is back: "", "marked", "whole"
	}{
		{"mark's answer lost", false, func(kv *memKV) { kv.stall = 1 }, "", ""},
		{"mark's answer lost, etcd gone", false, func(kv *memKV) { kv.stall = 1; kv.onApply = etcdDown }, "unknown", "marked"},
		{"mark not applied", false, func(kv *memKV) { kv.fail = 1 }, "etcd:", "whole"},
		{"delete's answer lost", false, func(kv *memKV) {
			kv.onApply = func(m *memKV) { m.stall = 1 }
		}, "", ""},
		{"delete's answer lost, etcd gone", false, func(kv *memKV) {
			kv.onApply = func(m *memKV) { m.stall = 1; m.onApply = etcdDown }
		}, "unknown", ""},
		{"etcd gone after the mark", false, func(kv *memKV) { kv.onApply = etcdDown }, "left marked for removal", "marked"},
		{"in use, restore's answer lost", true, func(kv *memKV) {
			kv.onApply = func(m *memKV) { m.stall = 1 }
		}, "h2 (1)", "whole"},
		{"in use, etcd gone after the mark", true, func(kv *memKV) { kv.onApply = etcdDown }, "left marked for removal", "marked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kv := newMemKV()
			cl := member(t, kv, "h1")
			if err := cl.CreateNetwork("g", netRec); err != nil {
				t.Fatal(err)
			}
			var d *Addresses
			if c.endpoints {
				d = holdAddress(t, member(t, kv, "h2"))
			}
			kv.mu.Lock()
			c.fault(kv)
			kv.mu.Unlock()
			err := cl.RemoveNetwork("g", netRec)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("remove: %v", err)
			case c.want == "unknown" && (!errors.Is(err, ErrOutcomeUnknown) || !strings.Contains(err.Error(), "run `underlay network rm g` again")):
				t.Fatalf("got %v, want an unknown outcome that says to remove again", err)
			case c.want != "" && c.want != "unknown" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if strings.Contains(c.want, "left marked") && !strings.Contains(err.Error(), "run `underlay network rm g` again") {
				t.Fatalf("%v: does not say how to settle the mark", err)
			}
			kv.set(0, 0, false)
			left := map[string]string{"": "", "marked": string(removing) + string(netRec), "whole": string(netRec)}[c.left]
			if got := record(t, kv, "g"); got != left {
				t.Fatalf("etcd holds %q, want %q", got, left)
			}

			// Settled by a remove again, from a host without the record
			// (nil: Networks hides a marked one), then with it.
			settle := map[string][2]error{ // by what is left: nil's outcome, then rec's
				"":       {ErrNetworkGone, ErrNetworkGone},
				"marked": {nil, ErrNetworkGone},
				"whole":  {ErrNetworkGone, nil},
			}[c.left]
			if c.endpoints {
				settle = map[string][2]error{"marked": {ErrNetworkInUse, ErrNetworkInUse},
					"whole": {ErrNetworkGone, ErrNetworkInUse}}[c.left]
			}
			for i, rec := range [][]byte{nil, netRec} {
				err := cl.RemoveNetwork("g", rec)
				if want := settle[i]; want == nil && err != nil || want != nil && !errors.Is(err, want) {
					t.Fatalf("remove again (record %q): %v, want %v", rec, err, want)
				}
			}
			want := ""
			if c.endpoints {
				want = string(netRec)
				if _, _, err := d.Allocate(owner("c2"), 4); err != nil {
					t.Fatalf("allocate on the restored network: %v", err)
				}
				if got := leases(t, kv); len(got) != 2 {
					t.Fatalf("leases %v, want c1's and c2's", got)
				}
			}
			if got := record(t, kv, "g"); got != want {
				t.Fatalf("etcd holds %q after a remove again, want %q", got, want)
			}
		})
	}
}

// A name whose removal was interrupted is refused to a create, which says
// how to finish the removal; a remove without the record removes only a
// network being removed.
func TestInterruptedRemoval(t *testing.T) {
	kv := newMemKV()
	cl := member(t, kv, "h1")
	if err := cl.RemoveNetwork("g", nil); !errors.Is(err, ErrNetworkGone) {
		t.Fatalf("finish the removal of no network: %v, want gone", err)
	}
	if err := cl.CreateNetwork("g", netRec); err != nil {
		t.Fatal(err)
	}
	if err := cl.RemoveNetwork("g", nil); !errors.Is(err, ErrNetworkGone) || record(t, kv, "g") != string(netRec) {
		t.Fatalf("finish the removal of a network not being removed: %v, record %q; want gone, record kept", err, record(t, kv, "g"))
	}
	kv.after(etcdDown)
	if err := cl.RemoveNetwork("g", netRec); err == nil {
		t.Fatal("remove with etcd gone after the mark succeeded")
	}
	kv.set(0, 0, false)
	if nets, _ := cl.Networks(); nets["g"] != nil {
		t.Fatalf("a network being removed is listed: %q", nets["g"])
	}
	err := cl.CreateNetwork("g", []byte(`{"name":"g","other":1}`))
	if !errors.Is(err, ErrNetworkExists) || !strings.Contains(err.Error(), "being removed") ||
		!strings.Contains(err.Error(), "`underlay network rm g` finishes it") {
		t.Fatalf("create over a removal: %v, want exists, being removed, and how to finish it", err)
	}
	if err := cl.RemoveNetwork("g", nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.CreateNetwork("g", netRec); err != nil {
		t.Fatalf("create once the removal is finished: %v", err)
	}
}

// NetworksCreated orders the networks as they were made, and leaves out
// one being removed, as Networks does.
func TestCreatedOrder(t *testing.T) {
	kv := newMemKV()
	cl := member(t, kv, "h1")
	for _, name := range []string{"b", "a", "c"} {
		if err := cl.CreateNetwork(name, []byte(`{"name":"`+name+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	recs, got, err := cl.NetworksCreated()
	if err != nil || len(recs) != 3 {
		t.Fatal(err)
	}
	if len(got) != 3 || !(got["b"] < got["a"] && got["a"] < got["c"]) {
		t.Fatalf("Created = %v: want b before a before c", got)
	}
	kv.after(etcdDown)
	_ = cl.RemoveNetwork("c", []byte(`{"name":"c"}`)) // leaves its mark
	kv.set(0, 0, false)
	if recs, got, _ := cl.NetworksCreated(); len(got) != 2 || got["c"] != 0 || recs["c"] != nil {
		t.Fatalf("Created lists a network being removed: %v", got)
	}
}

// A refused remove counts interfaces, not addresses: a dual-stack one
// holds two leases and is one container's.
func TestRemoveInUseCountsInterfaces(t *testing.T) {
	kv := newMemKV()
	c, d := host(t, kv, "h1", 0)
	for _, fam := range []int{4, 6} {
		if _, _, err := d.Allocate(owner("web"), fam); err != nil {
			t.Fatal(err)
		}
	}
	err := c.RemoveNetwork("g", netRec)
	if !errors.Is(err, ErrNetworkInUse) || !strings.Contains(err.Error(), "host(s) h1 (1)") {
		t.Fatalf("remove with one dual-stack interface on h1: %v", err)
	}
}
