package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/metrics"
	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/daemon/store"
	"github.com/underlay/underlay/ipam"
	"github.com/underlay/underlay/ipam/etcd"
)

// livenessTTL is how long etcd keeps a host's liveness key after it last
// heard from the host.
const livenessTTL = 10

// heartbeatEvery is how often a host records when it was last up.
const heartbeatEvery = 15 * time.Second

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "store", EnvVars: []string{"UNDERLAY_STORE"}, Usage: "etcd://HOST:PORT[,HOST:PORT...]: the cluster that holds global networks (empty: none)"},
		&cli.StringFlag{Name: "etcd-cacert", EnvVars: []string{"UNDERLAY_ETCD_CACERT"}, Usage: "CA of the etcd members' certificates (TLS)"},
		&cli.StringFlag{Name: "etcd-cert", EnvVars: []string{"UNDERLAY_ETCD_CERT"}, Usage: "client certificate for etcd"},
		&cli.StringFlag{Name: "etcd-key", EnvVars: []string{"UNDERLAY_ETCD_KEY"}, Usage: "key of the client certificate"},
		&cli.StringFlag{Name: "etcd-prefix", Value: "/underlay", EnvVars: []string{"UNDERLAY_ETCD_PREFIX"}, Usage: "prefix of every key underlay writes in etcd"},
		&cli.DurationFlag{Name: "etcd-timeout", Value: 2 * time.Second, EnvVars: []string{"UNDERLAY_ETCD_TIMEOUT"}, Usage: "bound of each request to etcd: an attach to a global network fails after it"},
		&cli.StringFlag{Name: "host-name", EnvVars: []string{"UNDERLAY_HOST_NAME"}, Usage: "this host's name in the cluster (default: the hostname)"},
		&cli.DurationFlag{Name: "release-cooldown", Value: 30 * time.Second, EnvVars: []string{"UNDERLAY_RELEASE_COOLDOWN"}, Usage: "how long a released global address rests before another host may take it"},
		&cli.StringSliceFlag{Name: "parent", EnvVars: []string{"UNDERLAY_PARENTS"}, Usage: "NETWORK=IFNAME: this host's parent of a global network whose record names another (repeatable)"},
		&cli.DurationFlag{Name: "reclaim-after", Value: 10 * time.Minute, EnvVars: []string{"UNDERLAY_RECLAIM_AFTER"}, Usage: "free a gone host's addresses (those nobody answers for on the wire) once it has been gone this long; 0: only by underlay host reclaim"},
	}
}

// clusterFlags are --store and its companions, checked, with a
// connection to etcd that answered.
type clusterFlags struct {
	client       *etcd.Client
	reclaimAfter time.Duration
	cfg          etcd.Config
	parents      map[string]string
	addr         string
	stateDir     string
}

// clusterSpec is the cluster flags, checked, before anything is dialled.
type clusterSpec struct {
	target       *etcd.Target
	reclaimAfter time.Duration
	cfg          etcd.Config
	parents      map[string]string
	addr         string
	stateDir     string
}

// clusterOnly are the flags that mean something only with --store.
var clusterOnly = []string{"etcd-cacert", "etcd-cert", "etcd-key", "etcd-prefix", "etcd-timeout", "host-name", "release-cooldown", "parent", "reclaim-after"}

// given says whether flag f was given a value, on the command line or
// in the environment; an empty string (UNDERLAY_HOST_NAME= in an
// environment file) is none.
func given(c *cli.Context, f string) bool {
	if !c.IsSet(f) {
		return false
	}
	switch f {
	case "parent", "etcd-timeout", "release-cooldown", "reclaim-after":
		return true
	}
	return c.String(f) != ""
}

