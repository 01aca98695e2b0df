package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/underlay/underlay/ipam"
)

// maxTries bounds the candidates one allocation races for: each lost race
// teaches the cache the winner's lease, so the next pick avoids it.
const maxTries = 64

// errTaken means another host won the race for a candidate.
var errTaken = errors.New("taken by another host first")

// Addresses is the address driver of one global network on this host. Its
// cache holds every address that has a lease key (held by some host, or
// cooling down), fed by a watch; it only chooses candidates: etcd's
// compare decides who gets one.
type Addresses struct {
	c       *Cluster
	network string
	rec     []byte // the network's record, compared by every allocation

	mu    sync.Mutex
	view  *ipam.Allocator         // addresses with a lease key
	keys  map[netip.Addr]keyState // what the cache knows of each
	mine  map[netip.Addr]held     // leases of this host
	doubt map[string]netip.Addr   // owner keys whose write may have landed
	rnd   *rand.Rand
}

type keyState struct {
	rev int64
	l   lease
}

type held struct {
	o   ipam.Owner
	rev int64 // of the lease key, as this host wrote it
}

// Addresses returns the driver of global network name, whose record in
// etcd is rec. It reads the network's leases and keeps them in sight.
func (c *Cluster) Addresses(name string, rec []byte, pools []ipam.Pool) (*Addresses, error) {
	d := &Addresses{c: c, network: name, rec: rec, keys: map[netip.Addr]keyState{},
		mine: map[netip.Addr]held{}, doubt: map[string]netip.Addr{},
		rnd: rand.New(rand.NewPCG(rand.Uint64(), uint64(time.Now().UnixNano())))}
	d.view = ipam.NewAllocator(pools)
	rev, err := d.load()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nets[name] = d
	c.mu.Unlock()
	c.wg.Add(1)
	go d.watch(rev)
	return d, nil
}

