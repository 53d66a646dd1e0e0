package funchost

import "github.com/tetratelabs/wazero/experimental"

// pageSize is the size of a WebAssembly memory page.
const pageSize = 65536

// cappedAllocator gives each instance a linear memory that refuses to grow
// past limit bytes. wazero's own limit is per runtime; this makes it per
// Function while all Functions share one runtime.
type cappedAllocator struct{ limit uint64 }

func (a cappedAllocator) Allocate(capacity, _ uint64) experimental.LinearMemory {
	return &cappedMemory{buf: make([]byte, 0, min(capacity, a.limit)), limit: a.limit}
}

type cappedMemory struct {
	buf   []byte
	limit uint64
}

// Reallocate grows the memory; nil makes the guest's memory.grow return -1.
// Bytes past len were never written, so reslicing within cap yields zeroes.
func (m *cappedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		return nil
	}
	if size > uint64(cap(m.buf)) {
		grown := make([]byte, size, max(size, min(2*uint64(cap(m.buf)), m.limit)))
		copy(grown, m.buf)
		m.buf = grown
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *cappedMemory) Free() { m.buf = nil }
