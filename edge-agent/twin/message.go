package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Message kinds.
const (
	// KindFull carries the whole state; it is sent on every (re)connect.
	KindFull = "full"
	// KindDelta carries only changed entries.
	KindDelta = "delta"
)

// Message is what twin peers exchange, encoded as JSON. Kind "full" carries
// the whole state (sent on every (re)connect), "delta" only changed entries.
// Entries are not validated by DecodeMessage; merge them with
// State.MergeChecked.
type Message struct {
	Kind    string `json:"kind"`    // "full" | "delta"
	From    string `json:"from"`    // node id
	Entries State  `json:"entries"` // key -> entry
}

func (m Message) check() error {
	if m.Kind != KindFull && m.Kind != KindDelta {
		return fmt.Errorf("unknown kind %q (want %q or %q)", m.Kind, KindFull, KindDelta)
	}
	if err := validateNode(m.From); err != nil {
		return fmt.Errorf("field \"from\": %w", err)
	}
	return nil
}

// DecodeMessage decodes a twin message of at most maxBytes bytes. It rejects
// larger input, invalid JSON, trailing data, an unknown kind and a missing
// or malformed "from". A missing "entries" decodes as an empty State.
func DecodeMessage(b []byte, maxBytes int) (Message, error) {
	if maxBytes <= 0 {
		return Message{}, fmt.Errorf("twin: decode message: maxBytes must be positive, got %d", maxBytes)
	}
	if len(b) > maxBytes {
		return Message{}, fmt.Errorf("twin: decode message: %d bytes exceeds the limit of %d", len(b), maxBytes)
	}
	var m Message
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("twin: decode message: invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, errors.New("twin: decode message: invalid JSON: trailing data after the message")
	}
	if err := m.check(); err != nil {
		return Message{}, fmt.Errorf("twin: decode message: %w", err)
	}
	if m.Entries == nil {
		m.Entries = New()
	}
	return m, nil
}

// Encode returns the JSON encoding of m (keys sorted, deterministic).
func (m Message) Encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("twin: encode message: %w", err)
	}
	if m.Entries == nil {
		m.Entries = New()
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("twin: encode message: %w", err)
	}
	return b, nil
}
