package transport

import (
	"context"
	"sync"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/wire"
)

// sendQueue holds the frames waiting for one peer, already encoded, in
// batches: a batch is one contiguous buffer of whole frames, at most
// BatchBytesMax long unless it holds a single larger frame. Send appends to
// the newest batch; the writer takes the oldest batch whole and writes it
// with one call. So batching costs no copy: a frame is encoded once, straight
// into the buffer that goes to the socket.
//
// When full, the queue refuses the newest frame (drop-newest) rather than
// evicting the oldest. Send's result is then the truth: true means the frame
// is queued. The frames kept are a prefix of what was sent, so the receiver
// sees one gap at the end of a stream, which a single retransmission request
// repairs, never holes in its middle.
type sendQueue struct {
	limits Limits

	mu      sync.Mutex
	batches []batch  // oldest first
	frames  int      // frames in batches
	bytes   int      // bytes in batches, headers included
	spares  [][]byte // written buffers kept for reuse, at most spareBatchesMax
	closed  bool
	dropped uint64

	// ready has room for one token: pushed after a frame is queued, so a
	// writer waiting on an empty queue wakes once however many frames came.
	ready chan struct{}
	// room has room for one token: pushed after a batch leaves, for the one
	// caller of pushWait (benchmarks pace themselves with it).
	room chan struct{}
}

type batch struct {
	buf    []byte
	frames int
}

type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushClosed
)

func newSendQueue(l Limits) *sendQueue {
	return &sendQueue{limits: l, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// push encodes env (bodyBytes long, already checked against FrameBytesMax)
// at the end of the queue, or counts it dropped if the queue is full.
func (q *sendQueue) push(env wire.Envelope, bodyBytes int) pushResult {
	return q.enqueue(env, bodyBytes, true)
}

func (q *sendQueue) enqueue(env wire.Envelope, bodyBytes int, countDrop bool) pushResult {
	// Hot path: the checks below box their arguments only on failure
	// (invariant.Check's variadic arguments would allocate on every call).
	if bodyBytes > q.limits.FrameBytesMax {
		invariant.Unreachable("frame of %d bytes reached the queue, limit %d", bodyBytes, q.limits.FrameBytesMax)
	}
	frameBytes := frameHeaderBytes + bodyBytes
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.frames+1 > q.limits.SendQueueFramesMax || q.bytes+frameBytes > q.limits.SendQueueBytesMax {
		if countDrop {
			q.dropped++
		}
		q.mu.Unlock()
		return pushFull
	}
	last := len(q.batches) - 1
	if last < 0 || len(q.batches[last].buf)+frameBytes > q.limits.BatchBytesMax {
		var buf []byte
		switch {
		case len(q.spares) > 0:
			buf = q.spares[len(q.spares)-1]
			q.spares = q.spares[:len(q.spares)-1]
		case last >= 0:
			// A backlog: this batch will fill, so size it once instead of
			// growing it by copies.
			buf = make([]byte, 0, max(q.limits.BatchBytesMax, frameBytes))
		}
		q.batches = append(q.batches, batch{buf: buf})
		last++
	}
	b := &q.batches[last]
	before := len(b.buf)
	b.buf = appendFrame(b.buf, env, bodyBytes)
	if len(b.buf)-before != frameBytes {
		invariant.Unreachable("frame encoded to %d bytes, sized %d", len(b.buf)-before, frameBytes)
	}
	b.frames++
	q.frames++
	q.bytes += frameBytes
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return pushed
}

// pushWait is push that waits for room instead of refusing. Only one caller
// may wait at a time (room carries one token). It returns false if ctx ends
// or the queue closes first.
func (q *sendQueue) pushWait(ctx context.Context, env wire.Envelope, bodyBytes int) bool {
	for {
		switch q.enqueue(env, bodyBytes, false) {
		case pushed:
			return true
		case pushClosed:
			return false
		}
		select {
		case <-q.room:
		case <-ctx.Done():
			return false
		}
	}
}

// pop removes and returns the oldest batch.
func (q *sendQueue) pop() (batch, bool) {
	q.mu.Lock()
	if len(q.batches) == 0 {
		q.mu.Unlock()
		return batch{}, false
	}
	b := q.batches[0]
	q.batches[0] = batch{}
	q.batches = q.batches[1:]
	if len(q.batches) == 0 {
		q.batches = q.batches[:0:0] // let the backing array go
	}
	q.frames -= b.frames
	q.bytes -= len(b.buf)
	if q.frames < 0 || q.bytes < 0 {
		invariant.Unreachable("queue went negative: %d frames, %d bytes", q.frames, q.bytes)
	}
	q.mu.Unlock()
	select {
	case q.room <- struct{}{}:
	default:
	}
	return b, true
}

// spareBatchesMax bounds the written buffers kept for reuse: enough for a
// writer that keeps up (one being written, one being filled) and some
// slack, at most spareBatchesMax x 2 x BatchBytesMax bytes per peer beyond
// SendQueueBytesMax.
const spareBatchesMax = 4

// recycle hands back a written buffer, kept unless oversized (a lone large
// frame) or spares are full, so a busy peer allocates no new batch buffers.
func (q *sendQueue) recycle(buf []byte) {
	if cap(buf) > 2*q.limits.BatchBytesMax {
		return
	}
	q.mu.Lock()
	if len(q.spares) < spareBatchesMax && !q.closed {
		q.spares = append(q.spares, buf[:0])
	}
	q.mu.Unlock()
}

// close refuses every later push and discards what is queued.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.batches, q.spares = nil, nil
	q.frames, q.bytes = 0, 0
	q.mu.Unlock()
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// gauges returns the queued frames and bytes and the drop count.
func (q *sendQueue) gauges() (frames, bytes int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.frames, q.bytes, q.dropped
}
