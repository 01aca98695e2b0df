package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Transport carries one interface's DHCPv4 messages: UDP from port 68 to
// port 67 of dst, the limited broadcast address or a server.
type Transport interface {
	Send(msg []byte, dst netip.Addr) error
	// Recv returns the next message to port 68 that arrives before
	// deadline, or an error once it has passed.
	Recv(buf []byte, deadline time.Time) (int, error)
}

// Lease is what a server granted, with the times a client acts on.
type Lease struct {
	Address  netip.Prefix // the address, with the mask's length
	Router   netip.Addr   // zero when the server names none
	Server   netip.Addr   // the server identifier (option 54)
	DNS      []netip.Addr
	Domain   string
	Obtained time.Time // when the request that got it was sent
	Renew    time.Time // T1: ask the server again
	Rebind   time.Time // T2: ask any server
	Expires  time.Time
}

// Sentinels the driver tells its users about.
var (
	// ErrNak is a server's refusal: the address is no longer the client's.
	ErrNak = errors.New("the DHCP server refused the lease (DHCPNAK)")
	// ErrNoAnswer is a timeout with no usable reply.
	ErrNoAnswer = errors.New("no DHCP server answered")
)

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// requested are the options a container's interface needs.
var requested = []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
	dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName, dhcpv4.OptionIPAddressLeaseTime,
	dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue}

// common are the modifiers of every message the client sends.
func (id Identity) common(xid dhcpv4.TransactionID) []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithHwAddr(id.MAC),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id.ClientID())),
	}
	if id.Hostname != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptHostName(id.Hostname)))
	}
	return m
}

// Acquire leases an address: DISCOVER, the first OFFER, REQUEST, ACK
// (RFC 2131 4.4.1). want, if valid, is asked for: a restarted container's
// old address. The replies come by broadcast, since the interface has no
// address yet. A NAK of the request (another client took the offered
// address first, as a server that offers without holding allows) starts
// again from DISCOVER. ctx bounds the whole exchange.
func Acquire(ctx context.Context, t Transport, id Identity, want netip.Addr) (Lease, error) {
	for {
		l, err := acquireOnce(ctx, t, id, want)
		if !errors.Is(err, ErrNak) || ctx.Err() != nil {
			return l, err
		}
		want = netip.Addr{}
	}
}

func acquireOnce(ctx context.Context, t Transport, id Identity, want netip.Addr) (Lease, error) {
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return Lease{}, err
	}
	mods := append(id.common(xid), dhcpv4.WithBroadcast(true),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithRequestedOptions(requested...))
	if want.Is4() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice())))
	}
	discover, err := dhcpv4.New(mods...)
	if err != nil {
		return Lease{}, err
	}
	offer, err := exchange(ctx, t, discover, limitedBroadcast, dhcpv4.MessageTypeOffer)
	if err != nil {
		return Lease{}, err
	}
	request, err := dhcpv4.New(append(id.common(xid), dhcpv4.WithBroadcast(true),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithRequestedOptions(requested...),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())))...)
	if err != nil {
		return Lease{}, err
	}
	sent := time.Now()
	ack, err := exchange(ctx, t, request, limitedBroadcast, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if err != nil {
		return Lease{}, err
	}
	return leaseFrom(ack, sent)
}

// Renew asks for lease l again: from its server by unicast while
// renewing, from any server by broadcast once rebind says T2 has passed
// (RFC 2131 4.4.5). The interface holds the address meanwhile.
func Renew(ctx context.Context, t Transport, id Identity, l Lease, rebind bool) (Lease, error) {
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return Lease{}, err
	}
	request, err := dhcpv4.New(append(id.common(xid), dhcpv4.WithClientIP(l.Address.Addr().AsSlice()),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithRequestedOptions(requested...))...)
	if err != nil {
		return Lease{}, err
	}
	dst := l.Server
	if rebind || !dst.IsValid() {
		dst = limitedBroadcast
	}
	sent := time.Now()
	ack, err := exchange(ctx, t, request, dst, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if err != nil {
		return Lease{}, err
	}
	n, err := leaseFrom(ack, sent)
	if err == nil && n.Address.Addr() != l.Address.Addr() {
		return n, fmt.Errorf("renewal of %s answered with %s", l.Address.Addr(), n.Address.Addr())
	}
	return n, err
}

