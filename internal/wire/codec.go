// Package wire defines the envelope that carries every message between chorus
// members and the small binary codec that protocol messages are written in.
//
// The codec is append-only on the way out (Buffer) and bounds-checked on the
// way in (Reader). Integers are fixed-width big-endian or canonical unsigned
// varints; byte strings carry an explicit varint length. Decoding input from a
// peer never panics and never allocates more than the input it was given:
// every length is checked against the bytes that remain and against a limit
// the caller names, before anything is allocated.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by Reader and DecodeEnvelope. They are wrapped with the
// field that failed; test with errors.Is.
var (
	ErrTruncated = errors.New("wire: truncated input")
	ErrTooLarge  = errors.New("wire: length over limit")
	ErrMalformed = errors.New("wire: malformed input")
	ErrTrailing  = errors.New("wire: trailing bytes")
	ErrVersion   = errors.New("wire: unsupported version")
)

// Buffer builds an encoding by appending. The zero value is ready to use.
type Buffer struct {
	b []byte
}

// NewBuffer returns a Buffer that appends to dst (which may be nil), so a
// caller can reuse storage or reserve room for a frame header.
func NewBuffer(dst []byte) *Buffer { return &Buffer{b: dst} }

// Bytes returns the encoding so far. It aliases the Buffer's storage.
func (w *Buffer) Bytes() []byte { return w.b }

// Len is the length of the encoding so far.
func (w *Buffer) Len() int { return len(w.b) }

// Uint8, Uint16, Uint32 and Uint64 write fixed-width big-endian integers;
// Uvarint writes a canonical varint.
func (w *Buffer) Uint8(v uint8)   { w.b = append(w.b, v) }
func (w *Buffer) Uint16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *Buffer) Uint32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *Buffer) Uint64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *Buffer) Uvarint(v uint64) {
	w.b = binary.AppendUvarint(w.b, v)
}

// Bool writes one byte, 0 or 1.
func (w *Buffer) Bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// LenBytes writes p with a varint length prefix.
func (w *Buffer) LenBytes(p []byte) {
	w.Uvarint(uint64(len(p)))
	w.b = append(w.b, p...)
}

// String writes s with a varint length prefix.
func (w *Buffer) String(s string) {
	w.Uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// Reader decodes from a byte slice. The first error sticks: later calls
// return zero values, and Err reports the first failure, so a decoder can read
// every field and check once at the end.
type Reader struct {
	b   []byte
	off int
	err error
}

// NewReader returns a Reader over p. Byte strings it returns alias p.
func NewReader(p []byte) *Reader { return &Reader{b: p} }

// Err is the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Remaining is the number of bytes not yet read.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Done returns the first error, or ErrTrailing if input remains unread.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%w: %d bytes after the last field", ErrTrailing, len(r.b)-r.off)
	}
	return nil
}

func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// take returns the next n bytes, or nil after recording ErrTruncated.
func (r *Reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(fmt.Errorf("%w: %s needs %d bytes, %d left", ErrTruncated, field, n, len(r.b)-r.off))
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *Reader) Uint8() uint8 {
	if p := r.take(1, "uint8"); p != nil {
		return p[0]
	}
	return 0
}

func (r *Reader) Uint16() uint16 {
	if p := r.take(2, "uint16"); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *Reader) Uint32() uint32 {
	if p := r.take(4, "uint32"); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *Reader) Uint64() uint64 {
	if p := r.take(8, "uint64"); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// Bool reads one byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	v := r.Uint8()
	if v > 1 {
		r.fail(fmt.Errorf("%w: bool byte %d", ErrMalformed, v))
		return false
	}
	return v == 1
}

// Uvarint reads a canonical varint: the shortest encoding of its value, so
// that every value has exactly one encoding and decode(encode(x)) round-trips
// byte for byte (trace hashes rely on it).
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.fail(fmt.Errorf("%w: varint", ErrTruncated))
		return 0
	case n < 0:
		r.fail(fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed))
		return 0
	case n != UvarintLen(v):
		r.fail(fmt.Errorf("%w: non-canonical varint", ErrMalformed))
		return 0
	}
	r.off += n
	return v
}

// UvarintLen is the number of bytes Buffer.Uvarint writes for v: what a
// caller needs to size an encoding before writing it.
func UvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// LenBytes reads a length-prefixed byte string of at most max bytes. The
// result aliases the input.
func (r *Reader) LenBytes(max int) []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail(fmt.Errorf("%w: byte string of %d bytes, limit %d", ErrTooLarge, n, max))
		return nil
	}
	return r.take(int(n), "byte string")
}

// String reads a length-prefixed string of at most max bytes.
func (r *Reader) String(max int) string { return string(r.LenBytes(max)) }

// Count reads the varint element count of a list that follows, checking it
// against max and against the bytes left (every element takes at least
// minElemBytes), so a decoder can allocate count elements without trusting the
// peer.
func (r *Reader) Count(max, minElemBytes int) int {
	n := r.Uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(max) {
		r.fail(fmt.Errorf("%w: list of %d elements, limit %d", ErrTooLarge, n, max))
		return 0
	}
	if minElemBytes > 0 && n > uint64(r.Remaining()/minElemBytes) {
		r.fail(fmt.Errorf("%w: list of %d elements in %d bytes", ErrTruncated, n, r.Remaining()))
		return 0
	}
	return int(n)
}
