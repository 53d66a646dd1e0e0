package twin

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxSkew is the default bound on how far ahead of the local physical
// clock a remote stamp may be before Clock.Observe rejects it.
const DefaultMaxSkew = 5 * time.Minute

// MaxNodeBytes bounds the length of a node id (Stamp.Node).
const MaxNodeBytes = 253

// ErrClockSkew is wrapped by the error Clock.Observe returns when a remote
// stamp is further ahead of the local physical clock than the allowed skew.
var ErrClockSkew = errors.New("twin: remote clock is too far ahead")

// Stamp is a hybrid logical clock timestamp. Stamps are totally ordered by
// Wall, then Logical, then Node (string comparison), so stamps issued by
// different nodes never tie.
type Stamp struct {
	Wall    int64  `json:"w"` // unix nanoseconds of the physical clock
	Logical uint32 `json:"l"` // counter disambiguating equal Wall values
	Node    string `json:"n"` // writer id, e.g. "hub" or "ns/device"
}

// Compare returns -1, 0 or +1 when s is less than, equal to or greater than o.
func (s Stamp) Compare(o Stamp) int {
	switch {
	case s.Wall < o.Wall:
		return -1
	case s.Wall > o.Wall:
		return 1
	case s.Logical < o.Logical:
		return -1
	case s.Logical > o.Logical:
		return 1
	}
	return strings.Compare(s.Node, o.Node)
}

// IsZero reports whether s is the zero Stamp.
func (s Stamp) IsZero() bool {
	return s.Wall == 0 && s.Logical == 0 && s.Node == ""
}

// String formats s as "<wall>.<logical>@<node>", for example
// "1732521600000000000.3@hub". ParseStamp is its inverse.
func (s Stamp) String() string {
	return strconv.FormatInt(s.Wall, 10) + "." + strconv.FormatUint(uint64(s.Logical), 10) + "@" + s.Node
}

// ParseStamp parses the output of Stamp.String. Only the canonical form is
// accepted (no signs other than a leading '-' on wall, no leading zeros).
func ParseStamp(str string) (Stamp, error) {
	clock, node, ok := strings.Cut(str, "@")
	if !ok {
		return Stamp{}, fmt.Errorf("twin: parse stamp %q: missing '@' before the node id", str)
	}
	wallStr, logStr, ok := strings.Cut(clock, ".")
	if !ok {
		return Stamp{}, fmt.Errorf("twin: parse stamp %q: missing '.' between wall time and logical counter", str)
	}
	wall, err := strconv.ParseInt(wallStr, 10, 64)
	if err != nil {
		return Stamp{}, fmt.Errorf("twin: parse stamp %q: wall time: %w", str, err)
	}
	logical, err := strconv.ParseUint(logStr, 10, 32)
	if err != nil {
		return Stamp{}, fmt.Errorf("twin: parse stamp %q: logical counter: %w", str, err)
	}
	s := Stamp{Wall: wall, Logical: uint32(logical), Node: node}
	if s.String() != str {
		return Stamp{}, fmt.Errorf("twin: parse stamp %q: not in canonical form (want %q)", str, s.String())
	}
	if node == "" && !s.IsZero() {
		return Stamp{}, fmt.Errorf("twin: parse stamp %q: empty node id", str)
	}
	if err := validateNode(node); node != "" && err != nil {
		return Stamp{}, fmt.Errorf("twin: parse stamp %q: %w", str, err)
	}
	return s, nil
}

func validateNode(node string) error {
	if node == "" {
		return errors.New("node id must not be empty")
	}
	if len(node) > MaxNodeBytes {
		return fmt.Errorf("node id is %d bytes, longer than the limit of %d", len(node), MaxNodeBytes)
	}
	for i := 0; i < len(node); i++ {
		if c := node[i]; c < 0x21 || c == 0x7f {
			return fmt.Errorf("node id %q must not contain spaces or control characters", node)
		}
	}
	return nil
}

// Clock issues stamps for one node following the hybrid logical clock
// algorithm of Kulkarni et al.: every stamp returned by Now is strictly
// greater than every stamp the clock issued or observed before, and its Wall
// tracks the physical clock whenever the physical clock is ahead.
// A Clock is safe for concurrent use.
type Clock struct {
	node    string
	now     func() time.Time
	maxSkew time.Duration

	mu   sync.Mutex
	last Stamp // greatest stamp issued, observed or restored
}

// NewClock returns a clock issuing stamps for node. now is the physical clock
// (nil means time.Now); maxSkew bounds how far ahead of it an observed stamp
// may be (0 or negative means DefaultMaxSkew).
func NewClock(node string, now func() time.Time, maxSkew time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	return &Clock{node: node, now: now, maxSkew: maxSkew}
}

// Node returns the node id the clock stamps with.
func (c *Clock) Node() string { return c.node }

// Now returns a new stamp, strictly greater than every stamp the clock issued
// or observed, even when the physical clock goes backwards.
func (c *Clock) Now() Stamp {
	pt := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.last.Wall:
		c.last = Stamp{Wall: pt, Node: c.node}
	case c.last.Logical == math.MaxUint32:
		c.last = Stamp{Wall: c.last.Wall + 1, Node: c.node}
	default:
		c.last = Stamp{Wall: c.last.Wall, Logical: c.last.Logical + 1, Node: c.node}
	}
	return c.last
}

// Observe advances the clock past remote so that later stamps from Now are
// greater than it. When remote.Wall is more than the clock's max skew ahead
// of the local physical clock, Observe does not advance and returns an error
// wrapping ErrClockSkew.
func (c *Clock) Observe(remote Stamp) error {
	pt := c.now().UnixNano()
	if ahead := remote.Wall - pt; remote.Wall > pt && ahead > int64(c.maxSkew) {
		return fmt.Errorf("%w: stamp %s is %s ahead of the local clock of %q (limit %s)",
			ErrClockSkew, remote, time.Duration(ahead), c.node, c.maxSkew)
	}
	c.advance(remote)
	return nil
}

// advance moves the clock to at least s without any skew check.
func (c *Clock) advance(s Stamp) {
	c.mu.Lock()
	if s.Compare(c.last) > 0 {
		c.last = s
	}
	c.mu.Unlock()
}

// Last returns the greatest stamp the clock issued, observed or restored.
func (c *Clock) Last() Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Restore makes sure the clock never issues a stamp less than or equal to
// last. Call it after a restart with the persisted last stamp.
func (c *Clock) Restore(last Stamp) {
	c.advance(last)
}
