package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
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

// Target is --store and its TLS files, checked: the members to dial and
// how. Check makes one before anything is dialled or written, so that a
// malformed flag is refused at once, naming itself.
type Target struct {
	store     string
	endpoints []string
	tls       *tls.Config
}

// Check parses store (etcd://HOST:PORT[,HOST:PORT...]) and loads files.
func Check(store string, files TLSFiles) (*Target, error) {
	tc, err := files.config()
	if err != nil {
		return nil, err
	}
	eps, err := endpoints(store, tc != nil)
	if err != nil {
		return nil, err
	}
	return &Target{store: store, endpoints: eps, tls: tc}, nil
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
		if why := badMember(m); why != "" {
			return nil, fmt.Errorf("--store %q: member %q %s", store, m, why)
		}
		out = append(out, scheme+m)
	}
	return out, nil
}

// badMember says what is wrong with a member HOST:PORT, "" if nothing:
// the client would only find out by failing to connect, after the whole
// --etcd-timeout.
func badMember(m string) string {
	host, port, err := net.SplitHostPort(m)
	if err != nil || host == "" || port == "" {
		return "is not HOST:PORT"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Sprintf("has port %q: want a number from 1 to 65535", port)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Sprintf("has host %q: want a host name or an IP address", host)
		}
	}
	return ""
}

// config loads the TLS files, nil for none. Each file is read and checked
// here, so that a wrong one is named: etcd's own loader takes a file with
// no PEM in it as a CA that trusts nothing, and its errors name no file.
func (f TLSFiles) config() (*tls.Config, error) {
	if f == (TLSFiles{}) {
		return nil, nil
	}
	switch {
	case f.Cert != "" && f.Key == "":
		return nil, fmt.Errorf("--etcd-cert %s given without --etcd-key: give both, or neither", f.Cert)
	case f.Key != "" && f.Cert == "":
		return nil, fmt.Errorf("--etcd-key %s given without --etcd-cert: give both, or neither", f.Key)
	}
	if f.CA != "" {
		if _, _, err := readCerts("--etcd-cacert", f.CA); err != nil {
			return nil, err
		}
	}
	if f.Cert != "" {
		certPEM, _, err := readCerts("--etcd-cert", f.Cert)
		if err != nil {
			return nil, err
		}
		keyPEM, blocks, err := readPEM("--etcd-key", f.Key)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(blocks, func(b *pem.Block) bool { return strings.HasSuffix(b.Type, "PRIVATE KEY") }) {
			return nil, fmt.Errorf("--etcd-key %s: no private key in it (found %s)", f.Key, blockTypes(blocks))
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			if strings.Contains(err.Error(), "does not match") {
				return nil, fmt.Errorf("--etcd-cert %s and --etcd-key %s do not match: the key is not the certificate's", f.Cert, f.Key)
			}
			return nil, fmt.Errorf("--etcd-key %s: %s", f.Key, strings.TrimPrefix(err.Error(), "tls: "))
		}
	}
	info := transport.TLSInfo{TrustedCAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS (--etcd-cacert %s, --etcd-cert %s, --etcd-key %s): %w", f.CA, f.Cert, f.Key, err)
	}
	return tc, nil
}

// readPEM reads the PEM file path given by flag.
func readPEM(flag, path string) ([]byte, []*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	var blocks []*pem.Block
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		blocks = append(blocks, blk)
	}
	if len(blocks) == 0 {
		if len(bytes.TrimSpace(b)) == 0 {
			return nil, nil, fmt.Errorf("%s %s: the file is empty, want PEM", flag, path)
		}
		return nil, nil, fmt.Errorf("%s %s: not a PEM file", flag, path)
	}
	return b, blocks, nil
}

// readCerts reads a PEM file of certificates and checks that each parses.
func readCerts(flag, path string) ([]byte, []*x509.Certificate, error) {
	b, blocks, err := readPEM(flag, path)
	if err != nil {
		return nil, nil, err
	}
	var certs []*x509.Certificate
	for _, blk := range blocks {
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: certificate %d unreadable: %w", flag, path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("%s %s: no certificate in it (found %s)", flag, path, blockTypes(blocks))
	}
	return b, certs, nil
}

func blockTypes(blocks []*pem.Block) string {
	var ts []string
	for _, b := range blocks {
		if !slices.Contains(ts, b.Type) {
			ts = append(ts, b.Type)
		}
	}
	return strings.Join(ts, ", ")
}

// Dial checks store and files (see Check) and dials the cluster.
func Dial(store string, files TLSFiles, timeout time.Duration) (*Client, error) {
	t, err := Check(store, files)
	if err != nil {
		return nil, err
	}
	return t.Dial(timeout)
}

// Dial connects to the members and checks, within timeout, that the
// cluster answers. A cluster that does not is diagnosed on a connection
// of its own, begun half-way through timeout and ending with it, so that
// the whole check takes timeout, as its error says.
func (t *Target) Dial(timeout time.Duration) (*Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: t.endpoints, DialTimeout: timeout, TLS: t.tls, Logger: zap.NewNop(),
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", t.store, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	why := make(chan string, 1)
	probe := time.AfterFunc(timeout/2, func() { why <- diagnose(ctx, t.endpoints[0], t.tls) })
	defer probe.Stop()
	// A linearizable read needs a leader and a quorum: what every
	// allocation needs.
	_, err = c.Get(ctx, "health-check", clientv3.WithCountOnly())
	if err == nil {
		return &Client{c: c}, nil
	}
	c.Close()
	if !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("etcd at %s: %w", t.store, err)
	}
	if !probe.Stop() {
		if w := <-why; w != "" {
			return nil, fmt.Errorf("etcd at %s did not answer within %s: %s", t.store, timeout, w)
		}
	}
	return nil, fmt.Errorf("etcd at %s did not answer within %s (down, unreachable, without quorum, or not etcd)", t.store, timeout)
}

// diagnose says why a member does not answer, where a connection of its
// own tells before ctx ends: nothing listening, or TLS asked of one side
// only, or a certificate refused.
func diagnose(ctx context.Context, ep string, tc *tls.Config) string {
	hostport := ep[strings.Index(ep, "://")+3:]
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		if ctx.Err() != nil {
			return "" // no answer is all there is to say
		}
		return err.Error()
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancelled early: the pending handshake or read returns at once.
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })()
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
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
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
