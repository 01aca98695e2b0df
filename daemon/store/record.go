package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/underlay/underlay/daemon/api"
)

// Endpoint records in the per-boot database are binary: a host with tens
// of thousands of endpoints reads every one at start, and as JSON they made
// a 48 MiB file whose decoding dominated start-up and its peak memory.
// A record starts with a version byte, recordV1, the only one there is;
// any other first byte is a malformed record.
//
// Layout after the version byte: the strings network, namespace, container
// id, ifname, MAC, temporary name, parent and state, each as a uvarint
// length and bytes; netns inode and cookie as uvarints; the creation time
// as a varint of Unix nanoseconds; then a uvarint count of addresses, each
// an address (below) and a prefix length byte; then a uvarint count of
// gateways, each an address. An address is a family byte (4 or 6) and 16
// bytes, IPv4 mapped, so an IPv4-mapped IPv6 address stays what it was.
// Optional sections may follow, each a tag byte, a uvarint length and that
// many bytes: tagDHCP holds the DHCP lease as JSON (leases are few, change
// rarely and carry strings). A record without them is what it always was.
const recordV1 = 0x01

const (
	tagDHCP  = 'D'
	tagCNI   = 'C' // no body: a CNI ADD made the endpoint
	tagNames = 'N' // the container's DNS names, comma-separated
)

// encodeEndpoint encodes ep. Its Created must be RFC 3339 (underlayd writes
// UTC with nanoseconds, which comes back byte for byte); an address or
// gateway that does not parse is an error, not something to drop.
func encodeEndpoint(ep api.Endpoint) ([]byte, error) {
	created, err := time.Parse(time.RFC3339Nano, ep.Created)
	if err != nil && ep.Created != "" {
		return nil, fmt.Errorf("endpoint created %q: %w", ep.Created, err)
	}
	b := make([]byte, 0, 128)
	b = append(b, recordV1)
	for _, s := range []string{ep.Network, ep.Namespace, ep.ContainerID, ep.IfName, ep.MAC, ep.TempName, ep.Parent, ep.State} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, ep.NetnsInode)
	b = binary.AppendUvarint(b, ep.NetnsCookie)
	var nanos int64
	if ep.Created != "" {
		nanos = created.UnixNano()
	}
	b = binary.AppendVarint(b, nanos)
	b = binary.AppendUvarint(b, uint64(len(ep.Addresses)))
	for _, a := range ep.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("endpoint address %q: %w", a, err)
		}
		b = appendAddr(b, p.Addr())
		b = append(b, byte(p.Bits()))
	}
	b = binary.AppendUvarint(b, uint64(len(ep.Gateways)))
	for _, g := range ep.Gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return nil, fmt.Errorf("endpoint gateway %q: %w", g, err)
		}
		b = appendAddr(b, a)
	}
	if ep.DHCP != nil {
		j, err := json.Marshal(ep.DHCP)
		if err != nil {
			return nil, err
		}
		b = append(b, tagDHCP)
		b = binary.AppendUvarint(b, uint64(len(j)))
		b = append(b, j...)
	}
	if ep.CNI {
		b = append(b, tagCNI, 0)
	}
	if len(ep.Names) > 0 {
		j := strings.Join(ep.Names, ",")
		b = append(b, tagNames)
		b = binary.AppendUvarint(b, uint64(len(j)))
		b = append(b, j...)
	}
	return b, nil
}

func appendAddr(b []byte, a netip.Addr) []byte {
	fam := byte(6)
	if a.Is4() {
		fam = 4
	}
	a16 := a.As16()
	return append(append(b, fam), a16[:]...)
}

var errRecord = errors.New("malformed endpoint record")

// decodeEndpoint reads a record written by encodeEndpoint.
func decodeEndpoint(b []byte) (api.Endpoint, error) {
	var ep api.Endpoint
	if len(b) == 0 || b[0] != recordV1 {
		return ep, errRecord
	}
	r := reader{b: b[1:]}
	for _, s := range []*string{&ep.Network, &ep.Namespace, &ep.ContainerID, &ep.IfName, &ep.MAC, &ep.TempName, &ep.Parent, &ep.State} {
		*s = r.str()
	}
	ep.NetnsInode, ep.NetnsCookie = r.uvarint(), r.uvarint()
	if nanos := r.varint(); nanos != 0 {
		ep.Created = time.Unix(0, nanos).UTC().Format(time.RFC3339Nano)
	}
	for n := r.count(18); n > 0 && r.err == nil; n-- {
		a, bits := r.addr(), int(r.byte())
		if _, err := a.Prefix(bits); err != nil {
			r.fail()
			break
		}
		ep.Addresses = append(ep.Addresses, netip.PrefixFrom(a, bits).String())
	}
	for n := r.count(17); n > 0 && r.err == nil; n-- {
		ep.Gateways = append(ep.Gateways, r.addr().String())
	}
	for r.err == nil && len(r.b) != 0 {
		tag := r.byte()
		body := r.str()
		if r.err == nil && tag == tagCNI && body == "" {
			ep.CNI = true
			continue
		}
		if r.err == nil && tag == tagNames && body != "" {
			ep.Names = strings.Split(body, ",")
			continue
		}
		if r.err != nil || tag != tagDHCP {
			r.fail()
			break
		}
		var d api.DHCPLease
		if json.Unmarshal([]byte(body), &d) != nil {
			r.fail()
			break
		}
		ep.DHCP = &d
	}
	return ep, r.err
}

// reader takes fields off the front of a record; after the first error it
// yields zero values and keeps the error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.err, r.b = errRecord, nil }

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a count of items of size bytes each, refusing one the rest
// of the record cannot hold.
func (r *reader) count(size int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/size) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) addr() netip.Addr {
	if len(r.b) < 17 || r.b[0] != 4 && r.b[0] != 6 {
		r.fail()
		return netip.Addr{}
	}
	a := netip.AddrFrom16([16]byte(r.b[1:17]))
	if r.b[0] == 4 {
		if !a.Is4In6() {
			r.fail()
			return netip.Addr{}
		}
		a = a.Unmap()
	}
	r.b = r.b[17:]
	return a
}
