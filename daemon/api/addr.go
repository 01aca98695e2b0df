package api

import (
	"errors"
	"strconv"
)

// Addr is an IP address as the hook and underlay-cni read one: parsed and
// printed exactly as net/netip parses and prints it (FuzzAddr holds it to
// that), without linking net/netip, whose start-up (with package unique's)
// took about 0.1 ms of every exec of a small binary here. The zero Addr is
// not an address.
type Addr struct {
	ip   [16]byte // an IPv4 address in its IPv4-mapped form
	is4  bool
	zone string
}

// ParseAddr parses an IPv4 address ("192.0.2.1") or an IPv6 one
// ("2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0") as
// netip.ParseAddr does.
func ParseAddr(s string) (Addr, error) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.':
			var a Addr
			if !parseIPv4(s, a.ip[12:]) {
				return Addr{}, addrError(s)
			}
			a.ip[10], a.ip[11], a.is4 = 0xff, 0xff, true
			return a, nil
		case ':':
			return parseIPv6(s)
		case '%':
			return Addr{}, addrError(s)
		}
	}
	return Addr{}, addrError(s)
}

func addrError(s string) error {
	return errors.New(strconv.Quote(s) + ": not an IP address")
}

// parseIPv4 reads four decimal fields without leading zeros into out.
func parseIPv4(s string, out []byte) bool {
	val, pos, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			if digits == 1 && val == 0 {
				return false // a leading zero
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return false
			}
		case c == '.':
			if i == 0 || i == len(s)-1 || s[i-1] == '.' || pos == 3 {
				return false
			}
			out[pos] = byte(val)
			pos++
			val, digits = 0, 0
		default:
			return false
		}
	}
	if pos < 3 {
		return false
	}
	out[3] = byte(val)
	return true
}

// parseIPv6 reads up to eight hex groups, one "::" and a trailing
// dotted IPv4 address, then a zone after '%'.
func parseIPv6(in string) (Addr, error) {
	var a Addr
	s := in
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if s, a.zone = s[:i], s[i+1:]; a.zone == "" {
				return Addr{}, addrError(in)
			}
			break
		}
	}
	ellipsis := -1 // where "::" stands in a.ip
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis, s = 0, s[2:]
		if s == "" {
			return a, nil
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for ; off < len(s); off++ {
			d := hexDigit(s[off])
			if d < 0 {
				break
			}
			if off > 3 {
				return Addr{}, addrError(in) // more than 4 digits
			}
			acc = acc<<4 | d
		}
		if off == 0 {
			return Addr{}, addrError(in)
		}
		if off < len(s) && s[off] == '.' {
			// A trailing IPv4 address, in the last 32 bits.
			if ellipsis < 0 && i != 12 || i+4 > 16 || !parseIPv4(s, a.ip[i:i+4]) {
				return Addr{}, addrError(in)
			}
			s, i = "", i+4
			break
		}
		a.ip[i], a.ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		if s = s[off:]; s == "" {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return Addr{}, addrError(in)
		}
		if s = s[1:]; s[0] == ':' {
			if ellipsis >= 0 {
				return Addr{}, addrError(in) // a second "::"
			}
			ellipsis, s = i, s[1:]
			if s == "" {
				break
			}
		}
	}
	if s != "" {
		return Addr{}, addrError(in)
	}
	if i < 16 {
		if ellipsis < 0 {
			return Addr{}, addrError(in)
		}
		n := 16 - i
		copy(a.ip[ellipsis+n:], a.ip[ellipsis:i])
		clear(a.ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return Addr{}, addrError(in) // "::" must stand for a zero group
	}
	return a, nil
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ParsePrefix parses "address/bits" as netip.ParsePrefix does and returns
// the address (as written, not masked) and the bits.
func ParsePrefix(s string) (Addr, int, error) {
	i := len(s) - 1
	for i >= 0 && s[i] != '/' {
		i--
	}
	if i < 0 {
		return Addr{}, 0, errors.New(strconv.Quote(s) + ": not a prefix (no '/')")
	}
	a, err := ParseAddr(s[:i])
	if err != nil {
		return Addr{}, 0, errors.New(strconv.Quote(s) + ": not an IP address before the '/'")
	}
	bits := s[i+1:]
	max := 128
	if a.is4 {
		max = 32
	}
	n, err := strconv.Atoi(bits)
	if a.zone != "" || len(bits) > 1 && (bits[0] < '1' || bits[0] > '9') || err != nil || n < 0 || n > max {
		return Addr{}, 0, errors.New(strconv.Quote(s) + ": not a prefix")
	}
	return a, n, nil
}

func (a Addr) Is4() bool { return a.is4 }
func (a Addr) Is6() bool { return !a.is4 }

// Is4In6 reports an IPv4-mapped IPv6 address (::ffff:192.0.2.1).
func (a Addr) Is4In6() bool {
	return !a.is4 && a.ip[10] == 0xff && a.ip[11] == 0xff && [10]byte(a.ip[:10]) == [10]byte{}
}

func (a Addr) Zone() string { return a.zone }

// Unmap returns the IPv4 address an IPv4-mapped one wraps, else a.
func (a Addr) Unmap() Addr {
	if a.Is4In6() {
		a.is4, a.zone = true, ""
	}
	return a
}

// String prints a as netip does: IPv6 by RFC 5952 (the longest run of
// two or more zero groups as "::", the first of equal runs), an
// IPv4-mapped address as ::ffff:192.0.2.1.
func (a Addr) String() string {
	b := make([]byte, 0, 46)
	switch {
	case a.is4:
		return string(appendIPv4(b, a.ip[12:]))
	case a.Is4In6():
		b = appendIPv4(append(b, "::ffff:"...), a.ip[12:])
	default:
		group := func(k int) int { return int(a.ip[2*k])<<8 | int(a.ip[2*k+1]) }
		zs, ze := -1, -1
		for k := 0; k < 8; k++ {
			j := k
			for j < 8 && group(j) == 0 {
				j++
			}
			if j-k >= 2 && j-k > ze-zs {
				zs, ze = k, j
			}
		}
		for k := 0; k < 8; k++ {
			if k == zs {
				b = append(b, ':', ':')
				if k = ze; k >= 8 {
					break
				}
			} else if k > 0 {
				b = append(b, ':')
			}
			b = strconv.AppendUint(b, uint64(group(k)), 16)
		}
	}
	if a.zone != "" {
		b = append(append(b, '%'), a.zone...)
	}
	return string(b)
}

func appendIPv4(b []byte, v4 []byte) []byte {
	for k, x := range v4 {
		if k > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	return b
}
