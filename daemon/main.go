// Command underlayd is underlay's daemon: it owns the kernel work (parents,
// container interfaces) and the state (networks, endpoints, leases, owned
// links), and serves the CLI and the hook on a unix socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/underlay/underlay/daemon/api"
	"github.com/underlay/underlay/daemon/link"
	"github.com/underlay/underlay/daemon/metrics"
	"github.com/underlay/underlay/daemon/network"
	"github.com/underlay/underlay/daemon/resolver"
	"github.com/underlay/underlay/daemon/server"
	"github.com/underlay/underlay/daemon/store"
	"github.com/underlay/underlay/events"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "underlayd:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "underlayd",
		Usage: "put containers straight on the physical network (macvlan, ipvlan, 802.1q)",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, EnvVars: []string{"UNDERLAY_SOCKET"}, Usage: "unix socket to serve the API on"},
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/underlay", EnvVars: []string{"UNDERLAY_STATE_DIR"}, Usage: "directory of the state database"},
			&cli.StringFlag{Name: "containerd-address", EnvVars: []string{"UNDERLAY_CONTAINERD_ADDRESS"}, Usage: "containerd socket to follow for container deletes (empty: none)"},
			&cli.StringFlag{Name: "socket-group", EnvVars: []string{"UNDERLAY_SOCKET_GROUP"}, Usage: "group allowed to use the socket besides root"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"UNDERLAY_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"UNDERLAY_LOG_FORMAT"}, Usage: "text (key=value) or json, one line per event"},
			&cli.StringFlag{Name: "metrics-address", EnvVars: []string{"UNDERLAY_METRICS_ADDRESS"}, Usage: "HOST:PORT to serve Prometheus /metrics, /healthz and /readyz on (empty: off), e.g. 127.0.0.1:9127"},
			&cli.StringFlag{Name: "resolv-conf", Value: "/etc/resolv.conf", EnvVars: []string{"UNDERLAY_RESOLV_CONF"}, Usage: "where the containers' DNS (127.0.0.11) sends names that are not containers'"},
		}, globalFlags()...),
		Action: run,
		// One line for a bad flag, as for every other error at start.
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%v (see 'underlayd --help')", err)
		},
	}
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.Args().First())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	logOpts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch c.String("log-format") {
	case "text":
		handler = slog.NewTextHandler(os.Stderr, logOpts)
	case "json":
		// A duration reads as in the text format ("1.234ms"), not as
		// integer nanoseconds: one key, one meaning, in both formats.
		logOpts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		handler = slog.NewJSONHandler(os.Stderr, logOpts)
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.String("log-format"))
	}
	log := slog.New(handler)
	// Every cluster flag, TLS file and member is checked before anything
	// is opened, bound or written: a bad one is refused at once.
	spec, err := parseCluster(c)
	if err != nil {
		return err
	}
	// A netlink socket kept open for the host's links, opened before any
	// goroutine enters a container's namespace.
	if err := link.OpenHostHandle(); err != nil {
		return err
	}
	defer link.CloseHostHandle()

	gid := -1
	if g := c.String("socket-group"); g != "" {
		grp, err := user.LookupGroup(g)
		if _, isID := strconv.Atoi(g); err != nil && isID == nil {
			grp, err = user.LookupGroupId(g) // a gid, as chown takes
		}
		if err != nil {
			return fmt.Errorf("--socket-group %s: %w", g, err)
		}
		gid, _ = strconv.Atoi(grp.Gid)
	}

	// Before anything is made: a start refused for its socket leaves no
	// state behind.
	if err := socketFree(c.String("socket")); err != nil {
		return err
	}
	// The metrics listener comes first: /healthz answers and /readyz
	// says "starting" while the state loads and reconciles.
	var mets *metrics.Metrics
	metricsAt := ""
	if addr := c.String("metrics-address"); addr != "" {
		mets = metrics.New()
		msrv, at, err := serveMetrics(addr, mets)
		if err != nil {
			return err
		}
		defer msrv.Close()
		metricsAt = at // the port the kernel chose for :0
	}
	cluster, err := spec.dial()
	if err != nil {
		return err
	}
	st, err := store.Open(c.String("state-dir"))
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts, leave, err := cluster.join(ctx, st, log, mets)
	if err != nil {
		return err
	}
	defer leave()
	if addr := c.String("containerd-address"); addr != "" {
		opts = append(opts, network.WithContainers(containerdFinder{events.Finder{Address: addr}}))
	}
	broker := &server.Broker{}
	opts = append(opts, network.WithObserver(broker))
	var mstore network.Store = st
	if mets != nil {
		broker.Dropped = mets.StreamDropped
		opts = append(opts, network.WithObserver(mets))
		mstore = metrics.TimedStore{Store: st, M: mets}
	}
	mgr, err := network.New(mstore, link.Host{}, log, opts...)
	if err != nil {
		return err
	}
	if mets != nil {
		mets.AddSource(mgr)
	}
	// Reconcile first (below), then serve 127.0.0.11 in the containers
	// that are still there.
	if _, err := os.Stat(c.String("resolv-conf")); err != nil {
		log.Warn("--resolv-conf not readable: on 127.0.0.11, names other than containers' go unanswered until it is",
			"file", c.String("resolv-conf"), "err", err)
	}
	dns := resolver.New(mgr, c.String("resolv-conf"))
	defer dns.Close()
	sock := c.String("socket")
	ln, err := listen(sock, gid)
	if err != nil {
		return err
	}
	defer os.Remove(sock)

	// Reconcile before serving, so a container deleted while underlayd was
	// down gives its addresses back before anyone asks for them.
	n, err := mgr.Reconcile()
	mgr.SetNameServer(dns)
	if err != nil {
		log.Error("reconcile at start failed", "err", err)
	} else if n > 0 {
		log.Info("reconciled at start", "released", n)
	}
	// Loading and the first reconcile decode and copy every stored
	// endpoint, and read every page of the database; hand that garbage and
	// those pages back now rather than carry them as RSS for the daemon's
	// life.
	debug.FreeOSMemory()
	if err := st.DropPages(); err != nil {
		log.Warn("database pages not released", "err", err)
	}
	// Both loops release endpoints, whose interfaces are deleted in the
	// background: they are joined at shutdown before waiting for that.
	var loops sync.WaitGroup
	defer func() {
		stop()
		loops.Wait()
		mgr.StopLeases()        // renewed at the next start where due
		mgr.StopAnnouncements() // second gratuitous ARPs still to come
		mgr.Wait()              // interfaces still being deleted after a detach
	}()
	loops.Add(1)
	go func() {
		defer loops.Done()
		select {
		case <-ctx.Done():
		case <-time.After(reconcileEvery):
			reconcileLoop(ctx, mgr, st, log)
		}
	}()
	loops.Add(1)
	go func() {
		defer loops.Done()
		// Host shims: restored now, and after every link event that
		// touches one or its parent. A lost subscription is retried.
		for ctx.Err() == nil {
			if err := mgr.WatchShims(ctx); err != nil {
				log.Warn("link events lost; host shims resync in 1 s", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
	if addr := c.String("containerd-address"); addr != "" {
		var state func(bool)
		if mets != nil {
			mets.FollowsContainerd()
			state = mets.ContainerdStream
		}
		loops.Add(1)
		go func() {
			defer loops.Done()
			runEvents(ctx, addr, mgr, log, state)
		}()
	}

	srv := &http.Server{
		Handler:           server.Handler(mgr, log, peerAuthorizer(gid), broker),
		ConnContext:       withPeer,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	// Streams of `underlay events` end at shutdown, or it would wait on
	// them.
	srv.RegisterOnShutdown(broker.Close)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	ready := []any{"socket", sock, "state", filepath.Join(c.String("state-dir"), store.FileName),
		"networks", len(mgr.List()), "endpoints", mgr.EndpointCount()}
	if metricsAt != "" {
		ready = append(ready, "metrics", metricsAt)
	}
	log.Info("underlayd ready", ready...)
	// The socket was listening before Serve: a client that connects now
	// is answered.
	if mets != nil {
		mets.SetReady()
	}
	if err := notify("READY=1"); err != nil {
		log.Warn("systemd not told that underlayd is ready", "err", err)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	_ = notify("STOPPING=1")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// listen creates the socket mode 0660, refusing to steal one that another
// daemon still answers on.
func listen(sock string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another underlayd is already serving %s", sock)
	}
	if err := socketFree(sock); err != nil {
		return nil, err
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", sock, err)
	}
	// The umask closes the window between bind and chmod.
	old := syscall.Umask(0o117)
	ln, err := net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(sock, 0, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chown socket to group %d: %w", gid, err)
		}
	}
	return ln, nil
}

// socketFree refuses a --socket path where something other than a socket
// is: only a socket is stale, and a mistyped path must not delete a file.
func socketFree(sock string) error {
	if fi, err := os.Lstat(sock); err == nil && fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("--socket %s: a %s is there, not a socket; underlayd removes only a stale socket", sock, fileKind(fi.Mode()))
	}
	return nil
}

// fileKind names what a mode says a file is, for an error.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	}
	return "file of mode " + m.Type().String()
}
