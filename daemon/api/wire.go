package api

import (
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// This file reads and writes the few JSON documents the hook handles (the
// OCI state on stdin, a bundle's config.json, the attach and detach
// requests, the daemon's error body) without encoding/json: linking it
// costs the hook about a millisecond of start-up on every container start.
// wire_cni.go does the same for underlay-cni.
// The reader accepts exactly what encoding/json accepts when decoding into
// the same Go types and yields the same values (FuzzWireState checks it);
// the writer's output is byte for byte json.Marshal's (FuzzWireEncode).

// OCIState is the OCI runtime state a hook reads on stdin: the fields of
// specs.State that the hook uses.
type OCIState struct {
	OCIVersion  string
	ID          string
	Status      string
	Pid         int
	Bundle      string
	Annotations map[string]string
}

// DecodeOCIState parses an OCI runtime state; unknown fields are skipped.
func DecodeOCIState(b []byte) (OCIState, error) {
	var st OCIState
	err := decodeObject(b, func(d *decoder, key string) error {
		switch foldName(key) {
		case "OCIVERSION":
			return d.stringField(&st.OCIVersion, "ociVersion")
		case "ID":
			return d.stringField(&st.ID, "id")
		case "STATUS":
			return d.stringField(&st.Status, "status")
		case "PID":
			return d.intField(&st.Pid, "pid")
		case "BUNDLE":
			return d.stringField(&st.Bundle, "bundle")
		case "ANNOTATIONS":
			return d.stringMapField(&st.Annotations, "annotations")
		}
		return d.skip()
	})
	return st, err
}

// DecodeAnnotations reads the top-level annotations of a bundle's
// config.json, skipping the rest of the spec.
func DecodeAnnotations(b []byte) (map[string]string, error) {
	var ann map[string]string
	err := decodeObject(b, func(d *decoder, key string) error {
		if foldName(key) == "ANNOTATIONS" {
			return d.stringMapField(&ann, "annotations")
		}
		return d.skip()
	})
	return ann, err
}

// decodeError reads the body of a non-2xx answer.
func decodeError(b []byte) (Error, error) {
	var e Error
	err := decodeObject(b, func(d *decoder, key string) error {
		if foldName(key) == "ERROR" {
			return d.stringField(&e.Error, "error")
		}
		return d.skip()
	})
	return e, err
}

// foldName folds a key as encoding/json does to match it to a field name
// case-insensitively ("PID", "Id", even "ſtatus" with a long s), so both
// pick the same field. Field names fold to their ASCII upper case.
func foldName(key string) string {
	b := make([]byte, 0, len(key))
	for _, r := range key { // invalid UTF-8 comes out as U+FFFD, as there
		switch {
		case 'a' <= r && r <= 'z':
			r -= 'a' - 'A'
		case r >= utf8.RuneSelf:
			r = foldRune(r)
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// foldRune returns the smallest rune of r's case-folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// maxDepth is encoding/json's nesting limit; deeper input is rejected there.
const maxDepth = 10000

// decoder reads one JSON document held in memory.
type decoder struct {
	b     []byte
	i     int // offset of the next unread byte
	depth int // open objects and arrays
}

// decodeObject parses b, which must hold one object, calling field with
// the reader at each member's value; field must consume that value. A
// top-level null is accepted and decodes nothing, as encoding/json does
// into a struct.
func decodeObject(b []byte, field func(d *decoder, key string) error) error {
	d := &decoder{b: b}
	d.space()
	var err error
	switch d.peek() {
	case '{':
		err = d.object(field)
	case 'n':
		err = d.literal("null")
	default:
		// Not an object. Like encoding/json, name bad syntax anywhere
		// before the wrong type.
		at, got := d.i, d.kind()
		if err = d.skip(); err == nil {
			err = d.end()
		}
		if err == nil {
			err = typeError("document", "an object", got, at)
		}
		return err
	}
	if err != nil {
		return err
	}
	return d.end()
}

// end checks that only whitespace follows the top-level value.
func (d *decoder) end() error {
	d.space()
	if d.i < len(d.b) {
		return d.unexpected("after the top-level value")
	}
	return nil
}

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	// At the end: a NUL byte is invalid everywhere peek is used, so 0
	// matches nothing, and unexpected tells the end from a real NUL.
	return 0
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// unexpected reports the byte at the reader, or the end of input.
func (d *decoder) unexpected(context string) error {
	if d.i >= len(d.b) {
		return fmt.Errorf("unexpected end of input %s at offset %d", context, d.i)
	}
	return fmt.Errorf("invalid character %q %s at offset %d", d.b[d.i], context, d.i)
}

// kind names the JSON type of the value at the reader, for type errors.
func (d *decoder) kind() string {
	switch d.peek() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// mismatch reports a value of the wrong type. It reads the value first so
// that invalid JSON is reported as such, not as a type error.
func (d *decoder) mismatch(what, want string) error {
	at, got := d.i, d.kind()
	if err := d.skip(); err != nil {
		return err
	}
	return typeError(what, want, got, at)
}

func typeError(what, want, got string, at int) error {
	return fmt.Errorf("%s: want %s, got %s at offset %d", what, want, got, at)
}

// stringField stores a string. Null leaves the field as it was, as
// encoding/json does for a field that is not a pointer, map or slice.
func (d *decoder) stringField(dst *string, name string) error {
	switch d.peek() {
	case '"':
		s, err := d.str()
		if err == nil {
			*dst = s
		}
		return err
	case 'n':
		return d.literal("null")
	}
	return d.mismatch("field "+strconv.Quote(name), "a string")
}

// intField stores a number that must be an integer fitting an int, as
// encoding/json requires of an int field: no fraction, no exponent.
func (d *decoder) intField(dst *int, name string) error {
	switch c := d.peek(); {
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		at := d.i
		lit, err := d.number()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(lit), 10, 0)
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("field %q: integer %.40s out of range at offset %d", name, lit, at)
		}
		if err != nil {
			return fmt.Errorf("field %q: want an integer, got %.40s at offset %d", name, lit, at)
		}
		*dst = int(n)
		return nil
	}
	return d.mismatch("field "+strconv.Quote(name), "an integer")
}

// stringMapField fills a string-to-string map. Like encoding/json it adds
// to a map already there (a repeated field merges), null makes it nil, and
// a null member value stores "".
func (d *decoder) stringMapField(dst *map[string]string, name string) error {
	switch d.peek() {
	case 'n':
		*dst = nil
		return d.literal("null")
	case '{':
		if *dst == nil {
			*dst = make(map[string]string)
		}
		m := *dst
		return d.object(func(d *decoder, key string) error {
			var v string
			if err := d.stringField(&v, name+"."+key); err != nil {
				return err
			}
			m[key] = v
			return nil
		})
	}
	return d.mismatch("field "+strconv.Quote(name), "an object")
}

// skip reads and discards one value of any type.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(skipMember)
	case c == '[':
		return d.array()
	case c == '"':
		_, err := d.str()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, err := d.number()
		return err
	}
	return d.unexpected("looking for a value")
}

func skipMember(d *decoder, _ string) error { return d.skip() }