// parseCluster checks the cluster flags, each value whether or not
// --store is given, and reads the TLS files, touching nothing: a bad flag
// is refused at once, before the daemon makes any state. It returns nil
// without --store, and refuses a cluster flag given without it.
func parseCluster(c *cli.Context) (*clusterSpec, error) {
	parents, err := parseParents(c.StringSlice("parent"))
	if err != nil {
		return nil, err
	}
	prefix := c.String("etcd-prefix")
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "//") {
		return nil, fmt.Errorf("--etcd-prefix %q: want an absolute key path like /underlay, without a trailing /", prefix)
	}
	timeout := c.Duration("etcd-timeout")
	if timeout <= 0 {
		return nil, fmt.Errorf("--etcd-timeout %s: want a positive duration", timeout)
	}
	if cd := c.Duration("release-cooldown"); cd < 0 {
		return nil, fmt.Errorf("--release-cooldown %s: want 0 or more", cd)
	}
	if ra := c.Duration("reclaim-after"); ra < 0 {
		return nil, fmt.Errorf("--reclaim-after %s: want 0 (only by hand) or more", ra)
	}
	host := c.String("host-name")
	if host != "" {
		if err := etcd.CheckHostName(host); err != nil {
			return nil, fmt.Errorf("--host-name %s: %w", quoteHost(host), err)
		}
	}
	addr := c.String("store")
	if addr == "" {
		var extra []string
		for _, f := range clusterOnly {
			if given(c, f) {
				extra = append(extra, "--"+f)
			}
		}
		switch len(extra) {
		case 0:
			return nil, nil
		case 1:
			return nil, fmt.Errorf("%s needs --store etcd://HOST:PORT: it is a flag of global networks", extra[0])
		}
		return nil, fmt.Errorf("%s need --store etcd://HOST:PORT: they are flags of global networks", strings.Join(extra, ", "))
	}
	target, err := etcd.Check(addr, etcd.TLSFiles{CA: c.String("etcd-cacert"), Cert: c.String("etcd-cert"), Key: c.String("etcd-key")})
	if err != nil {
		return nil, err
	}
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("--host-name not given and the hostname unknown: %w", err)
		}
		if err := etcd.CheckHostName(host); err != nil {
			return nil, fmt.Errorf("--host-name not given, and the hostname %s will not do (%w): give --host-name", quoteHost(host), err)
		}
	}
	return &clusterSpec{target: target, parents: parents, addr: addr, stateDir: c.String("state-dir"), reclaimAfter: c.Duration("reclaim-after"),
		cfg: etcd.Config{Prefix: prefix, Host: host, Timeout: timeout, Cooldown: c.Duration("release-cooldown")}}, nil
}

// quoteHost quotes a host name for an error, cut short if it is too
// long to read.
func quoteHost(h string) string {
	if len(h) > 40 {
		return fmt.Sprintf("%q...", h[:40])
	}
	return fmt.Sprintf("%q", h)
}

// dial connects to --store, before anything is written: an etcd that does
// not answer leaves no state behind. A nil spec (no --store) gives nil.
func (s *clusterSpec) dial() (*clusterFlags, error) {
	if s == nil {
		return nil, nil
	}
	client, err := s.target.Dial(s.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &clusterFlags{client: client, parents: s.parents, addr: s.addr, stateDir: s.stateDir, reclaimAfter: s.reclaimAfter, cfg: s.cfg}, nil
}

// join starts this host's part in the cluster: its liveness key, and the
// global networks' drivers, whose pending releases st keeps.
// With mets, its requests to etcd and its pending releases are measured.
func (f *clusterFlags) join(ctx context.Context, st *store.Store, log *slog.Logger, mets *metrics.Metrics) ([]network.Option, func(), error) {
	if f == nil {
		return nil, func() {}, nil
	}
	if err := f.sameCluster(st); err != nil {
		f.client.Close()
		return nil, nil, err
	}
	cfg := f.cfg
	cfg.Pending, cfg.Log = st, log
	var kv etcd.KV = f.client
	if mets != nil {
		kv = mets.TimeEtcd(kv, func() int {
			rs, _ := st.Releases()
			return len(rs)
		})
	}
	cluster, err := etcd.New(kv, cfg)
	if err != nil {
		f.client.Close()
		return nil, nil, err
	}
	self := liveness{Machine: machineID(), State: f.stateDir, PID: os.Getpid(), Started: time.Now().UTC().Format(time.RFC3339)}
	val, _ := json.Marshal(self)
	ours := func(old []byte) bool {
		var o liveness
		return json.Unmarshal(old, &o) == nil && o.Machine == self.Machine && o.State == self.State
	}
	// The name first: a lapsed liveness key does not make another host's
	// name this one's (its leases would be released as unbacked here).
	owner, _ := json.Marshal(liveness{Machine: self.Machine, State: self.State})
	if err := cluster.ClaimName(owner, ours); err != nil {
		cluster.Close()
		f.client.Close()
		return nil, nil, err
	}
	lctx, stopLive := context.WithCancel(ctx)
	alive, err := f.client.Live(lctx, cluster.LivenessKey(), val, livenessTTL, ours, log)
	if err != nil {
		stopLive()
		cluster.Close()
		f.client.Close()
		return nil, nil, err
	}
	log.Info("joined the cluster", "store", f.addr, "host", cfg.Host, "prefix", cfg.Prefix)
	bctx, stopBeat := context.WithCancel(ctx)
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		beat(bctx, cluster, log)
	}()
	leave := func() {
		stopBeat()
		<-beating
		stopLive()
		<-alive // revoked: host ls says gone at once
		cluster.Close()
		f.client.Close()
	}
	return []network.Option{network.WithGlobal(globalNetworks{cluster}, f.parents, f.reclaimAfter)}, leave, nil
}

