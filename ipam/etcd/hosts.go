package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// HostInfo is one host of the cluster as host ls shows it.
type HostInfo struct {
	Name      string
	Alive     bool
	LastSeen  string // RFC 3339: when the host last said it was up
	Endpoints int    // interfaces it holds addresses for
}

// info is the value of a host's info key, which carries no lease: it
// outlives the host, so that a gone host is known, and since when.
type info struct {
	LastSeen string `json:"last_seen"`
}

// Beat records that this host is up now.
func (c *Cluster) Beat() error {
	ctx, cancel := c.request()
	defer cancel()
	b, _ := json.Marshal(info{LastSeen: time.Now().UTC().Format(time.RFC3339)})
	key := c.hostKey(c.host, "info")
	if _, _, _, err := c.kv.Txn(ctx, nil, []Op{Put(key, b)}, nil); err != nil {
		return etcdErr("record this host's liveness", err)
	}
	return nil
}

// Hosts lists every host that is up, has been, or holds addresses.
func (c *Cluster) Hosts() ([]HostInfo, error) {
	ctx, cancel := c.request()
	defer cancel()
	hostsPrefix := c.prefix + "/" + version + "/hosts/"
	ps, _, err := c.kv.List(ctx, hostsPrefix)
	if err != nil {
		return nil, etcdErr("list hosts", err)
	}
	byName := map[string]*HostInfo{}
	get := func(name string) *HostInfo {
		if h, ok := byName[name]; ok {
			return h
		}
		h := &HostInfo{Name: name}
		byName[name] = h
		return h
	}
	for _, p := range ps {
		name, what, ok := strings.Cut(strings.TrimPrefix(p.Key, hostsPrefix), "/")
		if !ok {
			continue
		}
		h := get(name)
		switch what {
		case "alive":
			h.Alive = true
		case "info":
			var in info
			if json.Unmarshal(p.Value, &in) == nil {
				h.LastSeen = in.LastSeen
			}
		}
	}
	owners, _, err := c.kv.List(ctx, c.prefix+"/"+version+"/owners/")
	if err != nil {
		return nil, etcdErr("list hosts", err)
	}
	// An owner key is one address of one interface: a dual-stack one has
	// two, and counts once.
	seen := map[string]bool{}
	for _, p := range owners {
		rest := strings.TrimPrefix(p.Key, c.prefix+"/"+version+"/owners/")
		name, _, _ := strings.Cut(rest, "/")
		iface := rest[:max(strings.LastIndexByte(rest, '/'), 0)] // without the family
		if !seen[iface] {
			seen[iface] = true
			get(name).Endpoints++
		}
	}
	out := make([]HostInfo, 0, len(byName))
	for _, h := range byName {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ClaimName makes this host's name its own in the cluster, for good: the
// first machine and state dir (self) to join under it keep it, whether
// their underlayd is up or not, since its liveness key lapses with the
// process but its leases and containers may not. same says whether a
// recorded owner is this one. A name another owner has is refused: taking
// it would release that host's leases as if they were this one's. The
// name is free again once host reclaim has freed all its addresses.
func (c *Cluster) ClaimName(self []byte, same func(owner []byte) bool) error {
	key := c.hostKey(c.host, "owner")
	ctx, cancel := c.request()
	defer cancel()
	ok, _, got, err := c.kv.Txn(ctx, []Cmp{Absent(key)}, []Op{Put(key, self)}, []string{key})
	if err != nil {
		return etcdErr("claim host name "+c.host, err)
	}
	if ok || len(got) == 1 && same(got[0].Value) {
		return nil
	}
	owner := ""
	if len(got) == 1 {
		owner = string(got[0].Value)
	}
	return fmt.Errorf("host name %s belongs to another host (%s): %w; give this host its own --host-name, or, if that host is gone for good, "+
		"free its addresses with `underlay host reclaim %s` from another host, which frees the name too", c.host, owner, ErrNameTaken, c.host)
}

// ErrHostUp means a reclaim was asked of a host whose liveness key is
// there: its containers may be running.
var ErrHostUp = errors.New("host is up")

// ErrHostUnknown means a reclaim was asked of a host the cluster has never
// heard of: a typo, most likely.
var ErrHostUnknown = errors.New("no such host in the cluster")

// ErrBadHostName is what every refusal of CheckHostName is.
var ErrBadHostName = errors.New("not a valid host name")

type badHostName string

func (e badHostName) Error() string        { return string(e) }
func (e badHostName) Is(target error) bool { return target == ErrBadHostName }

// MaxHostName is the longest host name: a DNS name's.
const MaxHostName = 253

// CheckHostName says what is wrong with name as a host's name in the
// cluster, nil if nothing. A name is one element of the keys' paths,
// shown by host ls and typed to host reclaim: so no '/', no white space or
// control character, valid UTF-8, at most 253 bytes (a DNS name's most).
// Anything else a host ran with before this check stays a name, so that
// no upgrade strands a host's leases.
func CheckHostName(name string) error {
	switch {
	case name == "":
		return badHostName("empty")
	case len(name) > MaxHostName:
		return badHostName(fmt.Sprintf("%d characters: want at most %d", len(name), MaxHostName))
	case !utf8.ValidString(name):
		return badHostName("not UTF-8")
	}
	for _, r := range name {
		if r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return badHostName(fmt.Sprintf("%s is not allowed: a host name is one word, without '/'", strconv.QuoteRune(r)))
		}
	}
	return nil
}

// Reclaim frees the addresses that host holds, once it is gone: each only
// if answering (asked per network, all of its addresses at once) says
// nobody on the wire holds it, and by a compare on the lease key's
// revision, so that a lease changed meanwhile is left alone. It returns
// how many were freed and how many were kept (still answering, or not
// probed).
func (c *Cluster) Reclaim(host string, answering func(network string, addrs []netip.Addr) (map[netip.Addr]bool, error)) (freed, kept int, err error) {
	if err := CheckHostName(host); err != nil {
		// "a/b" would read another host's keys.
		return 0, 0, fmt.Errorf("host name %q: %w", host, err)
	}
	if host == c.host {
		return 0, 0, fmt.Errorf("host %s is this one: %w", host, ErrHostUp)
	}
	ctx, cancel := c.request()
	defer cancel()
	alive, err := c.kv.Get(ctx, c.hostKey(host, "alive"))
	if err != nil {
		return 0, 0, etcdErr("reclaim "+host, err)
	}
	if alive.Exists() {
		return 0, 0, fmt.Errorf("host %s: %w (its underlayd keeps its liveness key alive)", host, ErrHostUp)
	}
	owners, _, err := c.kv.List(ctx, c.ownersPrefix(host))
	if err != nil {
		return 0, 0, etcdErr("reclaim "+host, err)
	}
	if len(owners) == 0 {
		if err := c.known(ctx, host); err != nil {
			return 0, 0, err
		}
	}
	type item struct {
		owner Pair
		addr  netip.Addr
	}
	byNet := map[string][]item{}
	for _, p := range owners {
		f := strings.Split(strings.TrimPrefix(p.Key, c.ownersPrefix(host)), "/")
		a, ok := parseAddr(p.Value)
		if len(f) != 5 || !ok {
			continue
		}
		byNet[f[0]] = append(byNet[f[0]], item{p, a})
	}
	for network, items := range byNet {
		addrs := make([]netip.Addr, len(items))
		for i, it := range items {
			addrs[i] = it.addr
		}
		held, err := answering(network, addrs)
		if err != nil {
			c.log.Warn("addresses of a gone host not probed, so kept", "host", host, "network", network, "err", err)
			kept += len(items)
			continue
		}
		for _, it := range items {
			if held[it.addr] {
				c.log.Warn("address of a gone host still answers on the wire, so kept", "host", host, "network", network, "address", it.addr)
				kept++
				continue
			}
			ok, err := c.reclaimOne(host, network, it.owner, it.addr)
			switch {
			case err != nil:
				return freed, kept, err
			case ok:
				freed++
				c.log.Info("address of a gone host reclaimed", "host", host, "network", network, "address", it.addr)
			default:
				kept++
			}
		}
	}
	if kept == 0 {
		// Nothing of the host's is left: its name is free for another.
		dctx, dcancel := c.request()
		_, _, _, err := c.kv.Txn(dctx, nil, []Op{Del(c.hostKey(host, "owner"))}, nil)
		dcancel()
		if err != nil {
			c.log.Warn("reclaimed host's name not freed", "host", host, "err", err)
		}
	}
	return freed, kept, nil
}

// known is nil if the cluster has heard of host (it holds nothing, then),
// and ErrHostUnknown, with the hosts it knows, if not.
func (c *Cluster) known(ctx context.Context, host string) error {
	ps, _, err := c.kv.List(ctx, c.hostKey(host, ""))
	if err != nil {
		return etcdErr("reclaim "+host, err)
	}
	if len(ps) > 0 {
		return nil
	}
	hs, err := c.Hosts()
	if err != nil || len(hs) == 0 {
		return fmt.Errorf("host %s: %w", host, ErrHostUnknown)
	}
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	const most = 10
	if len(names) > most {
		names = append(names[:most], fmt.Sprintf("and %d more", len(hs)-most))
	}
	return fmt.Errorf("host %s: %w (known: %s; see underlay host ls)", host, ErrHostUnknown, strings.Join(names, ", "))
}

// reclaimOne frees one address of a gone host if its lease and owner key
// are as they were read.
func (c *Cluster) reclaimOne(host, network string, owner Pair, a netip.Addr) (bool, error) {
	ctx, cancel := c.request()
	defer cancel()
	lk := c.leaseKey(network, a)
	p, err := c.kv.Get(ctx, lk)
	if err != nil {
		return false, etcdErr("reclaim "+a.String(), err)
	}
	l, ok := decodeLease(p.Value)
	if !ok || l.Host != host || l.Released != "" {
		return false, nil
	}
	then := []Op{Del(lk), Del(owner.Key)}
	if c.cooldown > 0 {
		l.Released = time.Now().UTC().Format(time.RFC3339)
		then[0] = PutTTL(lk, l.encode(), int64((c.cooldown+time.Second-1)/time.Second))
	}
	done, _, _, err := c.kv.Txn(ctx, []Cmp{Unchanged(lk, p.ModRev), Unchanged(owner.Key, owner.ModRev)}, then, nil)
	if err != nil {
		return false, etcdErr("reclaim "+a.String(), err)
	}
	return done, nil
}
