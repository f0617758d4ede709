package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/vfs"
)

// Record is one entry of the log: an opaque type byte for the layer above
// (a Paxos accept, a vote, a configuration change) and its data.
type Record struct {
	Type uint8
	Data []byte
}

// Planted bugs, for the tests that show the crash test catches them. Open
// copies them into the Log, so flipping them never races with a running log.
// Never set outside tests.
var (
	// plantAckBeforeSync acknowledges a batch after its Write and before
	// its Sync.
	plantAckBeforeSync bool
	// plantSkipDirSync leaves out the SyncDir after a new segment is
	// renamed into place.
	plantSkipDirSync bool
)

// Log is a segmented write-ahead log of records with consecutive indexes.
// Its methods are safe for concurrent use. Appends from many goroutines are
// written by one flusher goroutine in batches, one write and one fsync per
// batch (group commit); see the package comment for the formats and the
// crash-safety argument.
type Log struct {
	opts   Options
	fs     vfs.FS
	logger *slog.Logger
	lock   io.Closer
	plant  struct{ ackBeforeSync, skipDirSync bool }

	// The queue, guarded by qmu. qFirst and qNext are the first index and
	// the next index to assign as they will be once every queued request
	// has run, so Append can hand out indexes in queue order.
	qmu           sync.Mutex
	queue         []*request
	queuedRecords int
	queuedBytes   int
	qFirst, qNext uint64
	qerr          error // set once: why new requests are refused (closed or failed)
	closeCalled   bool
	// waiting holds the appends that found the queue full, first come
	// first served: a large append is not starved by a stream of small
	// ones, and freeing space wakes only those that now fit.
	waiting []*waiter

	wake        chan struct{} // capacity 1: the queue is no longer empty
	flusherDone chan struct{}

	// The durable state, guarded by mu: what Get may read. Only the flusher
	// (and Open, before it starts) changes it, and always after the change
	// is durable, except that truncations hide records before removing them.
	mu     sync.RWMutex
	segs   []*segment // in index order
	first  uint64     // index of the first record (the next Append's, if empty)
	last   uint64     // index of the last durable record; first-1 if empty
	failed error      // wraps ErrFailed once a write, sync or SyncDir failed
	closed bool

	// Owned by the flusher goroutine.
	active *segment // the segment appends go to; nil until the next roll
	w      vfs.File // the active segment, open for appending
	buf    []byte   // the batch being encoded
	offs   []uint32 // offsets of the records in buf, in the active segment
	// batches counts the batches written, for benchmarks; read it only
	// after Close.
	batches uint64
}

// segment is one segment file. Its fields are guarded by Log.mu.
type segment struct {
	start   uint64   // index of its first record (and of its name)
	path    string   // full path
	r       vfs.File // open for reading
	offsets []uint32 // offsets[k]: byte offset of record start+k
	size    int64    // end of its last record: the file's durable size
}

// lastIndex is the index of the segment's last record; start-1 if empty.
func (s *segment) lastIndex() uint64 { return s.start + uint64(len(s.offsets)) - 1 }

type requestKind uint8

const (
	kindAppend requestKind = iota + 1
	kindTruncateFront
	kindTruncateBack
)

// request is one Append, TruncateFront or TruncateBack waiting for the
// flusher.
type request struct {
	kind requestKind
	// index: for appends the index of the first record (assigned when
	// queued); for truncations the argument.
	index uint64
	// Appends: the frames, with length, type and data filled in; the
	// flusher fills in index, batch position and checksum.
	frames   []byte
	dataCRCs []uint32
	done     chan error // capacity 1
}

func (r *request) records() int { return len(r.dataCRCs) }

// requestPool recycles append requests with their buffers: at a
// few hundred thousand appends a second on two cores, allocation is a good
// share of the CPU that the appenders of the next batch need while the
// current batch's fsync is in flight. An append puts its request back only
// after receiving its answer, the flusher's last touch.
// The done channel is made fresh for each append, not recycled: a channel
// belongs to the testing/synctest bubble it was made in, and a pooled one
// would leak across bubbles.
var requestPool = sync.Pool{New: func() any { return new(request) }}

// requestPoolBytesMax: requests with bigger frame buffers are left to the
// garbage collector, so a burst of large appends does not pin memory.
const requestPoolBytesMax = 64 << 10

