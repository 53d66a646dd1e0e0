// Package delta computes and applies binary deltas between firmware images
// for OTA updates.
//
// # Format
//
// A delta is a fixed header followed by a payload:
//
//	offset size field
//	0      4    magic "CDLT"
//	4      1    length n of the format name
//	5      n    format name (Format, "cairn-zstd-patch-v1")
//	5+n    32   SHA-256 of the old (base) image
//	37+n   32   SHA-256 of the new (target) image
//	69+n   8    size of the new image, big endian
//	77+n   ...  payload
//
// The payload of "cairn-zstd-patch-v1" is a single zstd frame that encodes the
// new image using the complete old image as a raw-content dictionary (zstd
// "patch-from", as in `zstd --patch-from`): matches may reference any byte of
// the old image or of the already decoded part of the new image. The frame's
// dictionary ID is 0 (raw content); the base image is identified by its
// SHA-256 in the header instead.
//
// # Limits
//
// Both images are limited to MaxImageBytes (64 MiB). The zstd window is the
// smallest power of two ≥ len(old)+len(new) (at least 1 MiB, at most
// 2*MaxImageBytes = 128 MiB) so that any byte of the old image stays
// reachable while the whole new image is encoded. The decoder accepts windows
// up to MaxWindowBytes and never decodes more than the NewSize announced in
// the header (itself ≤ MaxImageBytes).
//
// Measured on a 16 MiB image (see bench_test.go): Create allocates ~8.5x the
// image size (133-141 MiB peak heap: zstd best-level hash/chain tables and a
// window-sized history), so it belongs on the build server. Apply allocates
// about len(new) beyond its inputs (the result); ApplyTo about len(old) (the
// decoder's window history holds the dictionary), independent of len(new).
//
// The approach was chosen over a hand-written rolling-hash COPY/INSERT delta
// because klauspost's raw dictionary does find matches across the whole
// history: swapping the two halves of a 16 MiB random image yields a ~2 KB
// delta, and a 1% change of a 16 MiB image costs 1.34% (the random bytes of
// the change itself are ~0.9%), leaving little for another scheme to win.
package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// Format names the delta format in the header, so future formats can coexist.
const Format = "cairn-zstd-patch-v1"

// MaxImageBytes is the largest old or new image accepted.
const MaxImageBytes = 64 << 20

// MaxWindowBytes is the largest zstd window Create emits and Apply accepts.
const MaxWindowBytes = 2 * MaxImageBytes

const (
	magic          = "CDLT"
	minWindowBytes = 1 << 20
)

// Errors returned by Apply and ReadHeader; match with errors.Is.
var (
	// ErrWrongBase: the supplied old image is not the one the delta was made for.
	ErrWrongBase = errors.New("delta is for another base image")
	// ErrCorrupt: the delta cannot be parsed or decoded.
	ErrCorrupt = errors.New("corrupted delta")
	// ErrResultMismatch: the decoded image does not hash to Header.NewSHA256.
	ErrResultMismatch = errors.New("result does not match the target sha256")
	// ErrTooLarge: an input exceeds MaxImageBytes.
	ErrTooLarge = errors.New("image too large")
	// ErrUnknownFormat: the header names a format this package cannot apply.
	ErrUnknownFormat = errors.New("unknown delta format")
)

// Header describes a delta.
type Header struct {
	Format    string
	OldSHA256 [32]byte
	NewSHA256 [32]byte
	NewSize   int64
}

func (h Header) marshal() []byte {
	b := make([]byte, 0, 4+1+len(h.Format)+32+32+8)
	b = append(b, magic...)
	b = append(b, byte(len(h.Format)))
	b = append(b, h.Format...)
	b = append(b, h.OldSHA256[:]...)
	b = append(b, h.NewSHA256[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.NewSize))
	return b
}

// parseHeader returns the header and its encoded length.
func parseHeader(delta []byte) (Header, int, error) {
	var h Header
	if len(delta) < 5 || string(delta[:4]) != magic {
		return h, 0, fmt.Errorf("%w: missing header magic", ErrCorrupt)
	}
	n := int(delta[4])
	end := 5 + n + 32 + 32 + 8
	if len(delta) < end {
		return h, 0, fmt.Errorf("%w: truncated header", ErrCorrupt)
	}
	p := 5
	h.Format = string(delta[p : p+n])
	p += n
	copy(h.OldSHA256[:], delta[p:p+32])
	p += 32
	copy(h.NewSHA256[:], delta[p:p+32])
	p += 32
	size := binary.BigEndian.Uint64(delta[p : p+8])
	if size > MaxImageBytes {
		return h, 0, fmt.Errorf("%w: header announces %d-byte image, limit is %d", ErrCorrupt, size, MaxImageBytes)
	}
	h.NewSize = int64(size)
	return h, end, nil
}

// ReadHeader parses the header of a delta without applying it.
func ReadHeader(delta []byte) (Header, error) {
	h, _, err := parseHeader(delta)
	return h, err
}

func checkSize(what string, n int) error {
	if n > MaxImageBytes {
		return fmt.Errorf("%w: %s image is %d bytes, limit is %d", ErrTooLarge, what, n, MaxImageBytes)
	}
	return nil
}

func windowFor(n int) int {
	w := minWindowBytes
	for w < n && w < MaxWindowBytes {
		w <<= 1
	}
	return w
}

