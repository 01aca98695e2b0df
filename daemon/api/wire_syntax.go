package api

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON grammar (RFC 8259) for the decoder in wire.go. Each method
// starts with the reader at the first byte of its token and leaves it just
// past the token.

// enter consumes '{' or '[' and counts nesting as encoding/json does.
func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return fmt.Errorf("nesting deeper than %d at offset %d", maxDepth, d.i)
	}
	d.i++
	d.space()
	return nil
}

// object reads an object, calling field with the reader at each member's
// value.
func (d *decoder) object(field func(d *decoder, key string) error) error {
	if err := d.enter(); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.unexpected("looking for an object key")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		d.space()
		if d.peek() != ':' {
			return d.unexpected("after an object key")
		}
		d.i++
		d.space()
		if err := field(d, key); err != nil {
			return err
		}
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case '}':
			d.i++
			d.depth--
			return nil
		default:
			return d.unexpected("after an object member")
		}
	}
}

// array reads and discards an array.
func (d *decoder) array() error { return d.elements((*decoder).skip) }

// elements reads an array, calling elem with the reader at each element;
// elem must consume it.
func (d *decoder) elements(elem func(d *decoder) error) error {
	if err := d.enter(); err != nil {
		return err
	}
	if d.peek() == ']' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if err := elem(d); err != nil {
			return err
		}
		d.space()
		switch d.peek() {
		case ',':
			d.i++
			d.space()
		case ']':
			d.i++
			d.depth--
			return nil
		default:
			return d.unexpected("after an array element")
		}
	}
}

// literal reads true, false or null.
func (d *decoder) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if d.peek() != word[k] {
			return d.unexpected("in literal " + word)
		}
		d.i++
	}
	return nil
}

// number reads a number and returns its text.
func (d *decoder) number() ([]byte, error) {
	start := d.i
	if d.peek() == '-' {
		d.i++
	}
	if d.peek() == '0' {
		d.i++
	} else if !d.digits() {
		return nil, d.unexpected("in number")
	}
	if d.peek() == '.' {
		d.i++
		if !d.digits() {
			return nil, d.unexpected("in number")
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !d.digits() {
			return nil, d.unexpected("in number")
		}
	}
	return d.b[start:d.i], nil
}

// digits reads [0-9]* and reports whether there was at least one.
func (d *decoder) digits() bool {
	start := d.i
	for c := d.peek(); '0' <= c && c <= '9'; c = d.peek() {
		d.i++
	}
	return d.i > start
}

// str reads a string. As in encoding/json, invalid UTF-8 and unpaired
// surrogates become U+FFFD and control characters are an error.
func (d *decoder) str() (string, error) {
	d.i++ // opening quote
	start := d.i
	// Most strings are plain ASCII: take them without copying byte by byte.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			d.i++
			return string(d.b[start : d.i-1]), nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return string(out), nil
		case c == '\\':
			var err error
			if out, err = d.escape(out); err != nil {
				return "", err
			}
		case c < 0x20:
			return "", d.unexpected("in string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, n := utf8.DecodeRune(d.b[d.i:])
			out = utf8.AppendRune(out, r)
			d.i += n
		}
	}
	return "", d.unexpected("in string")
}

// escape reads one escape sequence and appends what it stands for to out.
func (d *decoder) escape(out []byte) ([]byte, error) {
	d.i++ // backslash
	c := d.peek()
	switch c {
	case '"', '\\', '/':
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		d.i++
		r, ok := d.hex4()
		if !ok {
			return nil, d.unexpected("in \\u escape")
		}
		if utf16.IsSurrogate(r) {
			r = d.pairSurrogate(r)
		}
		return utf8.AppendRune(out, r), nil
	default:
		return nil, d.unexpected("in string escape")
	}
	d.i++
	return append(out, c), nil
}

// hex4 reads the four hex digits of a \u escape.
func (d *decoder) hex4() (rune, bool) {
	var r rune
	for k := 0; k < 4; k++ {
		c := d.peek()
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
		d.i++
	}
	return r, true
}

// pairSurrogate joins surrogate r with the low surrogate escaped right
// after it. Anything else makes r U+FFFD and leaves what follows to be
// read on its own, as encoding/json does.
func (d *decoder) pairSurrogate(r rune) rune {
	save := d.i
	if d.peek() == '\\' && d.i+1 < len(d.b) && d.b[d.i+1] == 'u' {
		d.i += 2
		if r2, ok := d.hex4(); ok {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec
			}
		}
	}
	d.i = save
	return utf8.RuneError
}
