package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"

	"github.com/chorus-project/chorus/internal/invariant"
)

// run is the flusher: the only goroutine that writes, syncs, creates,
// renames or removes files of an open log. It takes every queued append up
// to BatchBytesMax, writes them with one Write, syncs once, and then wakes
// their appenders; truncations run alone, in queue order. So a Write is
// always followed by its Sync before the next Write, and at any crash at
// most one batch, the last, is unsynced: recovery relies on it.
func (l *Log) run() {
	defer close(l.flusherDone)
	for {
		reqs, ok := l.next()
		if !ok {
			return
		}
		if l.isFailed() {
			// fail drained the queue; these raced in before it and get
			// the same answer.
			l.mu.RLock()
			err := l.failed
			l.mu.RUnlock()
			for _, r := range reqs {
				r.done <- err
			}
			continue
		}
		// Read the kind now: once an append is answered its request may
		// be recycled by another Append.
		kind := reqs[0].kind
		var err error
		switch kind {
		case kindAppend:
			err = l.writeBatch(reqs)
		case kindTruncateFront:
			err = l.truncateFront(reqs[0].index)
		case kindTruncateBack:
			err = l.truncateBack(reqs[0].index)
		default:
			invariant.Unreachable("request kind %d", kind)
		}
		if err != nil {
			l.fail(err, reqs)
			continue
		}
		if kind != kindAppend {
			reqs[0].done <- nil
		}
	}
}

// next waits for work and takes the next batch off the queue: appends up to
// BatchBytesMax, or one truncation. It reports false once the log is closed
// and the queue is empty.
func (l *Log) next() ([]*request, bool) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	for len(l.queue) == 0 {
		if l.closeCalled {
			return nil, false
		}
		l.qmu.Unlock()
		<-l.wake
		l.qmu.Lock()
	}
	n, bytes, records := 1, len(l.queue[0].frames), l.queue[0].records()
	if l.queue[0].kind == kindAppend {
		for n < len(l.queue) && l.queue[n].kind == kindAppend &&
			bytes+len(l.queue[n].frames) <= l.opts.BatchBytesMax {
			bytes += len(l.queue[n].frames)
			records += l.queue[n].records()
			n++
		}
	}
	reqs := make([]*request, n)
	copy(reqs, l.queue)
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	l.queuedRecords -= records
	l.queuedBytes -= bytes
	// The invariant checks on the hot path sit behind an if: Check's
	// arguments would be boxed into interfaces, and allocated, on every
	// call, even when the condition holds.
	if l.queuedRecords < 0 || l.queuedBytes < 0 {
		invariant.Unreachable("queue holds %d records, %d bytes", l.queuedRecords, l.queuedBytes)
	}
	l.admitWaiting()
	return reqs, true
}