// Open opens the log in opts.Dir, creating it if needed, and recovers it:
// see the package comment for what recovery checks and repairs. Everything
// the returned log holds is durable when Open returns. The error wraps
// ErrCorrupt if synced data is damaged, ErrInvalid for bad options.
func Open(opts Options) (*Log, Recovery, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, Recovery{}, err
	}
	fs := opts.FS
	if err := fs.MkdirAll(opts.Dir); err != nil {
		return nil, Recovery{}, fmt.Errorf("wal: create %s: %w", opts.Dir, err)
	}
	// The directory's own entry in its parent must be durable before
	// anything in it is.
	if parent := filepath.Dir(filepath.Clean(opts.Dir)); parent != filepath.Clean(opts.Dir) {
		if err := fs.SyncDir(parent); err != nil {
			return nil, Recovery{}, fmt.Errorf("wal: sync %s: %w", parent, err)
		}
	}
	lock, err := fs.Lock(filepath.Join(opts.Dir, lockName))
	if err != nil {
		return nil, Recovery{}, fmt.Errorf("wal: lock %s: %w", opts.Dir, err)
	}
	l := &Log{
		opts:        opts,
		fs:          fs,
		logger:      opts.Logger,
		lock:        lock,
		wake:        make(chan struct{}, 1),
		flusherDone: make(chan struct{}),
	}
	l.plant.ackBeforeSync, l.plant.skipDirSync = plantAckBeforeSync, plantSkipDirSync
	rec, err := l.recover()
	if err != nil {
		l.closeFiles()
		return nil, rec, errors.Join(err, lock.Close())
	}
	l.qFirst, l.qNext = l.first, l.last+1
	go l.run()
	return l, rec, nil
}

// RecordOverheadBytes is what one record takes in a batch besides its data:
// its frame header. One Append call must fit in BatchBytesMax counting it.
const RecordOverheadBytes = frameHeaderBytes

// BatchBytesMax is the most encoded bytes one Append call may carry (the
// option after defaults).
func (l *Log) BatchBytesMax() int { return l.opts.BatchBytesMax }

// FirstIndex returns the index of the first record, or of the record the
// next Append will get if the log is empty.
func (l *Log) FirstIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.first
}

// LastIndex returns the index of the last durable record; FirstIndex()-1 if
// the log is empty.
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last
}

