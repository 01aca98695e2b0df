package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TLSFiles are the PEM files of a TLS connection to etcd; all empty means
// plain TCP.
type TLSFiles struct {
	CA, Cert, Key string
}

// Client is KV on a real etcd cluster.
type Client struct {
	c *clientv3.Client
}

// endpoints parses --store: etcd://HOST:PORT[,HOST:PORT...]. With TLS
// files the members are reached over https.
func endpoints(store string, secure bool) ([]string, error) {
	rest, ok := strings.CutPrefix(store, "etcd://")
	if !ok || rest == "" {
		return nil, fmt.Errorf("--store %q: want etcd://HOST:PORT[,HOST:PORT...]", store)
	}
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	var out []string
	for _, m := range strings.Split(rest, ",") {
		host, port, err := net.SplitHostPort(m)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("--store %q: member %q is not HOST:PORT", store, m)
		}
		out = append(out, scheme+m)
	}
	return out, nil
}

// Dial connects to the members of store and checks, within timeout, that
// the cluster answers.
func Dial(store string, files TLSFiles, timeout time.Duration) (*Client, error) {
	secure := files != TLSFiles{}
	eps, err := endpoints(store, secure)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if secure {
		info := transport.TLSInfo{TrustedCAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key}
		if tc, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: timeout, TLS: tc, Logger: zap.NewNop(),
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", store, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// A linearizable read needs a leader and a quorum: what every
	// allocation needs.
	if _, err := c.Get(ctx, "health-check", clientv3.WithCountOnly()); err != nil {
		c.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			if why := diagnose(eps[0], tc, timeout); why != "" {
				return nil, fmt.Errorf("etcd at %s did not answer within %s: %s", store, timeout, why)
			}
			return nil, fmt.Errorf("etcd at %s did not answer within %s (down, unreachable, without quorum, or not etcd)", store, timeout)
		}
		return nil, fmt.Errorf("etcd at %s: %w", store, err)
	}
	return &Client{c: c}, nil
}

// diagnose says why a member does not answer, where a connection of its
// own tells: nothing listening, or TLS asked of one side only, or a
// certificate refused.
func diagnose(ep string, tc *tls.Config, timeout time.Duration) string {
	hostport := ep[strings.Index(ep, "://")+3:]
	conn, err := net.DialTimeout("tcp", hostport, timeout)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if tc == nil {
		probe := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
		if probe.Handshake() == nil {
			return "the member speaks TLS: give --etcd-cacert, and --etcd-cert and --etcd-key if it asks for a client certificate"
		}
		return ""
	}
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(hostport)
	}
	c := tls.Client(conn, cfg)
	err = c.Handshake()
	if err == nil {
		// TLS 1.3 refuses a missing client certificate after the
		// handshake.
		if _, rerr := c.Read(make([]byte, 1)); rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
			err = rerr
		}
	}
	if err == nil {
		return ""
	}
	why := "tls: " + strings.TrimPrefix(err.Error(), "tls: ")
	if strings.Contains(why, "remote error") {
		why += " (the member refused this host's client certificate, or wants one: --etcd-cert and --etcd-key)"
	}
	return why
}

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }

