package dhcp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fakeServer answers on a Transport as a DHCPv4 server would: an offer of
// the next address for a DISCOVER, an ACK (or a NAK, while nak is set) for
// a REQUEST. It records what it was sent, and where.
type fakeServer struct {
	next   byte
	nak    int // NAK this many requests
	silent bool
	lease  time.Duration
	sent   []*dhcpv4.DHCPv4
	dsts   []netip.Addr
	queue
}

// queue holds a fake server's replies for Recv, in order.
type queue struct{ replies [][]byte }

func (q *queue) Recv(buf []byte, deadline time.Time) (int, error) {
	if len(q.replies) == 0 {
		time.Sleep(min(time.Until(deadline), 20*time.Millisecond))
		return 0, errors.New("timeout")
	}
	n := copy(buf, q.replies[0])
	q.replies = q.replies[1:]
	return n, nil
}

var serverID = netip.MustParseAddr("192.0.2.1")

func (s *fakeServer) Send(msg []byte, dst netip.Addr) error {
	m, err := dhcpv4.FromBytes(msg)
	if err != nil {
		return err
	}
	s.sent, s.dsts = append(s.sent, m), append(s.dsts, dst)
	if s.silent {
		return nil
	}
	reply := func(t dhcpv4.MessageType, yi net.IP) {
		r, _ := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(t), dhcpv4.WithYourIP(yi),
			dhcpv4.WithServerIP(serverID.AsSlice()),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverID.AsSlice())),
			dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1))),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(192, 0, 2, 53))),
			dhcpv4.WithOption(dhcpv4.OptDomainName("lan.test")),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(s.lease)))
		s.replies = append(s.replies, r.ToBytes())
	}
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		s.next++
		reply(dhcpv4.MessageTypeOffer, net.IPv4(192, 0, 2, 99+s.next))
	case dhcpv4.MessageTypeRequest:
		if s.nak > 0 {
			s.nak--
			reply(dhcpv4.MessageTypeNak, net.IPv4zero)
			return nil
		}
		yi := m.RequestedIPAddress()
		if yi == nil || yi.IsUnspecified() {
			yi = m.ClientIPAddr
		}
		reply(dhcpv4.MessageTypeAck, yi)
	}
	return nil
}

func testIdentity() Identity {
	return NewIdentity("lan", "web1", "web1", StableMAC("lan", "web1"))
}

func TestAcquireRenewRelease(t *testing.T) {
	s := &fakeServer{lease: time.Hour}
	id := testIdentity()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	before := time.Now()
	l, err := Acquire(ctx, s, id, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Address.String() != "192.0.2.100/24" || l.Router != serverID || l.Server != serverID ||
		l.Domain != "lan.test" || len(l.DNS) != 1 || l.DNS[0].String() != "192.0.2.53" {
		t.Fatalf("lease %+v", l)
	}
	if l.Renew.Sub(before) < 29*time.Minute || l.Rebind.Sub(before) < 52*time.Minute || l.Expires.Sub(before) < 59*time.Minute {
		t.Errorf("T1 %s, T2 %s, expiry %s: want half, 7/8 and all of an hour", l.Renew.Sub(before), l.Rebind.Sub(before), l.Expires.Sub(before))
	}
	for i, m := range s.sent {
		if !bytes.Equal(m.Options.Get(dhcpv4.OptionClientIdentifier), id.ClientID()) || m.HostName() != "web1" ||
			!m.IsBroadcast() || s.dsts[i] != limitedBroadcast {
			t.Errorf("message %d (%s): client id %x, hostname %q, broadcast %v to %s", i, m.MessageType(),
				m.Options.Get(dhcpv4.OptionClientIdentifier), m.HostName(), m.IsBroadcast(), s.dsts[i])
		}
	}
	s.sent, s.dsts = nil, nil
	l2, err := Renew(ctx, s, id, l, false)
	if err != nil || l2.Address != l.Address {
		t.Fatalf("renew: %+v, %v", l2, err)
	}
	if m := s.sent[0]; s.dsts[0] != serverID || !m.ClientIPAddr.Equal(net.IPv4(192, 0, 2, 100)) || m.IsBroadcast() {
		t.Errorf("renewal went to %s with ciaddr %s, broadcast %v: want unicast to the server from the lease", s.dsts[0], m.ClientIPAddr, m.IsBroadcast())
	}
	s.sent, s.dsts = nil, nil
	if _, err := Renew(ctx, s, id, l, true); err != nil || s.dsts[0] != limitedBroadcast {
		t.Errorf("rebind: %v, sent to %v", err, s.dsts)
	}
	s.nak = 1
	if _, err := Renew(ctx, s, id, l, false); !errors.Is(err, ErrNak) {
		t.Errorf("renewal refused: %v, want ErrNak", err)
	}
	b, err := ReleaseMessage(id, l)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := dhcpv4.FromBytes(b)
	if m.MessageType() != dhcpv4.MessageTypeRelease || !m.ClientIPAddr.Equal(net.IPv4(192, 0, 2, 100)) ||
		!m.ServerIdentifier().Equal(serverID.AsSlice()) || !bytes.Equal(m.Options.Get(dhcpv4.OptionClientIdentifier), id.ClientID()) {
		t.Errorf("release %s", m.Summary())
	}
}

// A NAK of the request (another client took the offer) starts over.
func TestAcquireAfterNak(t *testing.T) {
	s := &fakeServer{lease: time.Hour, nak: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l, err := Acquire(ctx, s, testIdentity(), netip.Addr{})
	if err != nil || l.Address.Addr().String() != "192.0.2.101" {
		t.Fatalf("after a NAK: %+v, %v", l, err)
	}
}

func TestAcquireNoServer(t *testing.T) {
	s := &fakeServer{silent: true}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := Acquire(ctx, s, testIdentity(), netip.Addr{})
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("got %v, want ErrNoAnswer", err)
	}
	if len(s.sent) < 2 {
		t.Errorf("%d DISCOVERs in 700 ms: want a resend", len(s.sent))
	}
}

// The identity is a function of the network and the name alone; the MAC
// is locally administered unicast; the client id is RFC 4361's.
func TestIdentityStable(t *testing.T) {
	a, b := testIdentity(), testIdentity()
	if !bytes.Equal(a.ClientID(), b.ClientID()) || a.MAC.String() != b.MAC.String() {
		t.Fatal("the same container has two identities")
	}
	other := NewIdentity("lan", "db1", "", StableMAC("lan", "db1"))
	if bytes.Equal(a.ClientID(), other.ClientID()) || a.MAC.String() == other.MAC.String() {
		t.Fatal("two containers share an identity")
	}
	if a.MAC[0]&0x01 != 0 || a.MAC[0]&0x02 == 0 {
		t.Errorf("MAC %s is not locally administered unicast", a.MAC)
	}
	cid := a.ClientID()
	if len(cid) != 1+4+2+16 || cid[0] != 0xff || cid[5] != 0 || cid[6] != 4 {
		t.Errorf("client id %x: want 0xff, IAID, DUID-UUID", cid)
	}
	onOther := NewIdentity("lan2", "web1", "", a.MAC)
	if !bytes.Equal(onOther.DUID, a.DUID) || onOther.IAID == a.IAID {
		t.Errorf("one container on two networks: want one DUID and two IAIDs")
	}
}
