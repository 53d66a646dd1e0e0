// Package twin implements the offline-first device twin shared by the edge
// agent (on the device) and the edge hub (in the cluster manager).
//
// A twin is a map of properties keyed by strings such as "desired/setpoint"
// or "reported/temperature". The package treats keys as opaque strings but
// validates their syntax (see ValidateEntry). Both sides may change the same
// key while they are partitioned; once they exchange state they converge
// with zero lost updates.
//
// # Data model
//
// A State is a state-based CRDT: a map of last-writer-wins (LWW) registers,
// one per key, each stamped with a hybrid logical clock (HLC) Stamp. Merging
// two states keeps, per key, the entry with the greater Stamp. Merge is
// idempotent, commutative and associative, so replicas that have seen the
// same set of writes hold identical states regardless of the order or
// grouping in which they exchanged them.
//
// # Conflict rule (concurrent edits of one key)
//
// When two replicas write the same key concurrently, the write with the
// greater HLC stamp wins on every replica:
//
//  1. the later physical time (Stamp.Wall) wins;
//  2. on equal physical time, the greater logical counter (Stamp.Logical);
//  3. on equal counters, the lexically greater node id (Stamp.Node), e.g.
//     "ns/device" beats "hub".
//
// Stamps of different nodes therefore never tie. A delete is a write too: it
// stores a tombstone (Entry.Deleted) that competes with Set by the same rule.
// Tombstones are kept, so a delete cannot be undone by an older write that
// arrives late; a later Set resurrects the key. Should two different entries
// ever carry an identical stamp (only possible when a node's clock was reset
// without Clock.Restore), the tombstone wins, then the lexically greater
// value bytes, which keeps Merge deterministic and commutative even then.
//
// # Why a hybrid logical clock
//
// Pure wall clocks are unsafe on devices: a device whose RTC is hours behind
// would lose every edit, one that is ahead would win every edit and a clock
// that steps backwards would let a replica's own newer write lose to its older
// one. Pure logical clocks (Lamport, vector) preserve causality but ignore real
// time, so "the latest edit" would mean nothing to an operator.
//
// An HLC stays within a bounded distance of physical time (Clock rejects
// remote stamps more than MaxSkew ahead of the local clock with ErrClockSkew,
// so one broken clock cannot drag the whole fleet into the future), while
// preserving causality: Clock.Now is strictly greater than every stamp the
// clock issued or observed, so a write made after observing another write
// always wins against it, whatever the physical clocks say. Only truly
// concurrent writes are decided by physical time, then by the tie rule above.
//
// # Exchange and persistence
//
// Peers exchange Message values: "full" carries the whole state and is sent
// on every (re)connect, "delta" carries only changed entries (State.Since).
// Input from the network must be merged with State.MergeChecked, which
// validates every entry and observes every stamp before applying anything.
//
// Store persists a State and the clock in a bbolt database, and holds an
// on-disk FIFO outbox for messages that could not be sent while offline.
package twin
