package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chorus-project/chorus/internal/vfs"
)

// Recovery reports what Open found and what it repaired.
type Recovery struct {
	// FirstIndex and LastIndex are the log's after recovery (LastIndex is
	// FirstIndex-1 if it is empty).
	FirstIndex, LastIndex uint64
	// Segments is the number of segment files the log now has.
	Segments int
	// TornTail is set if the last segment ended in a record that did not
	// decode and that no later write followed, and Open cut it off.
	TornTail *TornTail
	// Removed lists the file names (in the log's directory) of the
	// leftovers of interrupted operations that Open removed: temporary
	// files of a roll-over, segments wholly below the first index and front
	// markers older than the newest.
	Removed []string
}

// TornTail describes the bytes Open cut off the end of the log.
//
// Usually they are the one batch that was being written when the machine
// stopped, never acknowledged. But a bit flip inside the last synced batch
// looks the same, and no local check can tell the two apart (Alagappan et
// al., "Protocol-Aware Recovery for Consensus-Based Storage", FAST 2018): so
// the layer above must treat every index from FirstIndex on as possibly
// acknowledged before the crash and lost, and repair it from its peers
// rather than assume it was never promised to anyone.
type TornTail struct {
	Segment    string // path of the segment file
	Offset     int64  // where the file was cut: the start of the first bad record
	Bytes      int64  // how many bytes were cut
	FirstIndex uint64 // the index the first bad record should have had
	Problem    string // what was wrong with it
}

// recover reads the directory and every live segment, repairs what an
// interrupted operation left, and fills in the log's durable state.
func (l *Log) recover() (Recovery, error) {
	var rec Recovery
	dir := l.opts.Dir
	names, err := l.fs.List(dir)
	if err != nil {
		return rec, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var starts, fronts []uint64
	var remove []string
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, segmentSuffix+tempSuffix):
			remove = append(remove, name)
		case strings.HasSuffix(name, segmentSuffix):
			start, ok := parseIndexName(name, segmentSuffix)
			if !ok || start == 0 {
				return rec, fmt.Errorf("%w: %s: a segment name must be 16 hex digits of a nonzero index",
					ErrCorrupt, filepath.Join(dir, name))
			}
			starts = append(starts, start)
		case strings.HasSuffix(name, frontSuffix):
			first, ok := parseIndexName(name, frontSuffix)
			if !ok || first == 0 {
				return rec, fmt.Errorf("%w: %s: a front marker name must be 16 hex digits of a nonzero index",
					ErrCorrupt, filepath.Join(dir, name))
			}
			fronts = append(fronts, first)
		}
	}
	slices.Sort(starts)
	slices.Sort(fronts)
	// The newest marker says where the log starts; older ones are
	// leftovers of the truncation that wrote it.
	first := uint64(1)
	if n := len(fronts); n > 0 {
		first = fronts[n-1]
		for _, f := range fronts[:n-1] {
			remove = append(remove, frontName(f))
		}
	}
	// Segments that end below first are leftovers of a TruncateFront; they
	// are not read at all, so damage in data nobody needs stops nothing.
	// A segment ends where the next begins.
	keep := 0
	for keep+1 < len(starts) && starts[keep+1] <= first {
		remove = append(remove, segmentName(starts[keep]))
		keep++
	}
	starts = starts[keep:]
	if len(starts) > 0 && starts[0] > first {
		return rec, fmt.Errorf("%w: %s: the log starts at index %d but its first segment at %d (a segment is missing)",
			ErrCorrupt, filepath.Join(dir, segmentName(starts[0])), first, starts[0])
	}

	l.first, l.last = first, first-1
	var buf []byte
	for i, start := range starts {
		isLast := i == len(starts)-1
		seg, torn, err := l.scanSegment(start, isLast, &buf)
		if err != nil {
			return rec, err
		}
		if !isLast && seg.lastIndex()+1 != starts[i+1] {
			seg.r.Close()
			return rec, fmt.Errorf("%w: %s: ends at index %d but the next segment starts at %d",
				ErrCorrupt, seg.path, seg.lastIndex(), starts[i+1])
		}
		if torn != nil {
			if err := l.cutTornTail(seg, torn); err != nil {
				seg.r.Close()
				return rec, err
			}
			rec.TornTail = torn
		}
		if isLast && seg.start < first && seg.lastIndex() < first {
			// A TruncateFront past the end of the log: the whole segment
			// is below the first index.
			seg.r.Close()
			remove = append(remove, segmentName(start))
			break
		}
		l.segs = append(l.segs, seg)
		l.last = max(l.last, seg.lastIndex())
	}

	for _, name := range remove {
		if err := l.fs.Remove(filepath.Join(dir, name)); err != nil && !isNotExist(err) {
			return rec, fmt.Errorf("wal: remove leftover %s: %w", filepath.Join(dir, name), err)
		}
		l.logger.Info("wal: removed leftover of an interrupted operation", "file", filepath.Join(dir, name))
	}
	// Make everything we report durable: the removals, and the last
	// segment's bytes, which a crashed process (not machine) may have
	// left in the page cache unsynced. Without this, records Open reports
	// could vanish in a later power cut.
	if err := l.fs.SyncDir(dir); err != nil {
		return rec, fmt.Errorf("wal: sync directory %s: %w", dir, err)
	}
	if n := len(l.segs); n > 0 {
		if err := l.activate(l.segs[n-1]); err != nil {
			return rec, fmt.Errorf("wal: %w", err)
		}
		if err := l.w.Sync(); err != nil {
			return rec, fmt.Errorf("wal: sync %s: %w", l.active.path, err)
		}
	}
	rec.FirstIndex, rec.LastIndex, rec.Segments, rec.Removed = l.first, l.last, len(l.segs), remove
	if rec.TornTail != nil {
		t := rec.TornTail
		l.logger.Warn("wal: cut a torn tail; indexes from first_index on may have been acknowledged and must be repaired from peers",
			"segment", t.Segment, "offset", t.Offset, "bytes", t.Bytes, "first_index", t.FirstIndex, "problem", t.Problem)
	}
	l.logger.Info("wal: recovered", "dir", dir, "first", l.first, "last", l.last, "segments", len(l.segs))
	return rec, nil
}

