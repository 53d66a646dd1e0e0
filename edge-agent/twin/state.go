package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

const (
	// MaxValueBytes is the largest accepted (compacted) JSON value of one key.
	MaxValueBytes = 16 << 10
	// MaxKeys is the largest number of keys, live and tombstones, in a State.
	MaxKeys = 1024
	// MaxKeyLen is the longest accepted key.
	MaxKeyLen = 160
)

// ErrTooManyKeys is wrapped by errors returned when a State would hold more
// than MaxKeys keys.
var ErrTooManyKeys = errors.New("twin: too many keys")

// Entry is one last-writer-wins register.
type Entry struct {
	Value   json.RawMessage `json:"v,omitempty"` // absent when Deleted
	Stamp   Stamp           `json:"s"`
	Deleted bool            `json:"d,omitempty"` // tombstone
}

// State is a twin: key -> register. The zero value (nil map) is not usable
// for writes; use New or make. A State is not safe for concurrent use.
type State map[string]Entry

// New returns an empty State.
func New() State { return make(State) }

// ValidateKey checks the key syntax: 1 to MaxKeyLen characters matching
// ^[A-Za-z0-9_][A-Za-z0-9_./-]*$, with no empty segment ("//") and no
// trailing "/".
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("twin key must not be empty")
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("twin key %q: is %d characters, longer than the limit of %d", truncate(key), len(key), MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case c == '.' || c == '/' || c == '-':
			if i == 0 {
				return fmt.Errorf("twin key %q: must start with a letter, digit or '_', not %q", key, c)
			}
		default:
			return fmt.Errorf("twin key %q: character %q at offset %d is not allowed (use letters, digits, '_', '.', '/', '-')", key, c, i)
		}
	}
	if strings.Contains(key, "//") {
		return fmt.Errorf("twin key %q: must not contain an empty segment", key)
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("twin key %q: must not end with '/'", key)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ValidateEntry checks an entry received from the network: key syntax, a
// non-zero stamp with a valid node id, a tombstone carrying no value, a live
// entry carrying valid JSON of at most MaxValueBytes.
func ValidateEntry(key string, e Entry) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if e.Stamp.IsZero() {
		return fmt.Errorf("twin key %q: entry has no stamp", key)
	}
	if err := validateNode(e.Stamp.Node); err != nil {
		return fmt.Errorf("twin key %q: stamp %s: %w", key, e.Stamp, err)
	}
	if e.Deleted {
		if len(e.Value) != 0 {
			return fmt.Errorf("twin key %q: tombstone must not carry a value", key)
		}
		return nil
	}
	return validateValue(key, e.Value)
}

func validateValue(key string, v json.RawMessage) error {
	if len(v) == 0 {
		return fmt.Errorf("twin key %q: value is missing (use Delete to remove a key)", key)
	}
	if len(v) > MaxValueBytes {
		return fmt.Errorf("twin key %q: value is %d bytes, larger than the limit of %d", key, len(v), MaxValueBytes)
	}
	if !json.Valid(v) {
		return fmt.Errorf("twin key %q: value is not valid JSON", key)
	}
	return nil
}

// wins reports whether a beats b: the greater stamp wins; on identical stamps
// (a misbehaving clock) the tombstone wins, then the greater value bytes.
func wins(a, b Entry) bool {
	if c := a.Stamp.Compare(b.Stamp); c != 0 {
		return c > 0
	}
	if a.Deleted != b.Deleted {
		return a.Deleted
	}
	return bytes.Compare(a.Value, b.Value) > 0
}

func (e Entry) clone() Entry {
	if e.Value != nil {
		e.Value = bytes.Clone(e.Value)
	}
	return e
}

// write stores e under key, first making sure the state stays within
// MaxKeys and advancing c past the current entry so that the new local
// write supersedes whatever this replica has seen for the key.
func (s State) write(c *Clock, key string, e Entry) (Entry, error) {
	if s == nil {
		return Entry{}, fmt.Errorf("twin key %q: write to a nil State (use twin.New)", key)
	}
	if c == nil {
		return Entry{}, fmt.Errorf("twin key %q: nil Clock", key)
	}
	if err := validateNode(c.node); err != nil {
		return Entry{}, fmt.Errorf("twin key %q: clock: %w", key, err)
	}
	old, exists := s[key]
	if !exists && len(s) >= MaxKeys {
		return Entry{}, fmt.Errorf("%w: twin key %q: the twin already holds %d keys (limit %d, tombstones included)", ErrTooManyKeys, key, len(s), MaxKeys)
	}
	if exists {
		c.advance(old.Stamp)
	}
	e.Stamp = c.Now()
	s[key] = e
	return e.clone(), nil
}