// ReleaseMessage is the DHCPRELEASE of lease l (RFC 2131 4.4.6), to be
// sent by unicast to l.Server from the leased address.
func ReleaseMessage(id Identity, l Lease) ([]byte, error) {
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, err
	}
	m, err := dhcpv4.New(dhcpv4.WithTransactionID(xid), dhcpv4.WithHwAddr(id.MAC),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id.ClientID())),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithClientIP(l.Address.Addr().AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(l.Server.AsSlice())))
	if err != nil {
		return nil, err
	}
	return m.ToBytes(), nil
}

// retransmit is the wait before each resend: short first, as on a LAN the
// server answers in milliseconds, then backing off as RFC 2131 4.1 asks.
var retransmit = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// exchange sends m to dst until a reply of one of the wanted types comes
// for its transaction, or ctx ends. A NAK is returned as ErrNak.
func exchange(ctx context.Context, t Transport, m *dhcpv4.DHCPv4, dst netip.Addr, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	msg := m.ToBytes()
	buf := make([]byte, 1500)
	for i := 0; ; i++ {
		if err := t.Send(msg, dst); err != nil {
			return nil, fmt.Errorf("send DHCP%s: %w", m.MessageType(), err)
		}
		wait := retransmit[min(i, len(retransmit)-1)]
		deadline := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		for {
			n, err := t.Recv(buf, deadline)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w to DHCP%s", ErrNoAnswer, m.MessageType())
			}
			if err != nil {
				break // resend
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || r.OpCode != dhcpv4.OpcodeBootReply || r.TransactionID != m.TransactionID ||
				!sameMAC(r.ClientHWAddr, m.ClientHWAddr) {
				continue
			}
			for _, w := range want {
				if r.MessageType() != w {
					continue
				}
				if w == dhcpv4.MessageTypeNak {
					if s := r.Message(); s != "" {
						return nil, fmt.Errorf("%w: %s", ErrNak, s)
					}
					return nil, ErrNak
				}
				return r, nil
			}
		}
	}
}

func sameMAC(a, b net.HardwareAddr) bool { return a.String() == b.String() }

// leaseFrom reads an ACK. Without a lease time the ACK is unusable; T1 and
// T2 default to half and seven eighths of it (RFC 2131 4.4.5).
func leaseFrom(ack *dhcpv4.DHCPv4, sent time.Time) (Lease, error) {
	addr, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || addr.IsUnspecified() {
		return Lease{}, errors.New("the DHCP server acknowledged no address")
	}
	total := ack.IPAddressLeaseTime(0)
	if total <= 0 {
		return Lease{}, fmt.Errorf("the DHCP server granted %s with no lease time", addr)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.IP(ack.YourIPAddr).DefaultMask()
	}
	bits, _ := mask.Size()
	l := Lease{Address: netip.PrefixFrom(addr, bits), Domain: ack.DomainName(), Obtained: sent,
		Expires: sent.Add(total)}
	if s, ok := netip.AddrFromSlice(ack.ServerIdentifier().To4()); ok {
		l.Server = s
	}
	if rs := ack.Router(); len(rs) > 0 {
		if r, ok := netip.AddrFromSlice(rs[0].To4()); ok {
			l.Router = r
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Renew = sent.Add(ack.IPAddressRenewalTime(total / 2))
	l.Rebind = sent.Add(ack.IPAddressRebindingTime(total * 7 / 8))
	if !l.Renew.Before(l.Rebind) || !l.Rebind.Before(l.Expires) {
		l.Renew, l.Rebind = sent.Add(total/2), sent.Add(total*7/8)
	}
	return l, nil
}
