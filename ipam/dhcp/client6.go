package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// Lease6 is a DHCPv6 IA_NA lease (RFC 8415): one address, with the times
// a client acts on. The prefix length and the default route come from the
// LAN's router advertisements, not from DHCPv6.
type Lease6 struct {
	Address  netip.Addr
	Server   []byte // the server's DUID (OPTION_SERVERID)
	DNS      []netip.Addr
	Domains  []string
	Obtained time.Time
	Renew    time.Time // T1
	Rebind   time.Time // T2
	Expires  time.Time // the valid lifetime's end
	// Preferred is the preferred lifetime's end.
	Preferred time.Time
}

// AllServers is the All_DHCP_Relay_Agents_and_Servers group, where a
// client sends everything (RFC 8415 7.1).
var AllServers = netip.MustParseAddr("ff02::1:2")

func (id Identity) duid6() dhcpv6.DUID {
	var u dhcpv6.DUIDUUID
	copy(u.UUID[:], id.DUID[2:])
	return &u
}

func (id Identity) iaid() [4]byte {
	return [4]byte{byte(id.IAID >> 24), byte(id.IAID >> 16), byte(id.IAID >> 8), byte(id.IAID)}
}

// message6 is a client message of type t with the identity's options and
// an IA_NA, holding addr when valid.
func (id Identity) message6(t dhcpv6.MessageType, addr netip.Addr, server []byte) (*dhcpv6.Message, error) {
	m, err := dhcpv6.NewMessage()
	if err != nil {
		return nil, err
	}
	m.MessageType = t
	m.AddOption(dhcpv6.OptClientID(id.duid6()))
	if server != nil {
		sid, err := dhcpv6.DUIDFromBytes(server)
		if err != nil {
			return nil, fmt.Errorf("stored DHCPv6 server id: %w", err)
		}
		m.AddOption(dhcpv6.OptServerID(sid))
	}
	m.AddOption(dhcpv6.OptElapsedTime(0))
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	ia := &dhcpv6.OptIANA{IaId: id.iaid()}
	if addr.IsValid() {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: addr.AsSlice()})
	}
	m.AddOption(ia)
	if id.Hostname != "" {
		// OPTION_CLIENT_FQDN with S set: the server may register the name.
		dhcpv6.WithFQDN(1, id.Hostname)(m)
	}
	return m, nil
}

// Acquire6 leases an address: SOLICIT, the first ADVERTISE with an
// address, REQUEST, REPLY (RFC 8415 18.2.1).
func Acquire6(ctx context.Context, t Transport, id Identity) (Lease6, error) {
	for {
		l, err := acquire6Once(ctx, t, id)
		if !errors.Is(err, ErrNak) || ctx.Err() != nil {
			return l, err
		}
	}
}

func acquire6Once(ctx context.Context, t Transport, id Identity) (Lease6, error) {
	sol, err := id.message6(dhcpv6.MessageTypeSolicit, netip.Addr{}, nil)
	if err != nil {
		return Lease6{}, err
	}
	adv, err := exchange6(ctx, t, sol, AllServers, dhcpv6.MessageTypeAdvertise)
	if err != nil {
		return Lease6{}, err
	}
	offered, _, err := iaAddress(adv, id)
	if err != nil {
		return Lease6{}, err
	}
	req, err := id.message6(dhcpv6.MessageTypeRequest, offered.Addr(), adv.Options.ServerID().ToBytes())
	if err != nil {
		return Lease6{}, err
	}
	sent := time.Now()
	reply, err := exchange6(ctx, t, req, AllServers, dhcpv6.MessageTypeReply)
	if err != nil {
		return Lease6{}, err
	}
	return lease6From(reply, id, sent)
}

// Renew6 extends l: RENEW to its server until T2, then REBIND to any.
func Renew6(ctx context.Context, t Transport, id Identity, l Lease6, rebind bool) (Lease6, error) {
	kind, server := dhcpv6.MessageTypeRenew, l.Server
	if rebind {
		kind, server = dhcpv6.MessageTypeRebind, nil
	}
	m, err := id.message6(kind, l.Address, server)
	if err != nil {
		return Lease6{}, err
	}
	sent := time.Now()
	reply, err := exchange6(ctx, t, m, AllServers, dhcpv6.MessageTypeReply)
	if err != nil {
		return Lease6{}, err
	}
	n, err := lease6From(reply, id, sent)
	if err == nil && n.Address != l.Address {
		return n, fmt.Errorf("renewal of %s answered with %s", l.Address, n.Address)
	}
	return n, err
}

