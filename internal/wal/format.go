package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// The on-disk layout; doc.go draws it.
const (
	segmentMagic   = "CHORUSWL"
	segmentVersion = 1
	// segmentHeaderBytes is the size of the header at the start of every
	// segment file.
	segmentHeaderBytes = 24
	// frameHeaderBytes is the size of a record's frame before its data.
	frameHeaderBytes = 21

	// segmentBytesLimit is the largest segment file the format allows, so
	// that an offset inside a segment fits in a uint32 (the in-memory index
	// stores one per record) with room to spare.
	segmentBytesLimit = 1 << 30

	segmentSuffix = ".wal"
	tempSuffix    = ".tmp"
	frontSuffix   = ".front"
	lockName      = "LOCK"
)

// castagnoli is the CRC32C table: hardware-accelerated on amd64 and arm64,
// and better at catching burst errors than the IEEE polynomial.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentName is the file name of the segment whose first record has index
// first: 16 lower-case hex digits, so names sort in index order.
func segmentName(first uint64) string {
	return fmt.Sprintf("%016x%s", first, segmentSuffix)
}

// frontName is the file name of the marker that says the log starts at
// first.
func frontName(first uint64) string {
	return fmt.Sprintf("%016x%s", first, frontSuffix)
}

// parseIndexName returns the index a segment or front-marker name carries,
// if name is exactly 16 lower-case hex digits followed by suffix.
func parseIndexName(name, suffix string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, suffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil
}

// appendSegmentHeader appends the header of a segment whose first record has
// index first.
func appendSegmentHeader(b []byte, first uint64) []byte {
	start := len(b)
	b = append(b, segmentMagic...)
	b = binary.BigEndian.AppendUint16(b, segmentVersion)
	b = binary.BigEndian.AppendUint16(b, 0) // flags: none defined
	b = binary.BigEndian.AppendUint64(b, first)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// decodeSegmentHeader checks a segment header and returns the first index
// it names. The error says what is wrong, for the caller to wrap.
func decodeSegmentHeader(b []byte) (uint64, error) {
	if len(b) < segmentHeaderBytes {
		return 0, fmt.Errorf("header is %d bytes, want %d", len(b), segmentHeaderBytes)
	}
	b = b[:segmentHeaderBytes]
	if got, want := binary.BigEndian.Uint32(b[20:]), crc32.Checksum(b[:20], castagnoli); got != want {
		return 0, fmt.Errorf("header checksum %08x, want %08x", got, want)
	}
	// The checksum matched: a wrong magic or version is a file we did not
	// write (or a future format), not a torn or flipped one.
	if string(b[:8]) != segmentMagic {
		return 0, fmt.Errorf("magic %q, want %q", b[:8], segmentMagic)
	}
	if v := binary.BigEndian.Uint16(b[8:]); v != segmentVersion {
		return 0, fmt.Errorf("format version %d, this code reads %d", v, segmentVersion)
	}
	if f := binary.BigEndian.Uint16(b[10:]); f != 0 {
		return 0, fmt.Errorf("unknown flags %04x", f)
	}
	return binary.BigEndian.Uint64(b[12:]), nil
}

// frame is one decoded record frame. data aliases the buffer it was decoded
// from.
type frame struct {
	typ      uint8
	index    uint64
	batchPos uint32
	data     []byte
}

// frameBytes is the encoded size of a record with dataBytes of data.
func frameBytes(dataBytes int) int { return frameHeaderBytes + dataBytes }

// putFrameHeader fills the header of the frame at b[:frameHeaderBytes],
// whose data b[frameHeaderBytes:] is already in place with CRC32C dataCRC.
// The checksum covers the data and then header bytes 4..21, in that order,
// so an appender can checksum its data in parallel with other appenders and
// the flusher adds only the 17 header bytes once it knows the index.
func putFrameHeader(b []byte, typ uint8, index uint64, batchPos uint32, dataCRC uint32) {
	binary.BigEndian.PutUint32(b[4:], uint32(len(b)-frameHeaderBytes))
	b[8] = typ
	binary.BigEndian.PutUint64(b[9:], index)
	binary.BigEndian.PutUint32(b[17:], batchPos)
	binary.BigEndian.PutUint32(b[0:], crc32.Update(dataCRC, castagnoli, b[4:frameHeaderBytes]))
}

// appendFrame appends a whole frame; tests and tools use it, the flusher
// patches headers in place with putFrameHeader.
func appendFrame(b []byte, typ uint8, index uint64, batchPos uint32, data []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeaderBytes)...)
	b = append(b, data...)
	putFrameHeader(b[start:], typ, index, batchPos, crc32.Checksum(data, castagnoli))
	return b
}

// frameProblem says why bytes are not a frame.
type frameProblem uint8

const (
	frameOK frameProblem = iota
	// frameShort: the header or the data it announces runs past the end of
	// the bytes available.
	frameShort
	// frameTooLarge: the length field is over the format limit.
	frameTooLarge
	// frameChecksum: the stored CRC does not match.
	frameChecksum
)

func (p frameProblem) String() string {
	switch p {
	case frameOK:
		return "ok"
	case frameShort:
		return "frame runs past the end of the file"
	case frameTooLarge:
		return "length over the format limit"
	case frameChecksum:
		return "checksum mismatch"
	}
	return "frameProblem(" + strconv.Itoa(int(p)) + ")"
}

// peekFrameHeader reads the header fields without checking anything.
func peekFrameHeader(b []byte) (dataBytes uint32, index uint64, batchPos uint32) {
	return binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint64(b[9:]), binary.BigEndian.Uint32(b[17:])
}

// decodeFrame decodes the frame at the start of b. It never allocates and
// never reads past b; the returned size is valid only when the problem is
// frameOK. Checking the index is the caller's job: only it knows which one
// is expected.
func decodeFrame(b []byte) (frame, int, frameProblem) {
	if len(b) < frameHeaderBytes {
		return frame{}, 0, frameShort
	}
	n, index, batchPos := peekFrameHeader(b)
	if n > segmentBytesLimit {
		return frame{}, 0, frameTooLarge
	}
	size := frameHeaderBytes + int(n)
	if size > len(b) {
		return frame{}, 0, frameShort
	}
	data := b[frameHeaderBytes:size]
	sum := crc32.Update(crc32.Checksum(data, castagnoli), castagnoli, b[4:frameHeaderBytes])
	if sum != binary.BigEndian.Uint32(b) {
		return frame{}, 0, frameChecksum
	}
	return frame{typ: b[8], index: index, batchPos: batchPos, data: data}, size, frameOK
}
