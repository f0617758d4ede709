package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// MemNetwork connects in-memory endpoints, for tests of the shells. Each
// endpoint is a Transport with the semantics of TCP: the same bounded send
// queues, counted drops, asynchronous delivery in order per ordered pair, the
// same Handler contract, and the same encoding (envelopes are encoded on Send
// and decoded on delivery, so a caller that reuses a payload after Send is
// caught, and FrameBytesMax bites the same way).
//
// A peer whose endpoint does not exist (not started yet, or closed) is like a
// TCP peer that is down: its queue fills and Send drops. A partition or an
// isolation is like a network that loses packets: frames sent across it are
// taken from the queue and lost (LostFrames). Addresses given to SetPeer are
// kept for Stats and otherwise ignored; endpoints are found by ID.
//
// Delivery is asynchronous (one goroutine per ordered pair, like a TCP
// writer), so the interleaving between pairs depends on the scheduler;
// per-pair order does not. Tests that need one reproducible interleaving
// use the simulator, not this.
type MemNetwork struct {
	limits Limits

	mu        sync.Mutex
	endpoints map[peer.ID]*MemEndpoint
	cut       map[[2]peer.ID]bool // partitioned pairs, smaller ID first
	isolated  map[peer.ID]bool
	changed   chan struct{} // closed and replaced when an endpoint comes or goes
}

// NewMemNetwork returns an empty network with DefaultLimits.
func NewMemNetwork() *MemNetwork {
	n, err := NewMemNetworkLimits(Limits{})
	invariant.Check(err == nil, "default limits rejected: %v", err)
	return n
}

// NewMemNetworkLimits returns an empty network whose endpoints use l (zero
// fields take their defaults).
func NewMemNetworkLimits(l Limits) (*MemNetwork, error) {
	l, err := l.withDefaults()
	if err != nil {
		return nil, err
	}
	return &MemNetwork{
		limits:    l,
		endpoints: make(map[peer.ID]*MemEndpoint),
		cut:       make(map[[2]peer.ID]bool),
		isolated:  make(map[peer.ID]bool),
		changed:   make(chan struct{}),
	}, nil
}

