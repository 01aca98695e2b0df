// Package etcd is the address driver of global networks: their addresses
// are shared by every host through etcd, and a host takes one by a
// compare-and-swap on that address's key, so two hosts never hold one
// address, whatever fails. See keys.go for the layout.
package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sentinels of the cluster's own refusals.
var (
	ErrNetworkExists = errors.New("network already exists")
	ErrNetworkGone   = errors.New("no such global network")
	ErrNetworkInUse  = errors.New("network has endpoints")
)

// Config is this host's part in the cluster.
type Config struct {
	Prefix   string        // of every key, e.g. "/underlay"
	Host     string        // this host's name, unique in the cluster
	Timeout  time.Duration // bound of each request to etcd
	Cooldown time.Duration // how long a released address rests
	Pending  Pending       // releases etcd did not take yet; nil keeps them in memory
	Log      *slog.Logger
}

// Pending keeps, durably, the releases that could not reach etcd, so that
// they are applied when etcd is back, even after a restart.
type Pending interface {
	PutRelease(key string, rec []byte) error
	DeleteRelease(key string) error
	Releases() (map[string][]byte, error)
}

// Cluster is this host's view of the shared address plan.
type Cluster struct {
	kv       KV
	prefix   string
	host     string
	timeout  time.Duration
	cooldown time.Duration
	pending  Pending
	log      *slog.Logger

	ctx    context.Context // ends with Close: the watches
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	nets map[string]*Addresses
}

// New starts this host's part in the cluster on kv.
func New(kv KV, cfg Config) (*Cluster, error) {
	if err := CheckHostName(cfg.Host); err != nil {
		return nil, fmt.Errorf("host name %q: %w", cfg.Host, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Pending == nil {
		cfg.Pending = &memPending{m: map[string][]byte{}}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cluster{kv: kv, prefix: strings.TrimRight(cfg.Prefix, "/"), host: cfg.Host, timeout: cfg.Timeout,
		cooldown: cfg.Cooldown, pending: cfg.Pending, log: cfg.Log, ctx: ctx, cancel: cancel,
		nets: map[string]*Addresses{}}, nil
}

// Close stops the watches.
func (c *Cluster) Close() {
	c.cancel()
	c.wg.Wait()
}

// request bounds one call to etcd.
func (c *Cluster) request() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.timeout)
}

// etcdErr names etcd in an error of a request to it.
func etcdErr(what string, err error) error {
	return fmt.Errorf("%s: %w", what, etcdCause(err))
}

func etcdCause(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd did not answer in time (unreachable, or without quorum): %w", err)
	}
	return fmt.Errorf("etcd: %w", err)
}

// ErrOutcomeUnknown means that a write got no answer and that reading its
// key back got none either: it may or may not have committed.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// unknownErr says that what may or may not have happened, and how to find
// out: hint.
func unknownErr(what string, err error, hint string) error {
	return fmt.Errorf("%s: %w: %w; %s", what, ErrOutcomeUnknown, etcdCause(err), hint)
}

// readBack reads key after a write to it failed. The client does not retry
// a write it sent, and one that failed may have committed: only a read
// tells. It has a request of its own, as the write's has likely expired.
func (c *Cluster) readBack(key string) (Pair, error) {
	ctx, cancel := c.request()
	defer cancel()
	return c.kv.Get(ctx, key)
}

// A network record being removed is kept under this mark until its leases
// are known to be gone: allocations compare the record's value, so none
// can slip in meanwhile. A remove that stops half-way (etcd timed out,
// underlayd died) leaves the mark; any later remove of the name settles
// it: it finishes the removal, or restores the record if a host still
// has endpoints on the network.
var removing = []byte("removing:")

// Networks returns the global networks' records by name. Networks being
// removed are left out.
func (c *Cluster) Networks() (map[string][]byte, error) {
	recs, _, err := c.NetworksCreated()
	return recs, err
}