// writeBatch writes the appends reqs (consecutive indexes, in order) with
// one Write and one Sync, publishes them to readers, and acknowledges them.
func (l *Log) writeBatch(reqs []*request) error {
	batchFirst := reqs[0].index
	bytes := 0
	for _, r := range reqs {
		bytes += len(r.frames)
	}
	if bytes > l.opts.BatchBytesMax {
		invariant.Unreachable("batch of %d bytes over %d", bytes, l.opts.BatchBytesMax)
	}
	l.mu.RLock()
	last := l.last
	l.mu.RUnlock()
	if batchFirst != last+1 {
		invariant.Unreachable("batch starts at %d after last %d", batchFirst, last)
	}

	// Roll between batches: never split one, and never leave a segment
	// without a record (so every segment but the last ends where the next
	// begins).
	if l.active == nil || (len(l.active.offsets) > 0 && l.active.size+int64(bytes) > l.opts.SegmentBytesMax) {
		if err := l.roll(batchFirst); err != nil {
			return err
		}
	}
	buf, offs := l.buf[:0], l.offs[:0]
	index := batchFirst
	for _, r := range reqs {
		if r.index != index {
			invariant.Unreachable("request at %d, want %d", r.index, index)
		}
		p := len(buf)
		buf = append(buf, r.frames...)
		for k := range r.records() {
			end := p + frameHeaderBytes + int(binary.BigEndian.Uint32(buf[p+4:]))
			sealFrame(buf[p:end], index, uint32(index-batchFirst), r.dataCRCs[k])
			offs = append(offs, uint32(l.active.size+int64(p)))
			p = end
			index++
		}
		if p != len(buf) {
			invariant.Unreachable("request frames end at %d, buffer at %d", p, len(buf))
		}
	}
	l.buf, l.offs = buf, offs
	l.batches++
	if _, err := l.w.Write(buf); err != nil {
		return fmt.Errorf("write %s: %w", l.active.path, err)
	}
	if l.plant.ackBeforeSync {
		l.publish(buf, offs, index-1)
		for _, r := range reqs {
			r.done <- nil
		}
		if err := l.w.Sync(); err != nil {
			l.fail(fmt.Errorf("sync %s: %w", l.active.path, err), nil)
		}
		return nil
	}
	if err := l.w.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", l.active.path, err)
	}
	l.publish(buf, offs, index-1)
	for _, r := range reqs {
		r.done <- nil
	}
	return nil
}

// sealFrame fills in the index, batch position and checksum of the frame b,
// whose length, type and data are in place.
func sealFrame(b []byte, index uint64, batchPos uint32, dataCRC uint32) {
	binary.BigEndian.PutUint64(b[9:], index)
	binary.BigEndian.PutUint32(b[17:], batchPos)
	binary.BigEndian.PutUint32(b[0:], crc32.Update(dataCRC, castagnoli, b[4:frameHeaderBytes]))
}

// publish makes a synced batch visible to readers.
func (l *Log) publish(buf []byte, offs []uint32, last uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active.offsets = append(l.active.offsets, offs...)
	l.active.size += int64(len(buf))
	l.last = last
}

// roll starts a new segment whose first record will have index start. The
// segment is written under a temporary name, its header synced, renamed
// into place and the directory synced, all before any record goes into it:
// so a file with a segment's name always has a good header, and a segment
// whose records were acknowledged never vanishes in a crash. A crash midway
// leaves at most a temporary file, which Open removes.
func (l *Log) roll(start uint64) error {
	path := filepath.Join(l.opts.Dir, segmentName(start))
	tmp := path + tempSuffix
	f, err := l.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, werr := f.Write(appendSegmentHeader(nil, start))
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("write header of %s: %w", tmp, err)
	}
	if err := l.fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if !l.plant.skipDirSync {
		if err := l.fs.SyncDir(l.opts.Dir); err != nil {
			return fmt.Errorf("sync directory %s: %w", l.opts.Dir, err)
		}
	}
	return l.activate(&segment{start: start, path: path, size: segmentHeaderBytes})
}

// activate opens seg for reading and appending and makes it the active
// segment, the last of the log.
func (l *Log) activate(seg *segment) error {
	if l.w != nil {
		if err := l.w.Close(); err != nil {
			return fmt.Errorf("close %s: %w", l.active.path, err)
		}
		l.w = nil
	}
	w, err := l.fs.OpenAppend(seg.path)
	if err != nil {
		return fmt.Errorf("open %s: %w", seg.path, err)
	}
	if seg.r == nil {
		r, err := l.fs.Open(seg.path)
		if err != nil {
			return errors.Join(fmt.Errorf("open %s: %w", seg.path, err), w.Close())
		}
		seg.r = r
	}
	l.w = w
	l.active = seg
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.segs); n == 0 || l.segs[n-1] != seg {
		if n > 0 {
			invariant.Check(l.segs[n-1].lastIndex()+1 == seg.start,
				"segment at %d after one ending at %d", seg.start, l.segs[n-1].lastIndex())
		}
		l.segs = append(l.segs, seg)
	}
	return nil
}

