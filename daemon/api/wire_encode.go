package api

import (
	"strconv"
	"unicode/utf8"
)

// The writer half of wire.go. Its output is what encoding/json.Marshal
// makes of the same value, byte for byte, so the daemon sees no change.

// EncodeAttachRequest returns r as JSON.
func EncodeAttachRequest(r AttachRequest) []byte {
	b := make([]byte, 0, 128)
	b = appendNamespace(b, r.Namespace)
	b = AppendJSONString(append(b, `"container_id":`...), r.ContainerID)
	b = strconv.AppendInt(append(b, `,"pid":`...), int64(r.Pid), 10)
	b = append(b, `,"networks":`...)
	if r.Networks == nil {
		b = append(b, "null"...)
	} else {
		b = appendNetworks(b, r.Networks)
	}
	b = appendOmitEmpty(b, "name", r.Name)
	b = appendOmitEmpty(b, "bundle", r.Bundle)
	return append(b, '}')
}

func appendNetworks(b []byte, nets []NetworkAttach) []byte {
	b = append(b, '[')
	for i, n := range nets {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(append(b, `{"name":`...), n.Name)
		b = appendOmitEmpty(b, "ip", n.IP)
		b = appendOmitEmpty(b, "ip6", n.IP6)
		b = appendOmitEmpty(b, "mac", n.MAC)
		b = append(b, '}')
	}
	return append(b, ']')
}

// EncodeDetachRequest returns r as JSON.
func EncodeDetachRequest(r DetachRequest) []byte {
	b := make([]byte, 0, 96)
	b = appendNamespace(b, r.Namespace)
	b = AppendJSONString(append(b, `"container_id":`...), r.ContainerID)
	if r.Pid != 0 {
		b = strconv.AppendInt(append(b, `,"pid":`...), int64(r.Pid), 10)
	}
	return append(b, '}')
}

// appendNamespace opens a request object with its first member, the
// omitempty namespace, and the comma before the next member.
func appendNamespace(b []byte, ns string) []byte {
	b = append(b, '{')
	if ns == "" {
		return b
	}
	b = AppendJSONString(append(b, `"namespace":`...), ns)
	return append(b, ',')
}

// appendOmitEmpty writes a later omitempty string member unless s is empty.
func appendOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	return AppendJSONString(append(b, `":`...), s)
}

// AppendJSONString appends s quoted as json.Marshal quotes it: <, > and &
// escaped for HTML, U+2028 and U+2029 escaped for JavaScript, invalid
// UTF-8 as \ufffd.
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				b = append(b, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				b = append(b, `\u202`...)
				b = append(b, hex[r&0xF])
			default:
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '<', '>', '&':
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				b = append(b, c)
			}
		}
		i++
	}
	return append(b, '"')
}