// Append adds recs to the log with consecutive indexes and returns the index
// of the last one once a Sync covering all of them has returned nil. The
// records may be written in one batch or several.
//
// Append copies recs before it returns, so the caller may reuse them. If ctx
// is done first, Append returns ctx's error, but records that were already
// queued keep their indexes and may still become durable: cancelling stops
// the wait, not the write. Errors: ErrRecordTooLarge, ErrTooLarge,
// ErrInvalid (no records), ErrClosed, or ErrFailed with its cause.
func (l *Log) Append(ctx context.Context, recs ...Record) (last uint64, err error) {
	if len(recs) == 0 {
		return 0, fmt.Errorf("%w: Append with no records", ErrInvalid)
	}
	if len(recs) > l.opts.QueueRecordsMax {
		return 0, fmt.Errorf("%w: %d records, QueueRecordsMax is %d", ErrTooLarge, len(recs), l.opts.QueueRecordsMax)
	}
	bytes := 0
	for i, r := range recs {
		if len(r.Data) > l.opts.RecordBytesMax {
			return 0, fmt.Errorf("%w: record %d has %d bytes, RecordBytesMax is %d",
				ErrRecordTooLarge, i, len(r.Data), l.opts.RecordBytesMax)
		}
		bytes += frameBytes(len(r.Data))
	}
	if bytes > l.opts.BatchBytesMax {
		return 0, fmt.Errorf("%w: %d encoded bytes, BatchBytesMax is %d", ErrTooLarge, bytes, l.opts.BatchBytesMax)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := requestPool.Get().(*request)
	req.kind = kindAppend
	req.done = make(chan error, 1)
	if cap(req.frames) < bytes {
		req.frames = make([]byte, 0, bytes)
	}
	req.frames = req.frames[:0]
	if cap(req.dataCRCs) < len(recs) {
		req.dataCRCs = make([]uint32, len(recs))
	}
	req.dataCRCs = req.dataCRCs[:len(recs)]
	// The copy and the data checksums happen here, on the appender's
	// goroutine, so the flusher's work per batch stays small.
	for i, r := range recs {
		var h [frameHeaderBytes]byte
		binary.BigEndian.PutUint32(h[4:], uint32(len(r.Data)))
		h[8] = r.Type
		req.frames = append(req.frames, h[:]...)
		req.frames = append(req.frames, r.Data...)
		req.dataCRCs[i] = crc32.Checksum(r.Data, castagnoli)
	}
	if err := l.enqueueAppend(ctx, req, bytes); err != nil {
		return 0, err
	}
	last = req.index + uint64(len(recs)) - 1
	select {
	case err := <-req.done:
		if cap(req.frames) <= requestPoolBytesMax {
			req.done = nil
			requestPool.Put(req)
		}
		if err != nil {
			return 0, err
		}
		return last, nil
	case <-ctx.Done():
		// The flusher may still hold req: it is not recycled.
		return 0, ctx.Err()
	}
}

// waiter is an append waiting for room in the queue.
type waiter struct {
	req   *request
	bytes int
	// ready is closed once the append is queued (err nil) or refused (err
	// set); both fields are guarded by qmu.
	ready chan struct{}
	err   error
}

// enqueueAppend waits for room in the queue, behind any append already
// waiting, then assigns req its indexes and queues it.
func (l *Log) enqueueAppend(ctx context.Context, req *request, bytes int) error {
	l.qmu.Lock()
	if l.qerr != nil {
		defer l.qmu.Unlock()
		return l.qerr
	}
	if len(l.waiting) == 0 && l.fits(req.records(), bytes) {
		l.admit(req, bytes)
		l.qmu.Unlock()
		return nil
	}
	w := &waiter{req: req, bytes: bytes, ready: make(chan struct{})}
	l.waiting = append(l.waiting, w)
	l.qmu.Unlock()
	select {
	case <-w.ready:
		return w.err
	case <-ctx.Done():
	}
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if i := slices.Index(l.waiting, w); i >= 0 {
		l.waiting = slices.Delete(l.waiting, i, i+1)
		// The head may have been what held the others back.
		l.admitWaiting()
		return ctx.Err()
	}
	if w.err != nil {
		return w.err
	}
	// Queued just as ctx was done: it keeps its indexes and will be
	// written, like any append whose wait is cancelled.
	return ctx.Err()
}

// fits reports whether an append of records and bytes fits in the queue
// now. l.qmu is held.
func (l *Log) fits(records, bytes int) bool {
	return l.queuedRecords+records <= l.opts.QueueRecordsMax && l.queuedBytes+bytes <= l.opts.QueueBytesMax
}

// admit assigns req its indexes and queues it. l.qmu is held.
func (l *Log) admit(req *request, bytes int) {
	req.index = l.qNext
	l.qNext += uint64(req.records())
	l.queuedRecords += req.records()
	l.queuedBytes += bytes
	l.push(req)
}

// admitWaiting queues the waiting appends, in order, while they fit.
// l.qmu is held.
func (l *Log) admitWaiting() {
	n := 0
	for ; n < len(l.waiting) && l.fits(l.waiting[n].req.records(), l.waiting[n].bytes); n++ {
		w := l.waiting[n]
		l.admit(w.req, w.bytes)
		close(w.ready)
	}
	l.waiting = slices.Delete(l.waiting, 0, n)
}

// refuseWaiting fails every waiting append with err. l.qmu is held.
func (l *Log) refuseWaiting(err error) {
	for _, w := range l.waiting {
		w.err = err
		close(w.ready)
	}
	l.waiting = nil
}

// push queues req and wakes the flusher. l.qmu is held.
func (l *Log) push(req *request) {
	l.queue = append(l.queue, req)
	select {
	case l.wake <- struct{}{}:
	default: // already awake or about to be
	}
}

// TruncateFront drops every record with an index below index: call it once
// a snapshot covers them. If index > LastIndex()+1 the log becomes empty and
// the next Append gets index. It waits for the appends queued before it, and
// the change is durable when it returns: after a crash the log starts at
// index. Whole segments below index are removed; records below index that
// share a segment with later ones stay on disk, hidden, until their segment
// goes. An index at or below FirstIndex() changes nothing.
func (l *Log) TruncateFront(index uint64) error {
	l.qmu.Lock()
	if l.qerr != nil {
		defer l.qmu.Unlock()
		return l.qerr
	}
	if index <= l.qFirst {
		l.qmu.Unlock()
		return nil
	}
	l.qFirst = index
	l.qNext = max(l.qNext, index)
	req := &request{kind: kindTruncateFront, index: index, done: make(chan error, 1)}
	l.push(req)
	l.qmu.Unlock()
	return <-req.done
}

// TruncateBack drops every record with an index above index, to repair a
// log whose tail diverged from the leader's; the next Append gets index+1.
// It waits for the appends queued before it, and the change is durable when
// it returns. A crash before it returns leaves the log with all or part of
// the suffix still there: call it again. An index at or above the last
// queued record's changes nothing; one below FirstIndex()-1 fails with
// ErrCompacted.
func (l *Log) TruncateBack(index uint64) error {
	l.qmu.Lock()
	if l.qerr != nil {
		defer l.qmu.Unlock()
		return l.qerr
	}
	if index+1 < l.qFirst {
		defer l.qmu.Unlock()
		return fmt.Errorf("%w: TruncateBack(%d) below first index %d", ErrCompacted, index, l.qFirst)
	}
	if index+1 >= l.qNext {
		l.qmu.Unlock()
		return nil
	}
	l.qNext = index + 1
	req := &request{kind: kindTruncateBack, index: index, done: make(chan error, 1)}
	l.push(req)
	l.qmu.Unlock()
	return <-req.done
}

// Get returns the record at index. Its data is a fresh slice the caller
// owns. The record's checksum and index are checked again on every read; a
// mismatch (bit rot since Open) or a read error is reported wrapping
// ErrCorrupt. Errors: ErrCompacted, ErrOutOfRange, ErrClosed, ErrFailed.
func (l *Log) Get(index uint64) (Record, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return Record{}, err
	}
	if index < l.first {
		return Record{}, fmt.Errorf("%w: index %d, first is %d", ErrCompacted, index, l.first)
	}
	if index > l.last {
		return Record{}, fmt.Errorf("%w: index %d, last is %d", ErrOutOfRange, index, l.last)
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].start > index }) - 1
	if i < 0 {
		invariant.Unreachable("index %d in [%d, %d] has no segment", index, l.first, l.last)
	}
	seg := l.segs[i]
	k := index - seg.start
	if k >= uint64(len(seg.offsets)) {
		invariant.Unreachable("index %d beyond segment %s", index, seg.path)
	}
	off, end := int64(seg.offsets[k]), seg.size
	if k+1 < uint64(len(seg.offsets)) {
		end = int64(seg.offsets[k+1])
	}
	buf := make([]byte, end-off)
	if _, err := seg.r.ReadAt(buf, off); err != nil {
		return Record{}, fmt.Errorf("%w: %s offset %d: read record %d: %w", ErrCorrupt, seg.path, off, index, err)
	}
	f, n, problem := decodeFrame(buf)
	switch {
	case problem != frameOK:
		return Record{}, fmt.Errorf("%w: %s offset %d: record %d: %v", ErrCorrupt, seg.path, off, index, problem)
	case n != len(buf) || f.index != index:
		return Record{}, fmt.Errorf("%w: %s offset %d: record %d reads back as index %d, %d of %d bytes",
			ErrCorrupt, seg.path, off, index, f.index, n, len(buf))
	}
	return Record{Type: f.typ, Data: f.data}, nil
}

