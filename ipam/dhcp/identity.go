// Package dhcp is the DHCP side of the "dhcp" address driver: who a
// container is to the LAN's server (its client identifier, DUID and MAC),
// and the DHCPv4 exchanges that lease, renew and release its address. It
// speaks through a small Transport, so it needs no socket of its own: the
// daemon gives it one inside the container's network namespace, and tests
// give it a pipe to a fake server.
package dhcp

import (
	"crypto/sha256"
	"encoding/binary"
	"net"
)

// Identity is who a container's interface is to the DHCP server. It is
// derived from the network and the container's name, so a container that
// is restarted, or made again under the same name, is the same client and
// gets its address back.
type Identity struct {
	// IAID tells this container's interfaces apart: one per network.
	IAID uint32
	// DUID is the container's own, the same on every network and for
	// DHCPv6: a DUID-UUID (RFC 6355) hashed from its name.
	DUID []byte
	// MAC is the interface's hardware address.
	MAC net.HardwareAddr
	// Hostname goes in option 12, so a server that registers its clients
	// in DNS registers the container.
	Hostname string
}

// NewIdentity derives the identity of container name on network. mac is
// the interface's address (StableMAC, or one the user chose).
func NewIdentity(network, name, hostname string, mac net.HardwareAddr) Identity {
	sum := sha256.Sum256([]byte("underlay duid\x00" + name))
	duid := make([]byte, 2, 18)
	binary.BigEndian.PutUint16(duid, 4) // DUID-UUID
	duid = append(duid, sum[:16]...)
	// A version 4 UUID in form, so tools that parse one are content.
	duid[2+6] = duid[2+6]&0x0f | 0x40
	duid[2+8] = duid[2+8]&0x3f | 0x80
	ia := sha256.Sum256([]byte("underlay iaid\x00" + network))
	return Identity{IAID: binary.BigEndian.Uint32(ia[:4]), DUID: duid, MAC: mac, Hostname: hostname}
}

// ClientID is option 61 as RFC 4361 has it: type 255, the IAID, then the
// DUID. It does not depend on the MAC, which is what lets ipvlan slaves,
// which all share their parent's, hold a lease each.
func (id Identity) ClientID() []byte {
	b := make([]byte, 5, 5+len(id.DUID))
	b[0] = 0xff
	binary.BigEndian.PutUint32(b[1:], id.IAID)
	return append(b, id.DUID...)
}

// StableMAC is the macvlan MAC of container name on network: a locally
// administered unicast address hashed from both, so the server and the
// switches see the same station after a restart.
func StableMAC(network, name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("underlay mac\x00" + network + "\x00" + name))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}