// NetworksCreated is Networks with the etcd revision at which each record
// was created: of two networks made at the same moment on two hosts, it
// tells which came first.
func (c *Cluster) NetworksCreated() (map[string][]byte, map[string]int64, error) {
	ctx, cancel := c.request()
	defer cancel()
	ps, _, err := c.kv.List(ctx, c.networkKey(""))
	if err != nil {
		return nil, nil, etcdErr("list global networks", err)
	}
	recs, created := map[string][]byte{}, map[string]int64{}
	for _, p := range ps {
		if !bytes.HasPrefix(p.Value, removing) {
			name := strings.TrimPrefix(p.Key, c.networkKey(""))
			recs[name], created[name] = p.Value, p.CreateRev
		}
	}
	return recs, created, nil
}

// CreateNetwork stores a global network's record, if the name is free.
func (c *Cluster) CreateNetwork(name string, rec []byte) error {
	what := "create global network " + name
	key := c.networkKey(name)
	ctx, cancel := c.request()
	defer cancel()
	ok, _, got, err := c.kv.Txn(ctx, []Cmp{Absent(key)}, []Op{Put(key, rec)}, []string{key})
	if err != nil {
		p, gerr := c.readBack(key)
		switch {
		case gerr != nil:
			return unknownErr(what, err, fmt.Sprintf("once etcd answers, `underlay network ls` shows whether %s was created "+
				"(`underlay network rm %s` removes it)", name, name))
		case !p.Exists():
			return etcdErr(what, err)
		case bytes.Equal(p.Value, rec):
			return nil // ours landed
		}
		ok, got = false, []Pair{p}
	}
	if ok {
		return nil
	}
	if bytes.HasPrefix(got[0].Value, removing) {
		return fmt.Errorf("global network %s is being removed, or its removal was interrupted; "+
			"`underlay network rm %s` finishes it: %w", name, name, ErrNetworkExists)
	}
	return fmt.Errorf("global network %s: %w", name, ErrNetworkExists)
}

// RemoveNetwork removes a global network whose record is rec, unless a
// host still holds one of its addresses; the error then names the hosts.
// A network found marked for removal by a remove that stopped half-way is
// removed (or restored, if in use) whatever rec is; rec nil removes only
// such a network, which Networks hides: ErrNetworkGone if there is none.
func (c *Cluster) RemoveNetwork(name string, rec []byte) error {
	what := "remove global network " + name
	again := fmt.Sprintf("once etcd answers, run `underlay network rm %s` again: it finishes the removal, "+
		"or says which hosts still have endpoints on the network", name)
	mark, err := c.markRemoving(name, rec, what, again)
	if err != nil {
		return err
	}
	hosts, err := c.holders(name)
	if err != nil {
		return c.restore(name, mark, etcdErr(what, err), again)
	}
	if len(hosts) > 0 {
		var names []string
		for h, n := range hosts {
			names = append(names, fmt.Sprintf("%s (%d)", h, n))
		}
		sort.Strings(names)
		return c.restore(name, mark, fmt.Errorf("global network %s has endpoints on host(s) %s; stop those containers first: %w",
			name, strings.Join(names, ", "), ErrNetworkInUse), again)
	}
	key := c.networkKey(name)
	ctx, cancel := c.request()
	defer cancel()
	// By revision, not value: a mark restored and put again by another
	// remove meanwhile may hide leases this one did not see.
	ok, _, got, err := c.kv.Txn(ctx, []Cmp{Unchanged(key, mark.ModRev)},
		[]Op{Del(key), DelPrefix(c.leasesPrefix(name))}, []string{key})
	if err != nil {
		p, gerr := c.readBack(key)
		switch {
		case gerr != nil:
			return unknownErr(what, err, again)
		case p.ModRev == mark.ModRev:
			return fmt.Errorf("%w; the network is left marked for removal (hidden, taking no new addresses): %s",
				etcdErr(what, err), again)
		}
		got = []Pair{p}
	} else if ok {
		return nil
	}
	if !got[0].Exists() {
		return nil // another remove finished it meanwhile
	}
	return fmt.Errorf("global network %s changed while being removed (another host removed or restored it meanwhile): "+
		"run `underlay network rm %s` again", name, name)
}