// Endpoint starts member id on the network, delivering to h. It fails if id
// is None, h is nil, or id already has an open endpoint; after that one is
// closed, Endpoint(id) starts it again (a restart).
func (n *MemNetwork) Endpoint(id peer.ID, h Handler) (*MemEndpoint, error) {
	if id == peer.None || h == nil {
		return nil, fmt.Errorf("%w: endpoint needs a member ID and a Handler", ErrConfig)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.endpoints[id] != nil {
		return nil, fmt.Errorf("%w: member %s already has an open endpoint", ErrConfig, id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &MemEndpoint{net: n, id: id, handler: h, ctx: ctx, cancel: cancel}
	e.recvCond = sync.NewCond(&e.recvMu)
	e.links.Store(&map[peer.ID]*memLink{})
	n.endpoints[id] = e
	n.notifyLocked()
	return e, nil
}

func (n *MemNetwork) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

func pairOf(a, b peer.ID) [2]peer.ID {
	return [2]peer.ID{min(a, b), max(a, b)}
}

// Partition drops every frame between a and b, both ways, until Heal.
func (n *MemNetwork) Partition(a, b peer.ID) {
	n.mu.Lock()
	n.cut[pairOf(a, b)] = true
	n.mu.Unlock()
}

// Heal undoes Partition(a, b).
func (n *MemNetwork) Heal(a, b peer.ID) {
	n.mu.Lock()
	delete(n.cut, pairOf(a, b))
	n.mu.Unlock()
}

// Isolate drops every frame to or from id until Restore.
func (n *MemNetwork) Isolate(id peer.ID) {
	n.mu.Lock()
	n.isolated[id] = true
	n.mu.Unlock()
}

// Restore undoes Isolate(id).
func (n *MemNetwork) Restore(id peer.ID) {
	n.mu.Lock()
	delete(n.isolated, id)
	n.mu.Unlock()
}

// HealAll undoes every Partition and Isolate.
func (n *MemNetwork) HealAll() {
	n.mu.Lock()
	clear(n.cut)
	clear(n.isolated)
	n.mu.Unlock()
}

// lookup returns the open endpoint of id (nil if none), whether frames from
// from reach it, and a channel closed at the next endpoint change.
func (n *MemNetwork) lookup(from, to peer.ID) (*MemEndpoint, bool, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.endpoints[to]
	return e, e != nil && n.reachableLocked(from, to), n.changed
}

func (n *MemNetwork) reachable(from, to peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reachableLocked(from, to)
}

func (n *MemNetwork) reachableLocked(from, to peer.ID) bool {
	return !n.isolated[from] && !n.isolated[to] && !n.cut[pairOf(from, to)]
}

func (n *MemNetwork) remove(e *MemEndpoint) {
	n.mu.Lock()
	if n.endpoints[e.id] == e {
		delete(n.endpoints, e.id)
		n.notifyLocked()
	}
	n.mu.Unlock()
}

// MemEndpoint is one member's Transport on a MemNetwork.
type MemEndpoint struct {
	net     *MemNetwork
	id      peer.ID
	handler Handler
	ctx     context.Context // canceled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // link goroutines

	closing atomic.Bool
	mu      sync.Mutex // serialises SetPeer, RemovePeer and Close
	closed  bool
	links   atomic.Pointer[map[peer.ID]*memLink] // copy on write under mu

	recvMu     sync.Mutex
	recvCond   *sync.Cond // signalled when inflight drops to 0 after recvClosed
	recvClosed bool
	inflight   int // Handler calls running

	refusedUnknown, refusedTooLarge, refusedClosed atomic.Uint64
	recvFrames, recvBytes                          atomic.Uint64
}

var _ Transport = (*MemEndpoint)(nil)

// ID is the member this endpoint belongs to.
func (e *MemEndpoint) ID() peer.ID { return e.id }

// Send implements Transport.
func (e *MemEndpoint) Send(env wire.Envelope) bool {
	l, n, ok := e.route(env)
	if !ok {
		return false
	}
	switch l.queue.push(env, n) {
	case pushed:
		return true
	case pushFull:
		return false
	}
	// The queue closed while we looked the peer up.
	if e.closing.Load() {
		e.refusedClosed.Add(1)
	} else {
		e.refusedUnknown.Add(1) // removed
	}
	return false
}

func (e *MemEndpoint) sendWait(ctx context.Context, env wire.Envelope) bool {
	l, n, ok := e.route(env)
	return ok && l.queue.pushWait(ctx, env, n)
}

func (e *MemEndpoint) route(env wire.Envelope) (*memLink, int, bool) {
	if env.From != e.id {
		invariant.Unreachable("member %s asked to send an envelope from %s", e.id, env.From)
	}
	if e.closing.Load() {
		e.refusedClosed.Add(1)
		return nil, 0, false
	}
	l := (*e.links.Load())[env.To]
	if l == nil {
		e.refusedUnknown.Add(1)
		return nil, 0, false
	}
	n := wire.EncodedLen(env)
	if n > e.net.limits.FrameBytesMax {
		e.refusedTooLarge.Add(1)
		return nil, 0, false
	}
	return l, n, true
}

// SetPeer implements Transport. The address is only reported in Stats.
func (e *MemEndpoint) SetPeer(id peer.ID, addr string) {
	invariant.Check(id != peer.None, "SetPeer of member 0")
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	old := *e.links.Load()
	if l := old[id]; l != nil {
		l.addr.Store(&addr)
		return
	}
	ctx, cancel := context.WithCancel(e.ctx)
	l := &memLink{e: e, id: id, queue: newSendQueue(e.net.limits), ctx: ctx, cancel: cancel}
	l.addr.Store(&addr)
	m := maps.Clone(old)
	m[id] = l
	e.links.Store(&m)
	e.wg.Add(1)
	go l.run()
}

// RemovePeer implements Transport. Unlike TCP's it does not wait for the
// link to stop: the link may be inside the peer's Handler, which may itself
// be calling RemovePeer on its own endpoint. An envelope whose Handler call
// has begun completes; no further one from the removed link starts.
func (e *MemEndpoint) RemovePeer(id peer.ID) {
	e.mu.Lock()
	old := *e.links.Load()
	l := old[id]
	if l != nil {
		m := maps.Clone(old)
		delete(m, id)
		e.links.Store(&m)
	}
	e.mu.Unlock()
	if l != nil {
		l.cancel()
		l.queue.close()
	}
}

// Stats implements Transport. The Conns counters stay zero: there are no
// connections to accept or refuse.
func (e *MemEndpoint) Stats() Stats {
	links := *e.links.Load()
	s := Stats{
		Peers:           make([]PeerStats, 0, len(links)),
		RefusedUnknown:  e.refusedUnknown.Load(),
		RefusedTooLarge: e.refusedTooLarge.Load(),
		RefusedClosed:   e.refusedClosed.Load(),
		ReceivedFrames:  e.recvFrames.Load(),
		ReceivedBytes:   e.recvBytes.Load(),
	}
	for _, id := range slices.Sorted(maps.Keys(links)) {
		s.Peers = append(s.Peers, links[id].stats())
	}
	return s
}

// Close implements Transport. The member's ID is free for a new Endpoint
// once Close returns.
func (e *MemEndpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.closing.Store(true)
	links := *e.links.Load()
	e.links.Store(&map[peer.ID]*memLink{})
	e.mu.Unlock()

	// Refuse new deliveries, then wait for the Handler calls running now.
	e.recvMu.Lock()
	e.recvClosed = true
	for e.inflight > 0 {
		e.recvCond.Wait()
	}
	e.recvMu.Unlock()

	e.cancel()
	for _, l := range links {
		l.queue.close()
	}
	e.wg.Wait()
	e.net.remove(e)
	return nil
}

// receive runs the Handler for one envelope, unless the endpoint closed.
func (e *MemEndpoint) receive(from peer.ID, env wire.Envelope, bodyBytes int) bool {
	e.recvMu.Lock()
	if e.recvClosed {
		e.recvMu.Unlock()
		return false
	}
	e.inflight++
	e.recvMu.Unlock()

	e.handler(env)
	n := uint64(frameHeaderBytes + bodyBytes)
	e.recvFrames.Add(1)
	e.recvBytes.Add(n)
	if l := (*e.links.Load())[from]; l != nil {
		l.recvFrames.Add(1)
		l.recvBytes.Add(n)
	}

	e.recvMu.Lock()
	e.inflight--
	if e.inflight == 0 && e.recvClosed {
		e.recvCond.Broadcast()
	}
	e.recvMu.Unlock()
	return true
}

// memLink carries frames from one endpoint to one peer: the in-memory
// counterpart of a TCP writer.
type memLink struct {
	e      *MemEndpoint
	id     peer.ID
	addr   atomic.Pointer[string]
	queue  *sendQueue
	ctx    context.Context
	cancel context.CancelFunc

	sentFrames, sentBytes, lostFrames, connects atomic.Uint64
	recvFrames, recvBytes                       atomic.Uint64
}

func (l *memLink) stats() PeerStats {
	frames, bytes, dropped := l.queue.gauges()
	dst, ok, _ := l.e.net.lookup(l.e.id, l.id)
	return PeerStats{
		ID:             l.id,
		Addr:           *l.addr.Load(),
		Connected:      dst != nil && ok,
		QueuedFrames:   frames,
		QueuedBytes:    bytes,
		SentFrames:     l.sentFrames.Load(),
		SentBytes:      l.sentBytes.Load(),
		DroppedFrames:  dropped,
		LostFrames:     l.lostFrames.Load(),
		Connects:       l.connects.Load(),
		ReceivedFrames: l.recvFrames.Load(),
		ReceivedBytes:  l.recvBytes.Load(),
	}
}

// run moves batches from the queue to the peer's Handler while the peer's
// endpoint exists, and waits while it does not (the queue fills meanwhile).
func (l *memLink) run() {
	defer l.e.wg.Done()
	var last *MemEndpoint
	for {
		dst, _, changed := l.e.net.lookup(l.e.id, l.id)
		if dst != nil && dst != last {
			l.connects.Add(1) // a new life of the peer: like a TCP (re)connect
			last = dst
		}
		if dst == nil {
			select {
			case <-l.ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		b, ok := l.queue.pop()
		if !ok {
			select {
			case <-l.ctx.Done():
				return
			case <-changed:
			case <-l.queue.ready:
			}
			continue
		}
		l.deliver(dst, b)
	}
}

// deliver decodes one batch and hands each envelope to dst. The batch
// buffer is not recycled: the payloads given to the Handler alias it.
func (l *memLink) deliver(dst *MemEndpoint, b batch) {
	buf := b.buf
	for frames := 0; frames < b.frames; frames++ {
		invariant.Check(len(buf) >= frameHeaderBytes, "batch ends inside a frame header")
		n := int(binary.BigEndian.Uint32(buf))
		if len(buf) < frameHeaderBytes+n {
			invariant.Unreachable("batch ends inside a %d-byte frame body", n)
		}
		body := buf[frameHeaderBytes : frameHeaderBytes+n : frameHeaderBytes+n]
		buf = buf[frameHeaderBytes+n:]
		env, err := wire.DecodeEnvelope(body, l.e.net.limits.FrameBytesMax)
		if err != nil {
			invariant.Unreachable("queued frame does not decode: %v", err)
		}
		if l.ctx.Err() != nil || !l.e.net.reachable(l.e.id, l.id) || !dst.receive(l.e.id, env, n) {
			l.lostFrames.Add(1)
			continue
		}
		l.sentFrames.Add(1)
		l.sentBytes.Add(uint64(frameHeaderBytes + n))
	}
	if len(buf) != 0 {
		invariant.Unreachable("%d bytes after the last frame of a batch", len(buf))
	}
}