// scanSegment reads the segment starting at start and checks its header
// and every record. In the last segment a bad record that no later write
// followed is a torn tail, returned for the caller to cut; anywhere else a
// bad record is corruption. buf is reused across segments.
func (l *Log) scanSegment(start uint64, isLast bool, buf *[]byte) (*segment, *TornTail, error) {
	path := filepath.Join(l.opts.Dir, segmentName(start))
	corrupt := func(off int64, format string, args ...any) error {
		return fmt.Errorf("%w: %s offset %d: %s", ErrCorrupt, path, off, fmt.Sprintf(format, args...))
	}
	r, err := l.fs.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	seg := &segment{start: start, path: path, r: r}
	b, err := readSegment(r, buf)
	if err != nil {
		r.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, nil, fmt.Errorf("%w: %s", err, path)
		}
		return nil, nil, fmt.Errorf("wal: read %s: %w", path, err)
	}
	// The header was synced before the file got its name, so a bad one is
	// damage, never a torn write.
	headerFirst, err := decodeSegmentHeader(b)
	if err != nil {
		r.Close()
		return nil, nil, corrupt(0, "segment header: %v", err)
	}
	if headerFirst != start {
		r.Close()
		return nil, nil, corrupt(0, "segment header says first index %d, its name %d", headerFirst, start)
	}

	off := segmentHeaderBytes
	expect := start
	batchStart := start
	for off < len(b) {
		f, n, problem := decodeFrame(b[off:])
		what := ""
		switch {
		case problem != frameOK:
			what = problem.String()
		case f.index != expect:
			what = fmt.Sprintf("record has index %d, want %d", f.index, expect)
		case uint64(f.batchPos) > f.index-start:
			what = fmt.Sprintf("batch position %d reaches before the segment's first index %d", f.batchPos, start)
		case f.batchPos != 0 && f.index-uint64(f.batchPos) != batchStart:
			what = fmt.Sprintf("batch position %d puts its batch at %d, the previous record's began at %d",
				f.batchPos, f.index-uint64(f.batchPos), batchStart)
		}
		if what != "" {
			if !isLast {
				r.Close()
				return nil, nil, corrupt(int64(off), "%s (not the last segment)", what)
			}
			if later, ok := laterWrite(b, off, expect); ok {
				r.Close()
				return nil, nil, corrupt(int64(off), "%s, and a record written by a later batch follows at offset %d (or the search for one ran out of budget there): synced data is damaged",
					what, later)
			}
			seg.size = int64(off)
			return seg, &TornTail{
				Segment: path, Offset: int64(off), Bytes: int64(len(b) - off),
				FirstIndex: expect, Problem: what,
			}, nil
		}
		seg.offsets = append(seg.offsets, uint32(off))
		batchStart = f.index - uint64(f.batchPos)
		off += n
		expect++
	}
	seg.size = int64(off)
	return seg, nil, nil
}