// Create returns a delta that turns old into new.
func Create(old, new []byte) ([]byte, error) {
	if err := checkSize("old", len(old)); err != nil {
		return nil, err
	}
	if err := checkSize("new", len(new)); err != nil {
		return nil, err
	}
	h := Header{
		Format:    Format,
		OldSHA256: sha256.Sum256(old),
		NewSHA256: sha256.Sum256(new),
		NewSize:   int64(len(new)),
	}
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(windowFor(len(old) + len(new))),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true),
	}
	if len(old) > 0 {
		opts = append(opts, zstd.WithEncoderDictRaw(0, old))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("delta: zstd encoder: %w", err)
	}
	out := enc.EncodeAll(new, h.marshal())
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("delta: zstd encoder: %w", err)
	}
	return out, nil
}

// newDecoder returns a decoder with old as raw dictionary. maxMem is passed to
// zstd.WithDecoderMaxMemory: for DecodeAll it bounds the decoded size, for
// streaming it bounds the window.
func newDecoder(old []byte, maxMem uint64) (*zstd.Decoder, error) {
	opts := []zstd.DOption{
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(MaxWindowBytes),
		zstd.WithDecoderMaxMemory(maxMem),
		zstd.IgnoreChecksum(false),
	}
	if len(old) > 0 {
		opts = append(opts, zstd.WithDecoderDictRaw(0, old))
	}
	return zstd.NewReader(nil, opts...)
}

func parseAndCheckBase(old, delta []byte) (Header, int, error) {
	if err := checkSize("old", len(old)); err != nil {
		return Header{}, 0, err
	}
	h, n, err := parseHeader(delta)
	if err != nil {
		return h, 0, err
	}
	if h.Format != Format {
		return h, 0, fmt.Errorf("%w %q (want %q)", ErrUnknownFormat, h.Format, Format)
	}
	if got := sha256.Sum256(old); got != h.OldSHA256 {
		return h, 0, fmt.Errorf("%w (sha256 %s, but the installed image is %s)",
			ErrWrongBase, hex.EncodeToString(h.OldSHA256[:]), hex.EncodeToString(got[:]))
	}
	return h, n, nil
}

// Apply reconstructs the new image from old and delta. It verifies old's
// SHA-256 against the header before decoding and the result's SHA-256 after;
// on any error it returns nil.
func Apply(old, delta []byte) ([]byte, error) {
	h, n, err := parseAndCheckBase(old, delta)
	if err != nil {
		return nil, err
	}
	// Bound the decoded size by what the header promises (plus slack, so an
	// overshoot is reported as a size mismatch; klauspost rejects a
	// 1-byte limit for empty frames).
	dec, err := newDecoder(old, uint64(h.NewSize)+minWindowBytes)
	if err != nil {
		return nil, fmt.Errorf("delta: zstd decoder: %w", err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(delta[n:], make([]byte, 0, h.NewSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if int64(len(out)) != h.NewSize {
		return nil, fmt.Errorf("%w: decoded %d bytes, header says %d", ErrCorrupt, len(out), h.NewSize)
	}
	if sha256.Sum256(out) != h.NewSHA256 {
		return nil, ErrResultMismatch
	}
	return out, nil
}

// ApplyTo streams the new image to w while decoding delta. old's SHA-256 is
// checked before anything is written, but the result's SHA-256 can only be
// checked at the end: on ErrResultMismatch or ErrCorrupt, w has already
// received (wrong or partial) data and the caller must discard it (e.g. write
// to an inactive A/B slot and only switch after ApplyTo returns nil).
func ApplyTo(w io.Writer, old []byte, delta io.Reader) error {
	// Read the fixed header prefix.
	pre := make([]byte, 5)
	if _, err := io.ReadFull(delta, pre); err != nil {
		return fmt.Errorf("%w: truncated header: %w", ErrCorrupt, err)
	}
	rest := make([]byte, int(pre[4])+32+32+8)
	if _, err := io.ReadFull(delta, rest); err != nil {
		return fmt.Errorf("%w: truncated header: %w", ErrCorrupt, err)
	}
	hdr := slices.Concat(pre, rest)
	h, _, err := parseAndCheckBase(old, hdr)
	if err != nil {
		return err
	}
	// Output size is bounded by the LimitReader below.
	dec, err := newDecoder(old, MaxWindowBytes)
	if err != nil {
		return fmt.Errorf("delta: zstd decoder: %w", err)
	}
	defer dec.Close()
	if err := dec.Reset(delta); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(errWriter{w}, sum), io.LimitReader(dec, h.NewSize+1))
	if err != nil {
		var we writeErr
		if errors.As(err, &we) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if n != h.NewSize {
		return fmt.Errorf("%w: decoded %d bytes, header says %d", ErrCorrupt, n, h.NewSize)
	}
	if !bytes.Equal(sum.Sum(nil), h.NewSHA256[:]) {
		return ErrResultMismatch
	}
	return nil
}

// writeErr marks errors from the caller's writer so they are not reported
// as delta corruption.
type writeErr struct{ error }

func (e writeErr) Unwrap() error { return e.error }

type errWriter struct{ w io.Writer }

func (e errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		err = writeErr{err}
	}
	return n, err
}