// ClusterID is the etcd cluster's id.
func (cl *Client) ClusterID(ctx context.Context) (uint64, error) {
	r, err := cl.c.Get(ctx, "health-check", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return r.Header.ClusterId, nil
}

func pairOf(kv interface {
	GetKey() []byte
	GetValue() []byte
	GetCreateRevision() int64
	GetModRevision() int64
}) Pair {
	return Pair{Key: string(kv.GetKey()), Value: kv.GetValue(), CreateRev: kv.GetCreateRevision(), ModRev: kv.GetModRevision()}
}

func (cl *Client) Get(ctx context.Context, key string) (Pair, error) {
	r, err := cl.c.Get(ctx, key)
	if err != nil || len(r.Kvs) == 0 {
		return Pair{Key: key}, err
	}
	return pairOf(r.Kvs[0]), nil
}

func (cl *Client) List(ctx context.Context, prefix string) ([]Pair, int64, error) {
	r, err := cl.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	out := make([]Pair, len(r.Kvs))
	for i, kv := range r.Kvs {
		out[i] = pairOf(kv)
	}
	return out, r.Header.Revision, nil
}

func (cl *Client) Txn(ctx context.Context, ifs []Cmp, then []Op, reads []string) (bool, int64, []Pair, error) {
	cmps := make([]clientv3.Cmp, len(ifs))
	for i, c := range ifs {
		switch {
		case c.ByValue:
			cmps[i] = clientv3.Compare(clientv3.Value(c.Key), "=", string(c.Value))
		case c.ModRev == 0:
			cmps[i] = clientv3.Compare(clientv3.CreateRevision(c.Key), "=", 0)
		default:
			cmps[i] = clientv3.Compare(clientv3.ModRevision(c.Key), "=", c.ModRev)
		}
	}
	ops := make([]clientv3.Op, len(then))
	for i, op := range then {
		switch {
		case op.Delete && op.Prefix:
			ops[i] = clientv3.OpDelete(op.Key, clientv3.WithPrefix())
		case op.Delete:
			ops[i] = clientv3.OpDelete(op.Key)
		case op.TTL > 0:
			l, err := cl.c.Grant(ctx, op.TTL)
			if err != nil {
				return false, 0, nil, err
			}
			ops[i] = clientv3.OpPut(op.Key, string(op.Value), clientv3.WithLease(l.ID))
		default:
			ops[i] = clientv3.OpPut(op.Key, string(op.Value))
		}
	}
	els := make([]clientv3.Op, len(reads))
	for i, k := range reads {
		els[i] = clientv3.OpGet(k)
	}
	r, err := cl.c.Txn(ctx).If(cmps...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return false, 0, nil, err
	}
	if r.Succeeded {
		return true, r.Header.Revision, nil, nil
	}
	got := make([]Pair, len(reads))
	for i, res := range r.Responses {
		got[i] = Pair{Key: reads[i]}
		if rr := res.GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			got[i] = pairOf(rr.Kvs[0])
		}
	}
	return false, 0, got, nil
}

func (cl *Client) Watch(ctx context.Context, prefix string, rev int64) <-chan []Event {
	out := make(chan []Event)
	wch := cl.c.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	go func() {
		defer close(out)
		for r := range wch {
			if r.Err() != nil || r.Canceled {
				return
			}
			evs := make([]Event, len(r.Events))
			for i, e := range r.Events {
				evs[i] = Event{Key: string(e.Kv.Key), Value: e.Kv.Value, ModRev: e.Kv.ModRevision,
					Delete: e.Type == clientv3.EventTypeDelete}
			}
			select {
			case out <- evs:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

var _ KV = (*Client)(nil)

// ErrNameTaken means another underlayd holds this host's liveness key.
var ErrNameTaken = errors.New("host name in use by another underlayd")

// Live puts key with value under a lease of ttl seconds, keeps it alive
// until ctx ends and then revokes it, so that the key says the host is up
// exactly while it is. A key held under another lease is refused, unless
// ours says its value is this host's own earlier run (a crash less than
// ttl ago). A lease lost while etcd was away is put back when it returns.
// The channel closes once the lease is revoked, after ctx ends.
func (cl *Client) Live(ctx context.Context, key string, value []byte, ttl int64, ours func(old []byte) bool, log *slog.Logger) (<-chan struct{}, error) {
	id, err := cl.claimLive(ctx, key, value, ttl, ours)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ch, err := cl.c.KeepAlive(ctx, id)
			if err == nil {
				for range ch {
				}
			}
			if ctx.Err() != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, _ = cl.c.Revoke(rctx, id)
				cancel()
				return
			}
			log.Warn("liveness lease lost; putting it back", "key", key, "err", err)
			for ctx.Err() == nil {
				if id, err = cl.claimLive(ctx, key, value, ttl, ours); err == nil {
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
	return done, nil
}

func (cl *Client) claimLive(ctx context.Context, key string, value []byte, ttl int64, ours func([]byte) bool) (clientv3.LeaseID, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := cl.c.Grant(rctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("liveness lease: etcd: %w", err)
	}
	put := clientv3.OpPut(key, string(value), clientv3.WithLease(l.ID))
	r, err := cl.c.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(put).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, fmt.Errorf("liveness key: etcd: %w", err)
	}
	if r.Succeeded {
		return l.ID, nil
	}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && ours(kvs[0].Value) {
		r, err = cl.c.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).Then(put).Commit()
		if err == nil && r.Succeeded {
			return l.ID, nil
		}
	}
	_, _ = cl.c.Revoke(rctx, l.ID)
	held := ""
	if len(kvs) > 0 {
		held = string(kvs[0].Value)
	}
	return 0, fmt.Errorf("%s is held (%s): %w; give each host its own --host-name", key, held, ErrNameTaken)
}
