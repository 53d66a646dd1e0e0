package twin

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// MaxOutbox is the capacity of the outbox. Enqueue beyond it drops the
// oldest item (see Store.Dropped).
const MaxOutbox = 10000

// maxOutbox is the effective outbox capacity; tests lower it.
var maxOutbox uint64 = MaxOutbox

// openTimeout bounds the wait for the database file lock.
const openTimeout = time.Second

var (
	bucketEntries = []byte("entries")
	bucketMeta    = []byte("meta")
	bucketOutbox  = []byte("outbox")

	metaClock       = []byte("clock")
	metaOutboxCount = []byte("outbox_count")
	metaDropped     = []byte("outbox_dropped")
)

// Pending is one outbox item.
type Pending struct {
	Seq     uint64 // position in the outbox, increasing; pass to Ack
	Topic   string // destination topic
	Payload []byte // message body
}

// Store persists a twin State, its clock and the outbox in a bbolt database.
// It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	dropped atomic.Uint64
}

// OpenStore opens (creating if needed, mode 0600) the bbolt database at path
// and creates its buckets. It waits at most one second for the file lock and
// fails with a clear error if another process (or Store) holds it.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("twin: open store %s: the database is locked by another process or is already open (gave up after %s): %w", path, openTimeout, err)
		}
		return nil, fmt.Errorf("twin: open store %s: %w", path, err)
	}
	st := &Store{db: db, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEntries, bucketMeta, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %q: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(metaOutboxCount) == nil {
			n := uint64(tx.Bucket(bucketOutbox).Stats().KeyN)
			if err := meta.Put(metaOutboxCount, u64(n)); err != nil {
				return fmt.Errorf("init outbox count: %w", err)
			}
		}
		st.dropped.Store(getU64(meta, metaDropped))
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("twin: open store %s: %w", path, err)
	}
	return st, nil
}

// Close closes the database.
func (st *Store) Close() error {
	if err := st.db.Close(); err != nil {
		return fmt.Errorf("twin: close store %s: %w", st.path, err)
	}
	return nil
}

// Load returns the persisted state and the clock's last stamp, which is never
// less than the greatest stamp of a stored entry. Pass it to Clock.Restore.
func (st *Store) Load() (State, Stamp, error) {
	s := New()
	var last Stamp
	err := st.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaClock); v != nil {
			var err error
			if last, err = ParseStamp(string(v)); err != nil {
				return fmt.Errorf("stored clock: %w", err)
			}
		}
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("stored entry %q: %w", k, err)
			}
			if err := ValidateEntry(string(k), e); err != nil {
				return fmt.Errorf("stored entry: %w", err)
			}
			s[string(k)] = e.clone()
			return nil
		})
	})
	if err != nil {
		return nil, Stamp{}, fmt.Errorf("twin: load %s: %w", st.path, err)
	}
	if m := s.MaxStamp(); m.Compare(last) > 0 {
		last = m
	}
	return s, last, nil
}

// Save persists changed entries and the clock's last stamp in one fsync'd
// transaction: once Save returns nil a crash loses nothing. Entries are
// merged into the stored ones (a stored entry that wins is kept) and the
// stored clock never moves backwards, so Save is idempotent and the order of
// concurrent Saves does not matter. Every entry is validated first.
func (st *Store) Save(changed State, last Stamp) error {
	type kv struct{ k, v []byte }
	enc := make([]kv, 0, len(changed))
	for k, e := range changed {
		if err := ValidateEntry(k, e); err != nil {
			return fmt.Errorf("twin: save: %w", err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("twin: save key %q: %w", k, err)
		}
		enc = append(enc, kv{[]byte(k), b})
	}
	err := st.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		for _, x := range enc {
			if old := b.Get(x.k); old != nil {
				var oe Entry
				if err := json.Unmarshal(old, &oe); err == nil && !wins(changed[string(x.k)], oe) {
					continue
				}
			}
			if err := b.Put(x.k, x.v); err != nil {
				return fmt.Errorf("put %q: %w", x.k, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaClock); v != nil {
			if old, err := ParseStamp(string(v)); err == nil && old.Compare(last) >= 0 {
				return nil
			}
		}
		if last.IsZero() {
			return nil
		}
		if err := meta.Put(metaClock, []byte(last.String())); err != nil {
			return fmt.Errorf("put clock: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("twin: save %s: %w", st.path, err)
	}
	return nil
}

// Enqueue appends a message to the outbox and returns its sequence number.
// When the outbox already holds MaxOutbox items the oldest are dropped to
// make room; this is not an error but is counted (see Dropped).
func (st *Store) Enqueue(topic string, payload []byte) (seq uint64, err error) {
	if topic == "" {
		return 0, errors.New("twin: enqueue: topic must not be empty")
	}
	var dropped uint64
	err = st.db.Update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		meta := tx.Bucket(bucketMeta)
		n := getU64(meta, metaOutboxCount)
		c := ob.Cursor()
		for k, _ := c.First(); k != nil && n >= maxOutbox; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return fmt.Errorf("drop oldest: %w", err)
			}
			n--
			dropped++
		}
		var err error
		if seq, err = ob.NextSequence(); err != nil {
			return fmt.Errorf("next sequence: %w", err)
		}
		v := make([]byte, 0, binary.MaxVarintLen64+len(topic)+len(payload))
		v = binary.AppendUvarint(v, uint64(len(topic)))
		v = append(append(v, topic...), payload...)
		if err := ob.Put(u64(seq), v); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		if err := meta.Put(metaOutboxCount, u64(n+1)); err != nil {
			return fmt.Errorf("put count: %w", err)
		}
		if dropped > 0 {
			if err := meta.Put(metaDropped, u64(getU64(meta, metaDropped)+dropped)); err != nil {
				return fmt.Errorf("put dropped: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("twin: enqueue on %q: %w", topic, err)
	}
	st.dropped.Add(dropped)
	return seq, nil
}

// Pending returns up to limit outbox items, oldest first (limit <= 0: all).
func (st *Store) Pending(limit int) ([]Pending, error) {
	var out []Pending
	err := st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			n, w := binary.Uvarint(v)
			if len(k) != 8 || w <= 0 || n > uint64(len(v)-w) {
				return fmt.Errorf("corrupt outbox item %x", k)
			}
			out = append(out, Pending{
				Seq:     binary.BigEndian.Uint64(k),
				Topic:   string(v[w : w+int(n)]),
				Payload: bytes.Clone(v[w+int(n):]),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("twin: outbox pending: %w", err)
	}
	return out, nil
}

// Ack removes the outbox item seq. Acknowledging an item that is not there
// (already acknowledged or dropped) is not an error.
func (st *Store) Ack(seq uint64) error {
	err := st.db.Update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		k := u64(seq)
		if ob.Get(k) == nil {
			return nil
		}
		if err := ob.Delete(k); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if n := getU64(meta, metaOutboxCount); n > 0 {
			return meta.Put(metaOutboxCount, u64(n-1))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("twin: outbox ack %d: %w", seq, err)
	}
	return nil
}

// Dropped returns how many outbox items were dropped because the outbox was
// full, over the lifetime of the database.
func (st *Store) Dropped() uint64 { return st.dropped.Load() }

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func getU64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
