package tuf

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"slices"
	"unicode/utf8"
)

// maxDepth bounds the nesting Canonicalize accepts, so hostile input cannot
// exhaust the stack.
const maxDepth = 64

var integer = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// Canonicalize returns the canonical JSON form of the JSON value b, the bytes
// that signatures cover: object keys sorted bytewise, no insignificant
// whitespace, strings encoded as encoding/json does but without HTML
// escaping. Only integers are allowed as numbers (floats have no single
// canonical form), and duplicate object keys are refused because parsers
// disagree on which one wins.
func Canonicalize(b []byte) ([]byte, error) {
	// encoding/json would silently replace invalid UTF-8, letting different
	// bytes share a signature.
	if !utf8.Valid(b) {
		return nil, errorf(ErrInvalid, "canonical JSON: invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var buf bytes.Buffer
	if err := canonValue(dec, &buf, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errorf(ErrInvalid, "canonical JSON: data after the top-level value")
	}
	return buf.Bytes(), nil
}

// marshalCanonical encodes v with encoding/json and canonicalizes the result.
func marshalCanonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(b)
}

func canonValue(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return errorf(ErrInvalid, "canonical JSON: %w", err)
	}
	switch v := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return errorf(ErrInvalid, "canonical JSON: nested deeper than %d levels", maxDepth)
		}
		if v == '{' {
			return canonObject(dec, buf, depth)
		}
		return canonArray(dec, buf, depth)
	case string:
		writeString(buf, v)
	case json.Number:
		if !integer.MatchString(v.String()) || v == "-0" {
			return errorf(ErrInvalid, "canonical JSON: number %s is not an integer", v)
		}
		buf.WriteString(v.String())
	case bool:
		if v {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case nil:
		buf.WriteString("null")
	}
	return nil
}

func canonObject(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	members := map[string][]byte{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errorf(ErrInvalid, "canonical JSON: %w", err)
		}
		key, _ := tok.(string) // the decoder guarantees a string key here
		if _, dup := members[key]; dup {
			return errorf(ErrInvalid, "canonical JSON: duplicate key %q", key)
		}
		var value bytes.Buffer
		if err := canonValue(dec, &value, depth+1); err != nil {
			return err
		}
		members[key] = value.Bytes()
	}
	if _, err := dec.Token(); err != nil { // '}'
		return errorf(ErrInvalid, "canonical JSON: %w", err)
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, k)
		buf.WriteByte(':')
		buf.Write(members[k])
	}
	buf.WriteByte('}')
	return nil
}

func canonArray(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	buf.WriteByte('[')
	for i := 0; dec.More(); i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := canonValue(dec, buf, depth+1); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return errorf(ErrInvalid, "canonical JSON: %w", err)
	}
	buf.WriteByte(']')
	return nil
}

func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // encoding a string cannot fail
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}