// markRemoving puts the removal mark on network name's record rec, and
// returns the marked key. A mark already there is taken over. rec nil
// only takes over a mark.
func (c *Cluster) markRemoving(name string, rec []byte, what, again string) (Pair, error) {
	key := c.networkKey(name)
	gone := fmt.Errorf("global network %s: %w", name, ErrNetworkGone)
	ctx, cancel := c.request()
	defer cancel()
	if rec == nil {
		p, err := c.kv.Get(ctx, key)
		if err != nil {
			return p, etcdErr(what, err)
		}
		if !bytes.HasPrefix(p.Value, removing) {
			return p, gone
		}
		c.log.Warn("finishing an interrupted removal of a global network", "network", name)
		return p, nil
	}
	marked := append(append([]byte{}, removing...), rec...)
	ok, rev, got, err := c.kv.Txn(ctx, []Cmp{Holds(key, rec)}, []Op{Put(key, marked)}, []string{key})
	if err != nil {
		p, gerr := c.readBack(key)
		switch {
		case gerr != nil:
			return p, unknownErr(what, err, again)
		case bytes.Equal(p.Value, rec):
			return p, etcdErr(what, err) // not marked: nothing changed
		}
		got = []Pair{p}
	} else if ok {
		return Pair{Key: key, Value: marked, CreateRev: rev, ModRev: rev}, nil
	}
	if !bytes.HasPrefix(got[0].Value, removing) {
		return got[0], gone
	}
	return got[0], nil
}

// holders counts, by host, the interfaces that hold leases of network
// name.
func (c *Cluster) holders(name string) (map[string]int, error) {
	ctx, cancel := c.request()
	defer cancel()
	ps, _, err := c.kv.List(ctx, c.leasesPrefix(name))
	if err != nil {
		return nil, err
	}
	hosts := map[string]int{}
	type iface struct{ host, namespace, container, ifname string }
	seen := map[iface]bool{} // a dual-stack interface has two leases
	for _, p := range ps {
		l, ok := decodeLease(p.Value)
		if k := (iface{l.Host, l.Namespace, l.Container, l.IfName}); ok && l.Released == "" && !seen[k] {
			seen[k] = true
			hosts[l.Host]++
		}
	}
	return hosts, nil
}

// restore puts back the record that mark hides, as the network is not
// removed after all: why says why. A restore that etcd does not confirm
// leaves the mark, and the error says how to settle it.
func (c *Cluster) restore(name string, mark Pair, why error, again string) error {
	key := c.networkKey(name)
	ctx, cancel := c.request()
	defer cancel()
	_, _, _, err := c.kv.Txn(ctx, []Cmp{Unchanged(key, mark.ModRev)}, []Op{Put(key, mark.Value[len(removing):])}, nil)
	if err == nil {
		return why // restored, or settled by another remove meanwhile
	}
	if p, gerr := c.readBack(key); gerr == nil && p.ModRev != mark.ModRev {
		return why
	}
	c.log.Error("global network left marked for removal", "network", name, "err", err)
	return fmt.Errorf("%w; the network is left marked for removal (hidden, taking no new addresses): %s", why, again)
}

// memPending keeps pending releases in memory (tests, and a daemon given
// no durable place).
type memPending struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (p *memPending) PutRelease(k string, v []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[k] = v
	return nil
}

func (p *memPending) DeleteRelease(k string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, k)
	return nil
}

func (p *memPending) Releases() (map[string][]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range p.m {
		out[k] = v
	}
	return out, nil
}

// parseAddr reads an owner key's value.
func parseAddr(b []byte) (netip.Addr, bool) {
	a, err := netip.ParseAddr(string(b))
	return a, err == nil
}

// LivenessKey is this host's key that says it is up.
func (c *Cluster) LivenessKey() string { return c.hostKey(c.host, "alive") }
