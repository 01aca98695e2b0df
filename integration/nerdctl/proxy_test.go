package nerdctl

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lateProxy listens on a socket and connects each client to a target
// socket. What the client sends goes through at once; what the target
// sends back goes through at once too until the proxy is armed, and is held
// for delay (in order) after that. Between underlayd and containerd, it
// makes containerd's events reach underlayd late, while the gRPC
// handshake, which takes several round trips, was not slowed down.
type lateProxy struct {
	delay time.Duration
	armed atomic.Bool
}

// newLateProxy serves path until cleanup, which closes the listener and
// every connection.
func newLateProxy(t *testing.T, path, target string, delay time.Duration) *lateProxy {
	t.Helper()
	p := &lateProxy{delay: delay}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := []net.Conn{}
	track := func(cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil { // cleaned up
			return false
		}
		conns = append(conns, cs...)
		return true
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
		_ = os.Remove(path)
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("unix", target)
			if err != nil {
				client.Close()
				continue
			}
			if !track(client, server) {
				client.Close()
				server.Close()
				return
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(server, client)
				server.Close()
			}()
			go func() {
				defer wg.Done()
				p.copyLate(client, server)
				client.Close()
			}()
		}
	}()
	return p
}

// arm holds from now on everything the target sends.
func (p *lateProxy) arm() { p.armed.Store(true) }

// copyLate copies src to dst, holding each chunk read while armed for the
// delay, until either side fails.
func (p *lateProxy) copyLate(dst io.Writer, src io.Reader) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	ch := make(chan chunk, 1024)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now()
				if p.armed.Load() {
					at = at.Add(p.delay)
				}
				select {
				case ch <- chunk{at, buf[:n]}:
				case <-done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}