// readSegment reads the whole file r into *buf (grown as needed and kept
// for the next segment) and returns it. A file over the format's limit is
// corruption: the log never writes one.
func readSegment(r vfs.File, buf *[]byte) ([]byte, error) {
	size, err := r.Size()
	if err != nil {
		return nil, err
	}
	if size > segmentBytesLimit {
		return nil, fmt.Errorf("%w: segment file of %d bytes over the %d-byte format limit", ErrCorrupt, size, segmentBytesLimit)
	}
	if int64(cap(*buf)) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if _, err := r.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, err
	}
	return b, nil
}

// laterWrite looks after the bad record at offset bad, which should have
// had index expect, for a frame that a later write put there: a good
// checksum and a batch that began after expect. Only the last write can be
// torn (writes and syncs alternate), and it holds expect, so such a frame
// proves that the bad record had been synced: corruption, not a torn tail.
// Frames of the torn batch itself (a disk may persist the sectors of one
// write in any order, leaving a hole before a whole record) begin at or
// before expect and prove nothing.
//
// The cheap tests come first: the index must be one that a record at that
// distance could have (each record takes at least frameHeaderBytes), which
// rules out almost every offset before a checksum is computed. Data crafted
// to pass them at many offsets while claiming long lengths could still make
// the checksums cost quadratic time, so they get a budget of bytes; past it
// the search gives up and reports a later write, the answer that refuses to
// open rather than cut data that may be synced.
func laterWrite(b []byte, bad int, expect uint64) (at int, found bool) {
	budgetBytes := laterWriteBudgetBytes(len(b) - bad)
	for p := bad + 1; p+frameHeaderBytes <= len(b); p++ {
		n, index, batchPos := peekFrameHeader(b[p:])
		maxIndex := expect + uint64((p-bad)/frameHeaderBytes)
		if index <= expect || index > maxIndex || uint64(batchPos) >= index-expect ||
			int64(n) > int64(len(b)-p-frameHeaderBytes) {
			continue
		}
		if budgetBytes -= int64(n); budgetBytes < 0 {
			return p, true
		}
		if _, _, problem := decodeFrame(b[p:]); problem == frameOK {
			return p, true
		}
	}
	return 0, false
}

// laterWriteBudgetBytes is how many bytes laterWrite may checksum when
// rest bytes follow the bad record: a few passes over them.
func laterWriteBudgetBytes(rest int) int64 { return 4*int64(rest) + 1<<20 }

// cutTornTail truncates the segment at the torn record, durably, before any
// new record can be written after it.
func (l *Log) cutTornTail(seg *segment, torn *TornTail) error {
	f, err := l.fs.OpenAppend(seg.path)
	if err != nil {
		return fmt.Errorf("wal: open %s to cut its torn tail: %w", seg.path, err)
	}
	err = f.Truncate(torn.Offset)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("wal: cut torn tail of %s at %d: %w", seg.path, torn.Offset, err)
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