// sameCluster refuses an etcd cluster other than the one whose global
// networks this host's state holds, which would find none of its leases;
// with none held, the host may move, and the cluster it joins is recorded.
func (f *clusterFlags) sameCluster(st *store.Store) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	defer cancel()
	id, err := f.client.ClusterID(ctx)
	if err != nil {
		return fmt.Errorf("etcd at %s: %w", f.addr, err)
	}
	got := strconv.FormatUint(id, 16)
	was, err := st.Cluster()
	if err != nil {
		return err
	}
	if was != "" && was != got {
		nets, err := st.Networks()
		if err != nil {
			return err
		}
		var globals []string
		for _, n := range nets {
			if n.Scope == "global" {
				globals = append(globals, n.Name)
			}
		}
		if len(globals) > 0 {
			return fmt.Errorf("etcd at %s is cluster %s, but this host's global networks (%s) are in cluster %s: point --store at that cluster",
				f.addr, got, strings.Join(globals, ", "), was)
		}
	}
	if was == got {
		return nil
	}
	return st.SetCluster(got)
}

// liveness is the value of a host's liveness key: enough to tell this
// host's own earlier run (the state directory's lock says it is gone)
// from another host that was given the same name.
type liveness struct {
	Machine string `json:"machine_id"`
	State   string `json:"state_dir"`
	PID     int    `json:"pid,omitempty"`
	Started string `json:"started,omitempty"`
}

func machineID() string {
	b, _ := os.ReadFile("/etc/machine-id")
	return strings.TrimSpace(string(b))
}

func parseParents(vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		name, ifname, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--parent %q: want NETWORK=IFNAME", v)
		}
		if err := link.ValidIfName(ifname); err != nil {
			return nil, fmt.Errorf("--parent %q: %w", v, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--parent %s given twice", name)
		}
		out[name] = ifname
	}
	return out, nil
}

// globalNetworks adapts the cluster to the manager: its driver as an
// AddressDriver, its refusals as the manager's sentinels.
type globalNetworks struct{ c *etcd.Cluster }

func (g globalNetworks) Networks() (map[string][]byte, error) { return g.c.Networks() }

func (g globalNetworks) NetworksCreated() (map[string][]byte, map[string]int64, error) {
	return g.c.NetworksCreated()
}

func (g globalNetworks) CreateNetwork(name string, rec []byte) error {
	return meaning(g.c.CreateNetwork(name, rec))
}

func (g globalNetworks) RemoveNetwork(name string, rec []byte) error {
	return meaning(g.c.RemoveNetwork(name, rec))
}

func (g globalNetworks) Addresses(name string, rec []byte, pools []ipam.Pool) (network.AddressDriver, error) {
	d, err := g.c.Addresses(name, rec, pools)
	if err != nil {
		return nil, err
	}
	return globalAddresses{d}, nil
}

// globalAddresses is a global network's driver whose refusals carry the
// manager's sentinels: a network removed on another host meanwhile is
// not found, not a failure of underlayd's.
type globalAddresses struct{ *etcd.Addresses }

func (g globalAddresses) Claim(o ipam.Owner, a netip.Addr) (ipam.Pool, error) {
	p, err := g.Addresses.Claim(o, a)
	return p, meaning(err)
}

func (g globalAddresses) Allocate(o ipam.Owner, family int) (netip.Addr, ipam.Pool, error) {
	a, p, err := g.Addresses.Allocate(o, family)
	return a, p, meaning(err)
}

func (g globalNetworks) Hosts() ([]api.Host, error) {
	hs, err := g.c.Hosts()
	out := make([]api.Host, len(hs))
	for i, h := range hs {
		out[i] = api.Host{Name: h.Name, Alive: h.Alive, LastSeen: h.LastSeen, Endpoints: h.Endpoints}
	}
	return out, err
}

func (g globalNetworks) Reclaim(host string, answering func(string, []netip.Addr) (map[netip.Addr]bool, error)) (int, int, error) {
	freed, kept, err := g.c.Reclaim(host, answering)
	return freed, kept, meaning(err)
}

// beat records every heartbeatEvery that this host is up, until ctx ends
// and once more then, so that host ls says since when a host is gone.
func beat(ctx context.Context, c *etcd.Cluster, log *slog.Logger) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		if err := c.Beat(); err != nil {
			log.Warn("heartbeat not recorded", "err", err)
		}
		select {
		case <-ctx.Done():
			_ = c.Beat()
			return
		case <-t.C:
		}
	}
}

// meaning gives a cluster's refusal the manager's sentinel of the same
// meaning, keeping its text.
func meaning(err error) error {
	for _, m := range []struct{ from, to error }{
		{etcd.ErrNetworkExists, network.ErrExists},
		{etcd.ErrNetworkInUse, network.ErrInUse},
		{etcd.ErrNetworkGone, network.ErrNotFound},
		{etcd.ErrHostUp, network.ErrInUse},
		{etcd.ErrHostUnknown, network.ErrNotFound},
		{etcd.ErrBadHostName, network.ErrInvalid},
	} {
		if errors.Is(err, m.from) {
			return &meant{err, m.to}
		}
	}
	return err
}

type meant struct{ err, kind error }

func (e *meant) Error() string        { return e.err.Error() }
func (e *meant) Unwrap() error        { return e.err }
func (e *meant) Is(target error) bool { return target == e.kind }
