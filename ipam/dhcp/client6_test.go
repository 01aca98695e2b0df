package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// fakeServer6 answers SOLICIT with an ADVERTISE and REQUEST, RENEW and
// REBIND with a REPLY, all for 2001:db8::100 (or a NoBinding status while
// refuse is set), as a DHCPv6 server would.
type fakeServer6 struct {
	refuse bool
	sent   []*dhcpv6.Message
	queue
}

var server6 = &dhcpv6.DUIDLL{HWType: 1, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}

func (s *fakeServer6) Send(msg []byte, dst netip.Addr) error {
	m, err := dhcpv6.MessageFromBytes(msg)
	if err != nil {
		return err
	}
	s.sent = append(s.sent, m)
	t := dhcpv6.MessageTypeReply
	if m.MessageType == dhcpv6.MessageTypeSolicit {
		t = dhcpv6.MessageTypeAdvertise
	}
	r := &dhcpv6.Message{MessageType: t, TransactionID: m.TransactionID}
	r.AddOption(m.GetOneOption(dhcpv6.OptionClientID))
	r.AddOption(dhcpv6.OptServerID(server6))
	ia := &dhcpv6.OptIANA{IaId: m.Options.OneIANA().IaId, T1: 30 * time.Minute, T2: 48 * time.Minute}
	if s.refuse {
		ia.Options.Add(&dhcpv6.OptStatusCode{StatusCode: 3, StatusMessage: "no binding"})
	} else {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::100"),
			PreferredLifetime: time.Hour, ValidLifetime: 2 * time.Hour})
	}
	r.AddOption(ia)
	r.AddOption(dhcpv6.OptDNS(net.ParseIP("2001:db8::53")))
	s.replies = append(s.replies, r.ToBytes())
	return nil
}

func TestAcquire6RenewRelease(t *testing.T) {
	s := &fakeServer6{}
	id := testIdentity()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	before := time.Now()
	l, err := Acquire6(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	if l.Address.String() != "2001:db8::100" || len(l.DNS) != 1 || string(l.Server) != string(server6.ToBytes()) {
		t.Fatalf("lease %+v", l)
	}
	if d := l.Renew.Sub(before); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("T1 %s, want the server's 30m", d)
	}
	if d := l.Expires.Sub(before); d < 119*time.Minute {
		t.Errorf("expiry %s, want the valid lifetime, 2h", d)
	}
	if types := []dhcpv6.MessageType{s.sent[0].MessageType, s.sent[1].MessageType}; types[0] != dhcpv6.MessageTypeSolicit || types[1] != dhcpv6.MessageTypeRequest {
		t.Errorf("sent %v, want SOLICIT then REQUEST", types)
	}
	if cid := s.sent[1].Options.ClientID(); cid == nil || string(cid.ToBytes()) != string(id.DUID) {
		t.Errorf("client id %v, want the identity's DUID", cid)
	}
	if s.sent[1].Options.ServerID() == nil || s.sent[1].Options.OneIANA().IaId != id.iaid() {
		t.Errorf("REQUEST without the server id or the IAID: %s", s.sent[1].Summary())
	}
	s.sent = nil
	if _, err := Renew6(ctx, s, id, l, false); err != nil || s.sent[0].MessageType != dhcpv6.MessageTypeRenew || s.sent[0].Options.ServerID() == nil {
		t.Errorf("renew: %v, sent %s", err, s.sent[0].Summary())
	}
	s.sent = nil
	if _, err := Renew6(ctx, s, id, l, true); err != nil || s.sent[0].MessageType != dhcpv6.MessageTypeRebind || s.sent[0].Options.ServerID() != nil {
		t.Errorf("rebind: %v, sent %s", err, s.sent[0].Summary())
	}
	s.refuse = true
	if _, err := Renew6(ctx, s, id, l, false); !errors.Is(err, ErrNak) {
		t.Errorf("renewal without a binding: %v, want ErrNak", err)
	}
	b, err := Release6Message(id, l)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := dhcpv6.MessageFromBytes(b)
	if m.MessageType != dhcpv6.MessageTypeRelease || m.Options.ServerID() == nil ||
		!m.Options.OneIANA().Options.OneAddress().IPv6Addr.Equal(net.ParseIP("2001:db8::100")) {
		t.Errorf("release %s", m.Summary())
	}
}

func TestEUI64LinkLocal(t *testing.T) {
	mac, _ := net.ParseMAC("02:11:22:33:44:55")
	if got := EUI64LinkLocal(mac).String(); got != "fe80::11:22ff:fe33:4455" {
		t.Errorf("got %s", got)
	}
}
