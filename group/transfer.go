package group

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vsync"
)

// State transfer stream. The application's Snapshot bytes travel in
// chunks of at most ChunkBytesMax, followed by one last chunk that holds
// only the trailer:
//
//	size  field
//	8     length of the application bytes, big-endian
//	4     CRC-32C (Castagnoli) of the application bytes, big-endian
//
// The joiner's Restore reads the application bytes through a pipe; the
// pipe ends with io.EOF only once the trailer matches what went through
// it, and with an error wrapping ErrStateTransfer otherwise, so a Restore
// that reads to the end never takes a truncated or corrupted stream for a
// whole one.
const trailerBytes = 12

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spool holds a donor's snapshot while it is streamed: in memory up to
// memMax bytes, the rest in a temporary file, so a large state costs
// bounded memory however slowly the joiner reads.
type spool struct {
	memMax int
	dir    string
	mem    bytes.Buffer
	file   *os.File
	size   int64
	crc    uint32
	// Reading.
	off     int64
	trailed bool
}

func (s *spool) Write(p []byte) (int, error) {
	s.crc = crc32.Update(s.crc, castagnoli, p)
	s.size += int64(len(p))
	if s.file == nil && s.mem.Len()+len(p) <= s.memMax {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "chorus-group-snapshot-*")
		if err != nil {
			return 0, fmt.Errorf("group: spool snapshot: %w", err)
		}
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, fmt.Errorf("group: spool snapshot: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	n, err := s.file.Write(p)
	if err != nil {
		return n, fmt.Errorf("group: spool snapshot: %w", err)
	}
	return n, nil
}

// next returns the next chunk of at most chunkBytes: application bytes,
// then the trailer (last).
func (s *spool) next(chunkBytes int) (data []byte, last bool, err error) {
	if s.off >= s.size {
		if s.trailed {
			return nil, false, io.EOF
		}
		s.trailed = true
		t := make([]byte, trailerBytes)
		binary.BigEndian.PutUint64(t, uint64(s.size))
		binary.BigEndian.PutUint32(t[8:], s.crc)
		return t, true, nil
	}
	n := min(int64(chunkBytes), s.size-s.off)
	data = make([]byte, n) // SendChunk keeps it until acknowledged
	if s.file == nil {
		copy(data, s.mem.Bytes()[s.off:])
	} else if _, err := s.file.ReadAt(data, s.off); err != nil {
		return nil, false, fmt.Errorf("group: read spooled snapshot: %w", err)
	}
	s.off += n
	return data, false, nil
}

func (s *spool) close() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
}

// donorTransfer is one snapshot this member streams to a joiner.
type donorTransfer struct {
	joiner   peer.ID
	transfer uint64
	sp       *spool
	// pending is the chunk the window refused last time, sent again first.
	pending     []byte
	pendingLast bool
	havePending bool
}

// restore feeds one attempt's chunks to the Handler's Restore.
type restore struct {
	pw     *io.PipeWriter
	done   chan error
	size   int64
	crc    uint32
	failed error // Restore returned before the end, or the pipe broke
}

var errRestoreReturned = errors.New("group: Restore returned before the end of the stream")

func startRestore(h Handler) *restore {
	pr, pw := io.Pipe()
	r := &restore{pw: pw, done: make(chan error, 1)}
	go func() {
		err := h.Restore(pr)
		// Later writes fail at once instead of waiting for a reader.
		pr.CloseWithError(errRestoreReturned)
		r.done <- err
	}()
	return r
}

// feed hands one chunk to Restore. For the last chunk it checks the
// trailer, ends the stream, and returns Restore's verdict.
func (r *restore) feed(c vsync.Chunk) (finished bool, err error) {
	if !c.Last {
		if r.failed != nil {
			return false, nil
		}
		r.crc = crc32.Update(r.crc, castagnoli, c.Data)
		r.size += int64(len(c.Data))
		if _, err := r.pw.Write(c.Data); err != nil {
			r.failed = err
		}
		return false, nil
	}
	var bad error
	switch {
	case len(c.Data) != trailerBytes:
		bad = fmt.Errorf("%w: trailer of %d bytes, want %d", ErrStateTransfer, len(c.Data), trailerBytes)
	case binary.BigEndian.Uint64(c.Data) != uint64(r.size):
		bad = fmt.Errorf("%w: stream of %d bytes, trailer says %d", ErrStateTransfer, r.size, binary.BigEndian.Uint64(c.Data))
	case binary.BigEndian.Uint32(c.Data[8:]) != r.crc:
		bad = fmt.Errorf("%w: checksum mismatch", ErrStateTransfer)
	}
	if bad != nil {
		r.pw.CloseWithError(bad)
	} else {
		r.pw.Close()
	}
	rerr := <-r.done
	switch {
	case bad != nil:
		return true, bad
	case rerr != nil:
		return true, fmt.Errorf("%w: Restore: %w", ErrStateTransfer, rerr)
	case r.failed != nil:
		return true, fmt.Errorf("%w: %w", ErrStateTransfer, r.failed)
	}
	return true, nil
}

// abort ends an attempt that a newer one replaces, or a member that stops.
func (r *restore) abort() {
	r.pw.CloseWithError(fmt.Errorf("%w: attempt abandoned", ErrStateTransfer))
	<-r.done
}