// load reads the network's lease keys and this host's owner keys.
func (d *Addresses) load() (int64, error) {
	ctx, cancel := d.c.request()
	defer cancel()
	ps, rev, err := d.c.kv.List(ctx, d.c.leasesPrefix(d.network))
	if err != nil {
		return 0, etcdErr("read the leases of global network "+d.network, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.view = ipam.NewAllocator(d.view.Pools())
	d.keys = map[netip.Addr]keyState{}
	for _, p := range ps {
		d.seeLocked(Event{Key: p.Key, Value: p.Value, ModRev: p.ModRev})
	}
	mine := map[netip.Addr]held{}
	for a, k := range d.keys {
		if k.l.Host == d.c.host && k.l.Released == "" {
			mine[a] = held{k.l.owner(d.network), k.rev}
		}
	}
	d.mine = mine
	return rev, nil
}

// watch applies other hosts' changes to the cache until the cluster
// closes; a broken watch reads everything again.
func (d *Addresses) watch(rev int64) {
	defer d.c.wg.Done()
	for d.c.ctx.Err() == nil {
		for evs := range d.c.kv.Watch(d.c.ctx, d.c.leasesPrefix(d.network), rev+1) {
			d.mu.Lock()
			for _, e := range evs {
				d.seeLocked(e)
				rev = max(rev, e.ModRev)
			}
			d.mu.Unlock()
		}
		for d.c.ctx.Err() == nil {
			var err error
			if rev, err = d.load(); err == nil {
				break
			}
			d.c.log.Warn("global network's leases not read again", "network", d.network, "err", err)
			select {
			case <-d.c.ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// seeLocked applies one change of a lease key to the cache, unless the
// cache knows a later one.
func (d *Addresses) seeLocked(e Event) {
	a, ok := addrOfKey(e.Key)
	if !ok {
		return
	}
	if k, ok := d.keys[a]; ok && k.rev > e.ModRev {
		return
	}
	if e.Delete {
		delete(d.keys, a)
		d.view.Release(a)
		if h, ok := d.mine[a]; ok && h.rev < e.ModRev {
			delete(d.mine, a)
			d.c.log.Error("a lease of this host was removed in etcd", "network", d.network, "address", a)
		}
		return
	}
	l, ok := decodeLease(e.Value)
	if !ok {
		return
	}
	d.keys[a] = keyState{e.ModRev, l}
	_ = d.view.Mark(a)
}

// Concurrent says that the driver may be called by many attaches at once:
// its cache has its own lock, and etcd decides every race.
func (d *Addresses) Concurrent() bool { return true }

// Pools are the network's pools.
func (d *Addresses) Pools() []ipam.Pool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.view.Pools()
}

// poolOf returns the pool of a, and whether a may never be handed out.
func (d *Addresses) poolOf(a netip.Addr) (pool ipam.Pool, ok, reserved bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pool, ok = d.view.PoolOf(a)
	return pool, ok, d.view.Reserved(a)
}

// Allocate races for free addresses picked at random from the cache.
func (d *Addresses) Allocate(o ipam.Owner, family int) (netip.Addr, ipam.Pool, error) {
	ctx, cancel := d.c.request()
	defer cancel()
	for range maxTries {
		d.mu.Lock()
		a, pool, err := d.view.Pick(family, d.rnd.Uint64())
		d.mu.Unlock()
		if err != nil {
			return a, pool, err
		}
		got, err := d.take(ctx, o, a, Absent(d.c.leaseKey(d.network, a)))
		if errors.Is(err, errTaken) {
			continue
		}
		if err != nil {
			return got, pool, err
		}
		p, _, _ := d.poolOf(got)
		return got, p, nil
	}
	return netip.Addr{}, ipam.Pool{}, fmt.Errorf("global network %s: other hosts took each of %d free addresses first: %w",
		d.network, maxTries, ipam.ErrPoolExhausted)
}

// Claim takes a given address: free, or cooling down after its release by
// this very interface (a restarted container keeps its address).
func (d *Addresses) Claim(o ipam.Owner, a netip.Addr) (ipam.Pool, error) {
	pool, ok, reserved := d.poolOf(a)
	if !ok {
		return pool, fmt.Errorf("%s: %w of the network", a, ipam.ErrNotInSubnet)
	}
	if reserved {
		d.mu.Lock()
		_, err := d.view.Claim(a) // refuses, and says why
		d.mu.Unlock()
		return pool, err
	}
	ctx, cancel := d.c.request()
	defer cancel()
	// The cache only chooses the compare; etcd's answer decides, and a
	// lost race brings the key's real state into the cache for a second
	// try (our own tombstone, which the cache had not seen yet).
	for try := 0; ; try++ {
		d.mu.Lock()
		k, known := d.keys[a]
		d.mu.Unlock()
		ours := known && k.l.Host == d.c.host && k.l.owner(d.network) == o
		if ours && k.l.Released == "" {
			d.mu.Lock()
			d.mine[a] = held{o, k.rev}
			d.mu.Unlock()
			return pool, nil // already ours: a repeated request
		}
		cmp := Absent(d.c.leaseKey(d.network, a))
		if ours {
			cmp = Unchanged(cmp.Key, k.rev)
		}
		got, err := d.take(ctx, o, a, cmp)
		if errors.Is(err, errTaken) {
			d.mu.Lock()
			k, known = d.keys[a]
			d.mu.Unlock()
			if try == 0 && (!known || k.l.Host == d.c.host && k.l.owner(d.network) == o) {
				continue
			}
			return pool, inUse(a, k.l)
		}
		if err == nil && got != a {
			return pool, fmt.Errorf("%s: this interface already holds %s: %w", a, got, ipam.ErrAddressInUse)
		}
		return pool, err
	}
}

func inUse(a netip.Addr, l lease) error {
	if l.Released != "" {
		return fmt.Errorf("%s: released by host %s at %s and cooling down: %w", a, l.Host, l.Released, ipam.ErrAddressInUse)
	}
	return fmt.Errorf("%s: held by host %s (container %s): %w", a, l.Host, l.Container, ipam.ErrAddressInUse)
}

// take writes a's lease key and o's owner key in one transaction, if cmp
// still holds for the lease key, o holds no address of a's family yet and
// the network is still there. It returns the address o holds: a, or the
// one an earlier try of the same request took. errTaken means cmp failed.
func (d *Addresses) take(ctx context.Context, o ipam.Owner, a netip.Addr, cmp Cmp) (netip.Addr, error) {
	lk, ok, nk := d.c.leaseKey(d.network, a), d.c.ownerKey(o, a), d.c.networkKey(d.network)
	then := []Op{Put(lk, leaseOf(d.c.host, o).encode()), Put(ok, []byte(a.String()))}
	done, rev, got, err := d.c.kv.Txn(ctx, []Cmp{cmp, Absent(ok), Holds(nk, d.rec)}, then, []string{lk, ok, nk})
	if err != nil {
		// The client does not retry a write it sent, and one that
		// failed may have landed: the owner key says.
		p, gerr := d.c.kv.Get(ctx, ok)
		if gerr != nil {
			d.mu.Lock()
			d.doubt[ok] = a
			d.mu.Unlock()
			return a, etcdErr("lease "+a.String(), err)
		}
		if !p.Exists() {
			return a, etcdErr("lease "+a.String(), err)
		}
		return d.adopt(ctx, o, p)
	}
	if done {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.keys[a] = keyState{rev, leaseOf(d.c.host, o)}
		_ = d.view.Mark(a)
		d.mine[a] = held{o, rev}
		return a, nil
	}
	if !bytes.Equal(got[2].Value, d.rec) {
		return a, fmt.Errorf("global network %s was removed or changed: %w", d.network, ErrNetworkGone)
	}
	if got[1].Exists() {
		return d.adopt(ctx, o, got[1])
	}
	d.mu.Lock()
	if got[0].Exists() {
		d.seeLocked(Event{Key: lk, Value: got[0].Value, ModRev: got[0].ModRev})
	} else {
		d.view.Release(a) // a stale cache thought it taken
	}
	d.mu.Unlock()
	return a, errTaken
}

// adopt takes as this host's the address that o's owner key names: an
// earlier try of the same request took it.
func (d *Addresses) adopt(ctx context.Context, o ipam.Owner, owner Pair) (netip.Addr, error) {
	a, ok := parseAddr(owner.Value)
	if !ok {
		return a, fmt.Errorf("owner key %s holds %q, not an address", owner.Key, owner.Value)
	}
	p, err := d.c.kv.Get(ctx, d.c.leaseKey(d.network, a))
	if err != nil {
		return a, etcdErr("lease "+a.String(), err)
	}
	l, ok := decodeLease(p.Value)
	if !ok || l.Host != d.c.host || l.owner(d.network) != o {
		return a, fmt.Errorf("owner key %s names %s, whose lease is not this interface's", owner.Key, a)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys[a] = keyState{p.ModRev, l}
	_ = d.view.Mark(a)
	d.mine[a] = held{o, p.ModRev}
	return a, nil
}

// release is a release etcd has not taken yet, as Pending keeps it.
type release struct {
	Network string     `json:"network"`
	Addr    netip.Addr `json:"address"`
	Owner   ipam.Owner `json:"owner"`
	Rev     int64      `json:"lease_rev"`
}

// Release gives a back: its lease key becomes a tombstone for the
// cooldown, and its owner key goes. A release etcd does not take is kept
// in Pending and applied by Renew.
func (d *Addresses) Release(o ipam.Owner, a netip.Addr) {
	d.mu.Lock()
	h, ok := d.mine[a]
	delete(d.mine, a)
	d.mu.Unlock()
	if !ok {
		return
	}
	r := release{Network: d.network, Addr: a, Owner: h.o, Rev: h.rev}
	if err := d.c.apply(r); err != nil {
		d.c.log.Warn("release kept until etcd is back", "network", d.network, "address", a, "err", err)
		b, _ := json.Marshal(r)
		if perr := d.c.pending.PutRelease(d.c.ownerKey(h.o, a), b); perr != nil {
			d.c.log.Error("release not kept: the address stays leased until reconciliation", "network", d.network, "address", a, "err", perr)
		}
		return
	}
	d.mu.Lock()
	if d.c.cooldown <= 0 {
		delete(d.keys, a)
		d.view.Release(a)
	}
	d.mu.Unlock()
}

// apply runs a release against etcd. A lease that changed since (taken by
// reclamation, or released by an earlier try whose answer was lost) is not
// this host's to release any more: that is success too.
func (c *Cluster) apply(r release) error {
	ctx, cancel := c.request()
	defer cancel()
	lk, ok := c.leaseKey(r.Network, r.Addr), c.ownerKey(r.Owner, r.Addr)
	ifs := []Cmp{Holds(ok, []byte(r.Addr.String()))}
	if r.Rev != 0 {
		ifs = append(ifs, Unchanged(lk, r.Rev))
	}
	then := []Op{Del(lk), Del(ok)}
	if c.cooldown > 0 {
		l := lease{Host: c.host, Namespace: r.Owner.Namespace, Container: r.Owner.Container, IfName: r.Owner.IfName,
			Released: time.Now().UTC().Format(time.RFC3339)}
		then[0] = PutTTL(lk, l.encode(), int64((c.cooldown+time.Second-1)/time.Second))
	}
	if _, _, _, err := c.kv.Txn(ctx, ifs, then, nil); err != nil {
		return etcdErr("release "+r.Addr.String(), err)
	}
	return nil
}

// Hold records at start an address that a stored endpoint of this host
// holds: its lease must be this host's, or free to take again.
func (d *Addresses) Hold(o ipam.Owner, a netip.Addr) error {
	d.mu.Lock()
	h, ok := d.mine[a]
	k, known := d.keys[a]
	d.mu.Unlock()
	if ok && h.o == o {
		return nil
	}
	if known && (k.l.Host != d.c.host || k.l.owner(d.network) != o) && k.l.Released == "" {
		return inUse(a, k.l)
	}
	_, err := d.Claim(o, a)
	return err
}

// Held calls fn with this host's leases. The manager releases those that
// no endpoint backs.
func (d *Addresses) Held(fn func(ipam.Owner, netip.Addr)) {
	d.mu.Lock()
	mine := make(map[netip.Addr]ipam.Owner, len(d.mine))
	for a, h := range d.mine {
		mine[a] = h.o
	}
	d.mu.Unlock()
	for a, o := range mine {
		fn(o, a)
	}
}

// Renew applies the releases etcd did not take before, and settles the
// writes whose outcome was not known.
func (d *Addresses) Renew() error {
	ctx, cancel := d.c.request()
	defer cancel()
	d.mu.Lock()
	doubt := d.doubt
	d.doubt = map[string]netip.Addr{}
	d.mu.Unlock()
	var errs []error
	for key, a := range doubt {
		p, err := d.c.kv.Get(ctx, key)
		if err != nil {
			d.mu.Lock()
			d.doubt[key] = a
			d.mu.Unlock()
			errs = append(errs, etcdErr("read back "+key, err))
			continue
		}
		if p.Exists() {
			o, ok := d.c.ownerOfKey(key)
			if ok {
				if _, err := d.adopt(ctx, o, p); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := d.c.flush(d.network); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// flush applies the pending releases of network.
func (c *Cluster) flush(network string) error {
	all, err := c.pending.Releases()
	if err != nil {
		return fmt.Errorf("read pending releases: %w", err)
	}
	for key, b := range all {
		var r release
		if json.Unmarshal(b, &r) != nil {
			_ = c.pending.DeleteRelease(key)
			continue
		}
		if r.Network != network {
			continue
		}
		if err := c.apply(r); err != nil {
			return err
		}
		if err := c.pending.DeleteRelease(key); err != nil {
			return fmt.Errorf("forget applied release: %w", err)
		}
		c.log.Info("pending release applied", "network", r.Network, "address", r.Addr)
	}
	return nil
}

// ownerOfKey parses an owner key of this host.
func (c *Cluster) ownerOfKey(key string) (ipam.Owner, bool) {
	f := strings.Split(strings.TrimPrefix(key, c.ownersPrefix(c.host)), "/")
	if len(f) != 5 {
		return ipam.Owner{}, false
	}
	return ipam.Owner{Network: f[0], Namespace: f[1], Container: f[2], IfName: f[3]}, true
}

// Usage reports how full each pool is, as far as the cache knows: every
// host's leases, and addresses cooling down, count as in use.
func (d *Addresses) Usage() []ipam.Usage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.view.Usage()
}
