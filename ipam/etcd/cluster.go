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
	if cfg.Host == "" || strings.ContainsAny(cfg.Host, "/ \t\n") {
		return nil, fmt.Errorf("host name %q: want a name without '/' or spaces", cfg.Host)
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
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: etcd did not answer in time (unreachable, or without quorum): %w", what, err)
	}
	return fmt.Errorf("%s: etcd: %w", what, err)
}

// A network record being removed is kept under this mark until its leases
// are known to be gone: allocations compare the record's value, so none
// can slip in meanwhile.
var removing = []byte("removing:")

// Networks returns the global networks' records by name.
func (c *Cluster) Networks() (map[string][]byte, error) {
	ctx, cancel := c.request()
	defer cancel()
	ps, _, err := c.kv.List(ctx, c.networkKey(""))
	if err != nil {
		return nil, etcdErr("list global networks", err)
	}
	out := map[string][]byte{}
	for _, p := range ps {
		if !bytes.HasPrefix(p.Value, removing) {
			out[strings.TrimPrefix(p.Key, c.networkKey(""))] = p.Value
		}
	}
	return out, nil
}

// CreateNetwork stores a global network's record, if the name is free.
func (c *Cluster) CreateNetwork(name string, rec []byte) error {
	ctx, cancel := c.request()
	defer cancel()
	key := c.networkKey(name)
	ok, _, _, err := c.kv.Txn(ctx, []Cmp{Absent(key)}, []Op{Put(key, rec)}, nil)
	if err != nil {
		// The put may have landed: our own record there means it did.
		if p, gerr := c.kv.Get(ctx, key); gerr == nil && bytes.Equal(p.Value, rec) {
			return nil
		}
		return etcdErr("create global network "+name, err)
	}
	if !ok {
		return fmt.Errorf("global network %s: %w", name, ErrNetworkExists)
	}
	return nil
}

// RemoveNetwork removes a global network whose record is rec, unless a
// host still holds one of its addresses; the error then names the hosts.
func (c *Cluster) RemoveNetwork(name string, rec []byte) error {
	ctx, cancel := c.request()
	defer cancel()
	key := c.networkKey(name)
	marked := append(append([]byte{}, removing...), rec...)
	ok, _, got, err := c.kv.Txn(ctx, []Cmp{Holds(key, rec)}, []Op{Put(key, marked)}, []string{key})
	if err != nil {
		return etcdErr("remove global network "+name, err)
	}
	if !ok && !(len(got) == 1 && bytes.Equal(got[0].Value, marked)) {
		return fmt.Errorf("global network %s: %w", name, ErrNetworkGone)
	}
	ps, _, err := c.kv.List(ctx, c.leasesPrefix(name))
	if err != nil {
		return etcdErr("remove global network "+name, err)
	}
	hosts := map[string]int{}
	for _, p := range ps {
		if l, ok := decodeLease(p.Value); ok && l.Released == "" {
			hosts[l.Host]++
		}
	}
	if len(hosts) > 0 {
		if _, _, _, err := c.kv.Txn(ctx, []Cmp{Holds(key, marked)}, []Op{Put(key, rec)}, nil); err != nil {
			c.log.Error("global network left marked for removal", "network", name, "err", err)
		}
		var names []string
		for h, n := range hosts {
			names = append(names, fmt.Sprintf("%s (%d)", h, n))
		}
		sort.Strings(names)
		return fmt.Errorf("global network %s has endpoints on host(s) %s; stop those containers first: %w",
			name, strings.Join(names, ", "), ErrNetworkInUse)
	}
	if _, _, _, err := c.kv.Txn(ctx, []Cmp{Holds(key, marked)}, []Op{Del(key), DelPrefix(c.leasesPrefix(name))}, nil); err != nil {
		return etcdErr("remove global network "+name, err)
	}
	return nil
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