// Release6Message is the RELEASE of l (RFC 8415 18.2.7).
func Release6Message(id Identity, l Lease6) ([]byte, error) {
	m, err := id.message6(dhcpv6.MessageTypeRelease, l.Address, l.Server)
	if err != nil {
		return nil, err
	}
	return m.ToBytes(), nil
}

// iaAddress is the address of the identity's IA_NA in m, and its valid
// and preferred lifetimes. A status other than success is ErrNak.
func iaAddress(m *dhcpv6.Message, id Identity) (netip.Prefix, *dhcpv6.OptIANA, error) {
	if s := m.Options.Status(); s != nil && s.StatusCode != 0 {
		return netip.Prefix{}, nil, fmt.Errorf("%w: %s", ErrNak, s.String())
	}
	for _, ia := range m.Options.IANA() {
		if ia.IaId != id.iaid() {
			continue
		}
		if s := ia.Options.Status(); s != nil && s.StatusCode != 0 {
			return netip.Prefix{}, nil, fmt.Errorf("%w: %s", ErrNak, s.String())
		}
		if a := ia.Options.OneAddress(); a != nil {
			if addr, ok := netip.AddrFromSlice(a.IPv6Addr); ok && a.ValidLifetime > 0 {
				return netip.PrefixFrom(addr, 128), ia, nil
			}
		}
	}
	return netip.Prefix{}, nil, fmt.Errorf("%w: no address for this client", ErrNak)
}

// lease6From reads a REPLY. T1 and T2 of 0 leave them to the client: half
// and four fifths of the preferred lifetime (RFC 8415 21.4).
func lease6From(reply *dhcpv6.Message, id Identity, sent time.Time) (Lease6, error) {
	addr, ia, err := iaAddress(reply, id)
	if err != nil {
		return Lease6{}, err
	}
	a := ia.Options.OneAddress()
	l := Lease6{Address: addr.Addr(), Obtained: sent, Expires: sent.Add(a.ValidLifetime),
		Preferred: sent.Add(a.PreferredLifetime)}
	if sid := reply.Options.ServerID(); sid != nil {
		l.Server = sid.ToBytes()
	}
	for _, d := range reply.Options.DNS() {
		if x, ok := netip.AddrFromSlice(d); ok {
			l.DNS = append(l.DNS, x)
		}
	}
	if dl := reply.Options.DomainSearchList(); dl != nil {
		l.Domains = dl.Labels
	}
	base := a.PreferredLifetime
	if base <= 0 {
		base = a.ValidLifetime
	}
	t1, t2 := ia.T1, ia.T2
	if t1 <= 0 || t2 <= 0 || t1 > t2 {
		t1, t2 = base/2, base*4/5
	}
	l.Renew, l.Rebind = sent.Add(t1), sent.Add(t2)
	if !l.Rebind.Before(l.Expires) {
		l.Renew, l.Rebind = sent.Add(a.ValidLifetime/2), sent.Add(a.ValidLifetime*4/5)
	}
	return l, nil
}

// exchange6 sends m until a reply of type want comes for its transaction.
func exchange6(ctx context.Context, t Transport, m *dhcpv6.Message, dst netip.Addr, want dhcpv6.MessageType) (*dhcpv6.Message, error) {
	msg := m.ToBytes()
	buf := make([]byte, 1500)
	cid := m.Options.ClientID()
	for i := 0; ; i++ {
		if err := t.Send(msg, dst); err != nil {
			return nil, fmt.Errorf("send DHCPv6 %s: %w", m.MessageType, err)
		}
		deadline := time.Now().Add(retransmit[min(i, len(retransmit)-1)])
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		for {
			n, err := t.Recv(buf, deadline)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w to DHCPv6 %s", ErrNoAnswer, m.MessageType)
			}
			if err != nil {
				break
			}
			r, err := dhcpv6.MessageFromBytes(buf[:n])
			if err != nil || r.TransactionID != m.TransactionID || r.MessageType != want {
				continue
			}
			if rc := r.Options.ClientID(); rc == nil || cid == nil || !rc.Equal(cid) {
				continue
			}
			return r, nil
		}
	}
}

// EUI64LinkLocal is the link-local address the kernel gives an interface
// of MAC mac (addr_gen_mode eui64, the default): where a container's
// DHCPv6 messages come from, and so where its release comes from.
func EUI64LinkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	if len(mac) == 6 {
		a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15] = mac[0]^0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(a)
}