// usable reports why the log cannot serve a call. l.mu is held.
func (l *Log) usable() error {
	switch {
	case l.failed != nil:
		return l.failed
	case l.closed:
		return ErrClosed
	}
	return nil
}

// Close waits for the queued appends to be written, stops the flusher and
// closes the files. Appends still waiting for room in the queue, and later
// calls, fail with ErrClosed. If the log had failed, Close still releases
// everything and returns the failure.
func (l *Log) Close() error {
	l.qmu.Lock()
	if l.closeCalled {
		l.qmu.Unlock()
		return ErrClosed
	}
	l.closeCalled = true
	if l.qerr == nil {
		l.qerr = ErrClosed
	}
	l.refuseWaiting(ErrClosed)
	select {
	case l.wake <- struct{}{}:
	default:
	}
	l.qmu.Unlock()
	<-l.flusherDone

	l.mu.Lock()
	l.closed = true
	failed := l.failed
	l.mu.Unlock()
	err := l.closeFiles()
	return errors.Join(failed, err, l.lock.Close())
}

// closeFiles closes every open segment file.
func (l *Log) closeFiles() error {
	var errs []error
	for _, s := range l.segs {
		if s.r != nil {
			errs = append(errs, s.r.Close())
			s.r = nil
		}
	}
	if l.w != nil {
		errs = append(errs, l.w.Close())
		l.w = nil
	}
	return errors.Join(errs...)
}

// fail puts the log in the failed state: cause wrapped with ErrFailed is
// returned to the requests in flight, to everything queued, and to every
// later call. There is no retry: after a failed fsync the kernel may have
// dropped the data and marked it clean (fsyncgate), so nothing written since
// the last good sync can be trusted until recovery reads it back after a
// restart.
func (l *Log) fail(cause error, inflight []*request) {
	err := fmt.Errorf("%w: %w", ErrFailed, cause)
	l.logger.Error("wal: failed; restart the process to recover", "dir", l.opts.Dir, "err", cause)
	l.mu.Lock()
	l.failed = err
	l.mu.Unlock()
	l.qmu.Lock()
	if l.qerr == nil {
		l.qerr = err
	}
	queued := l.queue
	l.queue = nil
	l.queuedRecords, l.queuedBytes = 0, 0
	l.refuseWaiting(err)
	l.qmu.Unlock()
	for _, r := range inflight {
		r.done <- err
	}
	for _, r := range queued {
		r.done <- err
	}
}

func (l *Log) isFailed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.failed != nil
}
