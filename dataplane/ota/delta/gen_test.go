package delta

import (
	"math/rand"
)

// firmwareImage builds a deterministic image that looks like firmware: random
// (incompressible) blocks standing in for compressed sections, repeated
// structures (tables of similar records, "code" built from a small
// vocabulary), and zero padding.
func firmwareImage(r *rand.Rand, size int) []byte {
	img := make([]byte, 0, size)
	vocab := make([][]byte, 64)
	for i := range vocab {
		vocab[i] = make([]byte, 4+r.Intn(12))
		r.Read(vocab[i])
	}
	for len(img) < size {
		n := 4096 + r.Intn(60<<10)
		switch r.Intn(4) {
		case 0: // random block
			b := make([]byte, n)
			r.Read(b)
			img = append(img, b...)
		case 1: // record table
			rec := make([]byte, 32)
			r.Read(rec)
			for i := 0; i < n/32; i++ {
				rec[0], rec[1] = byte(i), byte(i>>8)
				rec[8+r.Intn(24)] = byte(r.Intn(256))
				img = append(img, rec...)
			}
		case 2: // "code" from a vocabulary
			for end := len(img) + n; len(img) < end; {
				img = append(img, vocab[r.Intn(len(vocab))]...)
			}
		case 3: // padding
			img = append(img, make([]byte, n/2)...)
		}
	}
	return img[:size]
}

func randomImage(r *rand.Rand, size int) []byte {
	b := make([]byte, size)
	r.Read(b)
	return b
}

// mutate returns a copy of old in which roughly frac of the bytes are
// changed: scattered byte flips, a few inserted and deleted ranges (which
// shift all following offsets) and one rewritten region.
func mutate(r *rand.Rand, old []byte, frac float64) []byte {
	b := append([]byte(nil), old...)
	if len(b) == 0 {
		return b
	}
	budget := int(float64(len(old)) * frac)
	flips := budget / 10             // 10% of the budget: scattered single bytes
	edits := budget * 3 / 10         // 30%: inserts/deletes in 4 ranges
	region := budget - flips - edits // 60%: one changed region
	for i := 0; i < flips; i++ {
		b[r.Intn(len(b))] ^= byte(1 + r.Intn(255))
	}
	if region > 0 && region < len(b) {
		off := r.Intn(len(b) - region)
		r.Read(b[off : off+region])
	}
	for i := 0; i < 4 && edits >= 4; i++ {
		n := edits / 4
		off := r.Intn(len(b))
		if i%2 == 0 { // insert
			ins := make([]byte, n)
			r.Read(ins)
			b = append(b[:off], append(ins, b[off:]...)...)
		} else if off+n <= len(b) { // delete
			b = append(b[:off], b[off+n:]...)
		}
	}
	return b
}
