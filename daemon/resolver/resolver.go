// Package resolver is underlay's embedded DNS server, as Docker's: it
// answers on 127.0.0.11:53 (UDP and TCP) inside every attached container's
// network namespace. A container's name resolves to its addresses for the
// containers that share a network with it, and only for those; other names
// go to the host's resolvers (resolv.conf, read again when it changes).
package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/underlay/underlay/daemon/link"
)

// Addr is where the resolver listens inside each container.
var Addr = netip.MustParseAddrPort("127.0.0.11:53")

// Names answers for the containers: the addresses that name has on the
// networks of the containers in the asking network namespace (by inode;
// a pod's containers share one). known reports whether the name is a
// container's at all, so that a single label nobody has gets NXDOMAIN
// rather than a trip upstream.
type Names interface {
	Resolve(netns uint64, name string) (addrs []netip.Addr, known bool)
}

// Resolver serves every container's 127.0.0.11.
type Resolver struct {
	names      Names
	resolvConf string

	mu      sync.Mutex
	servers map[uint64]*server // by network namespace inode

	upMu     sync.Mutex
	upstream []string
	upMtime  time.Time
	upRead   time.Time
}

type server struct{ udp, tcp *dns.Server }

// New makes a resolver that forwards to the servers in resolvConf.
func New(names Names, resolvConf string) *Resolver {
	return &Resolver{names: names, resolvConf: resolvConf, servers: map[uint64]*server{}}
}

// Serve starts answering inside netns; a second call for the same
// namespace does nothing. It brings the loopback interface up, as every
// runtime does, since 127.0.0.11 lives there.
func (r *Resolver) Serve(netns *link.Netns) error {
	key := netns.Inode
	// A nil entry marks a server being made: the namespace work runs
	// outside the lock, so that attaches into different namespaces do
	// not queue behind each other.
	r.mu.Lock()
	if _, ok := r.servers[key]; ok {
		r.mu.Unlock()
		return nil
	}
	r.servers[key] = nil
	r.mu.Unlock()
	s, err := r.listen(netns)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		delete(r.servers, key)
		return err
	}
	if _, ok := r.servers[key]; !ok { // stopped meanwhile
		go s.shutdown()
		return nil
	}
	r.servers[key] = s
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	return nil
}

func (s *server) shutdown() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
}

// listen opens the sockets in netns and makes the servers, not started.
// Go's net package opens them on the calling thread, which Do has moved
// into netns: no file descriptors to duplicate and adopt afterwards.
func (r *Resolver) listen(netns *link.Netns) (*server, error) {
	key := netns.Inode
	var pc net.PacketConn
	var ln net.Listener
	err := netns.Do(func() error {
		var err error
		udp := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			// 127.0.0.11 is lo's: lo must be up before the bind. The
			// socket of a server stopped a moment ago in this namespace
			// may not be closed yet (Stop closes in the background):
			// SO_REUSEADDR lets this one bind beside it.
			var upErr error
			err := c.Control(func(fd uintptr) {
				if upErr = loopbackUp(int(fd)); upErr == nil {
					upErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				}
			})
			if err != nil {
				return err
			}
			return upErr
		}}
		if pc, err = udp.ListenPacket(context.Background(), "udp4", Addr.String()); err != nil {
			return err
		}
		// Go's TCP listeners set SO_REUSEADDR: a server stopped a moment
		// ago in this namespace does not hold the port.
		if ln, err = net.Listen("tcp4", Addr.String()); err != nil {
			pc.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("DNS on %s in network namespace %d: %w", Addr, key, err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { r.answer(w, q, key) })
	return &server{udp: &dns.Server{PacketConn: pc, Handler: h}, tcp: &dns.Server{Listener: ln, Handler: h}}, nil
}

// Stop stops answering in the namespace of that inode. The sockets close
// in the background: a socket holds its namespace, so they must go, but
// the caller may hold a lock that a query in flight waits for.
func (r *Resolver) Stop(inode uint64) {
	key := inode
	r.mu.Lock()
	s := r.servers[key]
	delete(r.servers, key)
	r.mu.Unlock()
	if s != nil {
		go s.shutdown()
	}
}

// Close stops every server.
func (r *Resolver) Close() {
	r.mu.Lock()
	all := r.servers
	r.servers = map[uint64]*server{}
	r.mu.Unlock()
	for _, s := range all {
		if s != nil {
			s.shutdown()
		}
	}
}

// answer answers a container's name from the table, and forwards the
// rest.
func (r *Resolver) answer(w dns.ResponseWriter, q *dns.Msg, netns uint64) {
	if len(q.Question) != 1 {
		reply := new(dns.Msg)
		reply.SetRcode(q, dns.RcodeFormatError)
		_ = w.WriteMsg(reply)
		return
	}
	question := q.Question[0]
	name := strings.ToLower(strings.TrimSuffix(question.Name, "."))
	addrs, known := r.names.Resolve(netns, name)
	if len(addrs) > 0 || known || (!strings.Contains(name, ".") && question.Qclass == dns.ClassINET) {
		reply := new(dns.Msg)
		reply.SetReply(q)
		reply.Authoritative = true
		reply.RecursionAvailable = true
		if len(addrs) == 0 {
			reply.Rcode = dns.RcodeNameError
		}
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: question.Name, Class: dns.ClassINET, Ttl: 10}
			switch {
			case a.Is4() && (question.Qtype == dns.TypeA || question.Qtype == dns.TypeANY):
				hdr.Rrtype = dns.TypeA
				reply.Answer = append(reply.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case a.Is6() && (question.Qtype == dns.TypeAAAA || question.Qtype == dns.TypeANY):
				hdr.Rrtype = dns.TypeAAAA
				reply.Answer = append(reply.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
		_ = w.WriteMsg(reply)
		return
	}
	r.forward(w, q)
}

// forward passes q to the host's resolvers, first answer wins.
func (r *Resolver) forward(w dns.ResponseWriter, q *dns.Msg) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
	for _, up := range r.servers_() {
		if resp, _, err := c.Exchange(q, up); err == nil {
			_ = w.WriteMsg(resp)
			return
		}
	}
	reply := new(dns.Msg)
	reply.SetRcode(q, dns.RcodeServerFailure)
	_ = w.WriteMsg(reply)
}

// servers_ is the upstream list, read again from resolv.conf when its
// modification time changes (looked at once every 2 s at most).
func (r *Resolver) servers_() []string {
	r.upMu.Lock()
	defer r.upMu.Unlock()
	if time.Since(r.upRead) < 2*time.Second && r.upRead != (time.Time{}) {
		return r.upstream
	}
	r.upRead = time.Now()
	fi, err := os.Stat(r.resolvConf)
	if err != nil || fi.ModTime().Equal(r.upMtime) {
		return r.upstream
	}
	cfg, err := dns.ClientConfigFromFile(r.resolvConf)
	if err != nil {
		return r.upstream
	}
	r.upMtime = fi.ModTime()
	r.upstream = nil
	for _, s := range cfg.Servers {
		if a, err := netip.ParseAddr(s); err == nil && a == Addr.Addr() {
			continue // ourselves: a loop
		}
		r.upstream = append(r.upstream, net.JoinHostPort(s, cfg.Port))
	}
	return r.upstream
}

// loopbackUp brings lo up in the socket's namespace through the socket
// itself (SIOCGIFFLAGS / SIOCSIFFLAGS): no netlink socket of its own.
func loopbackUp(fd int) error {
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("flags of lo: %w", err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}