// truncateFront makes index the first index, durably. Order: first the
// marker file naming the new first index is created and the directory
// synced, then the segments wholly below it and the older markers are
// removed and the directory synced again. A crash before the first SyncDir
// leaves the old log; after it, Open reads the marker and finishes the
// removals, so every crash point yields the old log or the new one.
func (l *Log) truncateFront(index uint64) error {
	marker := filepath.Join(l.opts.Dir, frontName(index))
	f, err := l.fs.Create(marker)
	if err != nil {
		return fmt.Errorf("create %s: %w", marker, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", marker, err)
	}
	if err := l.fs.SyncDir(l.opts.Dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", l.opts.Dir, err)
	}

	l.mu.Lock()
	oldFirst := l.first
	l.first = index
	l.last = max(l.last, index-1)
	keep := 0
	for keep < len(l.segs) && l.segs[keep].lastIndex() < index {
		keep++
	}
	drop := l.segs[:keep:keep]
	l.segs = l.segs[keep:]
	l.mu.Unlock()

	var errs []error
	for _, s := range drop {
		errs = append(errs, s.r.Close())
		s.r = nil
		if s == l.active {
			errs = append(errs, l.w.Close())
			l.w, l.active = nil, nil
		}
		errs = append(errs, l.fs.Remove(s.path))
	}
	if oldFirst > 1 {
		// Markers only ever move forward and the old one names oldFirst;
		// an older one still around was removed by Open or by the
		// truncation that wrote oldFirst's.
		err := l.fs.Remove(filepath.Join(l.opts.Dir, frontName(oldFirst)))
		if err != nil && !isNotExist(err) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, l.fs.SyncDir(l.opts.Dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("truncate front to %d: %w", index, err)
	}
	l.logger.Info("wal: truncated front", "dir", l.opts.Dir, "first", index, "segments_removed", len(drop))
	return nil
}

// truncateBack drops the records above index, durably. Order: the segments
// that start above index are removed newest first, each removal made durable
// (SyncDir) before the next, so a crash leaves a contiguous log that still
// holds part of the suffix; then the segment holding index is cut after it
// and synced. Readers stop seeing the dropped records before any file
// changes.
func (l *Log) truncateBack(index uint64) error {
	l.mu.Lock()
	keep := len(l.segs)
	for keep > 0 && l.segs[keep-1].start > index {
		keep--
	}
	drop := l.segs[keep:]
	l.segs = l.segs[:keep:keep]
	l.last = index
	var tail *segment
	var cut int64 = -1
	if keep > 0 {
		tail = l.segs[keep-1]
		if k := index - tail.start + 1; k < uint64(len(tail.offsets)) {
			cut = int64(tail.offsets[k])
			tail.offsets = tail.offsets[:k]
			tail.size = cut
		}
	}
	l.mu.Unlock()

	for i := len(drop) - 1; i >= 0; i-- {
		s := drop[i]
		err := s.r.Close()
		s.r = nil
		if s == l.active {
			err = errors.Join(err, l.w.Close())
			l.w, l.active = nil, nil
		}
		if err == nil {
			err = l.fs.Remove(s.path)
		}
		if err == nil {
			err = l.fs.SyncDir(l.opts.Dir)
		}
		if err != nil {
			return fmt.Errorf("truncate back to %d: remove %s: %w", index, s.path, err)
		}
	}
	if tail == nil {
		return nil
	}
	if l.active != tail {
		if err := l.activate(tail); err != nil {
			return fmt.Errorf("truncate back to %d: %w", index, err)
		}
	}
	if cut >= 0 {
		if err := l.w.Truncate(cut); err != nil {
			return fmt.Errorf("truncate back to %d: truncate %s at %d: %w", index, tail.path, cut, err)
		}
		if err := l.w.Sync(); err != nil {
			return fmt.Errorf("truncate back to %d: sync %s: %w", index, tail.path, err)
		}
	}
	return nil
}