// Set validates key and value, compacts the value and stores it stamped with
// c.Now(). It refuses a value larger than MaxValueBytes after compaction and
// a new key when the state already holds MaxKeys keys.
func (s State) Set(c *Clock, key string, value json.RawMessage) (Entry, error) {
	if err := ValidateKey(key); err != nil {
		return Entry{}, err
	}
	if len(value) == 0 {
		return Entry{}, fmt.Errorf("twin key %q: value is missing (use Delete to remove a key)", key)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, value); err != nil {
		return Entry{}, fmt.Errorf("twin key %q: value is not valid JSON: %w", key, err)
	}
	v := json.RawMessage(buf.Bytes())
	if err := validateValue(key, v); err != nil {
		return Entry{}, err
	}
	return s.write(c, key, Entry{Value: v})
}

// Delete stores a tombstone for key stamped with c.Now(). Deleting an absent
// key still writes a tombstone, so that it beats concurrent older writes.
func (s State) Delete(c *Clock, key string) (Entry, error) {
	if err := ValidateKey(key); err != nil {
		return Entry{}, err
	}
	return s.write(c, key, Entry{Deleted: true})
}

// Merge folds remote into s: per key it keeps the winning entry (the greater
// Stamp, see the package documentation). It returns the keys whose entry
// changed, sorted. Merge is idempotent, commutative and associative. It does
// not validate remote; use MergeChecked for input from the network.
func (s State) Merge(remote State) (changed []string) {
	for k, re := range remote {
		if le, ok := s[k]; ok && !wins(re, le) {
			continue
		}
		s[k] = re.clone()
		changed = append(changed, k)
	}
	slices.Sort(changed)
	return changed
}

// MergeChecked validates every remote entry, checks that the merged state
// stays within MaxKeys and observes the remote stamps on c; only if all of
// that succeeds does it merge. On error nothing is merged and c is not
// advanced: a remote state is never half-applied.
func (s State) MergeChecked(remote State, c *Clock) (changed []string, err error) {
	if s == nil {
		return nil, errors.New("twin: merge into a nil State (use twin.New)")
	}
	if c == nil {
		return nil, errors.New("twin: merge: nil Clock")
	}
	keys := make([]string, 0, len(remote))
	for k := range remote {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic first error
	var maxStamp Stamp
	added := 0
	for _, k := range keys {
		e := remote[k]
		if err := ValidateEntry(k, e); err != nil {
			return nil, fmt.Errorf("twin: merge rejected: %w", err)
		}
		if e.Stamp.Compare(maxStamp) > 0 {
			maxStamp = e.Stamp
		}
		if _, ok := s[k]; !ok {
			added++
		}
	}
	if n := len(s) + added; n > MaxKeys {
		return nil, fmt.Errorf("twin: merge rejected: %w: merged twin would hold %d keys (limit %d, tombstones included)", ErrTooManyKeys, n, MaxKeys)
	}
	if len(keys) > 0 {
		if err := c.Observe(maxStamp); err != nil {
			return nil, fmt.Errorf("twin: merge rejected: %w", err)
		}
	}
	return s.Merge(remote), nil
}

// Values returns the live (non-deleted) values of the keys starting with
// prefix, keyed by the key with the prefix stripped. The values are copies.
func (s State) Values(prefix string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage)
	for k, e := range s {
		if e.Deleted || !strings.HasPrefix(k, prefix) {
			continue
		}
		out[strings.TrimPrefix(k, prefix)] = bytes.Clone(e.Value)
	}
	return out
}

// Since returns a copy of the entries whose Stamp is greater than after: the
// delta to send to a peer that has seen everything up to after.
func (s State) Since(after Stamp) State {
	out := make(State)
	for k, e := range s {
		if e.Stamp.Compare(after) > 0 {
			out[k] = e.clone()
		}
	}
	return out
}

// MaxStamp returns the greatest stamp in s, or the zero Stamp if s is empty.
func (s State) MaxStamp() Stamp {
	var m Stamp
	for _, e := range s {
		if e.Stamp.Compare(m) > 0 {
			m = e.Stamp
		}
	}
	return m
}

// Clone returns a deep copy of s.
func (s State) Clone() State {
	out := make(State, len(s))
	for k, e := range s {
		out[k] = e.clone()
	}
	return out
}
