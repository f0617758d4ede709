package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// TCP is a Transport over TCP. It listens on Config.ListenAddr for the
// connections of other members, and keeps one outbound connection per peer,
// dialed and redialed by that peer's writer goroutine. The package comment
// describes the goroutines, the handshake and the frames.
type TCP struct {
	cfg     Config
	handler Handler
	log     *slog.Logger
	ln      net.Listener
	ctx     context.Context // canceled by Close: every goroutine and connection watches it
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every goroutine started by this transport

	closing atomic.Bool
	// peers is replaced, never modified, under mu (copy on write), so
	// Send looks a peer up without a lock.
	peers atomic.Pointer[map[peer.ID]*tcpPeer]

	mu       sync.Mutex
	closed   bool
	inbound  map[peer.ID]*inConn // the connection being read from each sender
	inboundN int                 // inbound connections being served, for InboundConnsMax

	refusedUnknown, refusedTooLarge, refusedClosed atomic.Uint64
	connsAccepted, connsRefused, connsDropped      atomic.Uint64
	recvFrames, recvBytes                          atomic.Uint64
}

var _ Transport = (*TCP)(nil)

// NewTCP validates cfg, listens on cfg.ListenAddr and starts accepting
// connections. h receives every envelope addressed to cfg.ID (see Handler for
// its threading contract). Peers are added with SetPeer.
func NewTCP(cfg Config, h Handler) (*TCP, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil Handler", ErrConfig)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", cfg.ListenAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TCP{
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger,
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		inbound: make(map[peer.ID]*inConn),
	}
	t.peers.Store(&map[peer.ID]*tcpPeer{})
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the address the transport listens on, with the port chosen by the
// system when ListenAddr asked for port 0.
func (t *TCP) Addr() net.Addr { return t.ln.Addr() }

// Send implements Transport.
func (t *TCP) Send(env wire.Envelope) bool {
	p, n, ok := t.route(env)
	if !ok {
		return false
	}
	switch p.queue.push(env, n) {
	case pushed:
		return true
	case pushFull:
		return false
	}
	// The queue closed while we looked the peer up.
	if t.closing.Load() {
		t.refusedClosed.Add(1)
	} else {
		t.refusedUnknown.Add(1) // removed
	}
	return false
}

// sendWait is Send that waits for queue room instead of dropping. Only
// benchmarks and tests use it, to measure or check delivery without pacing
// themselves by hand; one caller per peer at a time.
func (t *TCP) sendWait(ctx context.Context, env wire.Envelope) bool {
	p, n, ok := t.route(env)
	return ok && p.queue.pushWait(ctx, env, n)
}

// route finds env's peer and sizes its frame, counting refusals.
func (t *TCP) route(env wire.Envelope) (*tcpPeer, int, bool) {
	if env.From != t.cfg.ID {
		invariant.Unreachable("member %s asked to send an envelope from %s", t.cfg.ID, env.From)
	}
	if t.closing.Load() {
		t.refusedClosed.Add(1)
		return nil, 0, false
	}
	p := (*t.peers.Load())[env.To]
	if p == nil {
		t.refusedUnknown.Add(1)
		return nil, 0, false
	}
	n := wire.EncodedLen(env)
	if n > t.cfg.FrameBytesMax {
		t.refusedTooLarge.Add(1)
		return nil, 0, false
	}
	return p, n, true
}

// SetPeer implements Transport.
func (t *TCP) SetPeer(id peer.ID, addr string) {
	invariant.Check(id != peer.None, "SetPeer of member 0")
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	old := *t.peers.Load()
	if p := old[id]; p != nil {
		p.setAddr(addr)
		return
	}
	ctx, cancel := context.WithCancel(t.ctx)
	p := &tcpPeer{
		t:           t,
		id:          id,
		addr:        addr,
		queue:       newSendQueue(t.cfg.Limits),
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
		addrChanged: make(chan struct{}, 1),
		rng:         rand.New(rand.NewPCG(t.cfg.JitterSeed^uint64(t.cfg.ID), uint64(id))),
	}
	m := maps.Clone(old)
	m[id] = p
	t.peers.Store(&m)
	t.wg.Add(1)
	go p.run()
}

// RemovePeer implements Transport. It returns once the peer's writer has
// stopped: nothing more is written to it.
func (t *TCP) RemovePeer(id peer.ID) {
	t.mu.Lock()
	old := *t.peers.Load()
	p := old[id]
	if p != nil {
		m := maps.Clone(old)
		delete(m, id)
		t.peers.Store(&m)
	}
	t.mu.Unlock()
	if p != nil {
		p.cancel()
		p.queue.close()
		<-p.done
	}
}

// Stats implements Transport.
func (t *TCP) Stats() Stats {
	peers := *t.peers.Load()
	s := Stats{
		Peers:           make([]PeerStats, 0, len(peers)),
		RefusedUnknown:  t.refusedUnknown.Load(),
		RefusedTooLarge: t.refusedTooLarge.Load(),
		RefusedClosed:   t.refusedClosed.Load(),
		ConnsAccepted:   t.connsAccepted.Load(),
		ConnsRefused:    t.connsRefused.Load(),
		ConnsDropped:    t.connsDropped.Load(),
		ReceivedFrames:  t.recvFrames.Load(),
		ReceivedBytes:   t.recvBytes.Load(),
	}
	for _, id := range slices.Sorted(maps.Keys(peers)) {
		s.Peers = append(s.Peers, peers[id].stats())
	}
	return s
}

// Close implements Transport.
func (t *TCP) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.closing.Store(true)
	peers := *t.peers.Load()
	t.peers.Store(&map[peer.ID]*tcpPeer{})
	t.mu.Unlock()

	err := t.ln.Close()
	t.cancel() // closes every connection (context.AfterFunc) and stops every loop
	for _, p := range peers {
		p.queue.close()
	}
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// errAddrChanged ends a connection whose peer moved.
var errAddrChanged = errors.New("peer address changed")

// tcpPeer is the outbound side of one peer: its queue and the writer
// goroutine (run) that owns its connection.
type tcpPeer struct {
	t           *TCP
	id          peer.ID
	queue       *sendQueue
	ctx         context.Context // canceled by RemovePeer or Close
	cancel      context.CancelFunc
	done        chan struct{} // closed when run returns
	addrChanged chan struct{} // one token: the address changed
	rng         *rand.Rand    // backoff jitter; run's goroutine only

	mu   sync.Mutex
	addr string

	connected                                     atomic.Bool
	sentFrames, sentBytes, lostFrames             atomic.Uint64
	connects, dialFailures, recvFrames, recvBytes atomic.Uint64
}

func (p *tcpPeer) address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *tcpPeer) setAddr(addr string) {
	p.mu.Lock()
	changed := p.addr != addr
	p.addr = addr
	p.mu.Unlock()
	if changed {
		select {
		case p.addrChanged <- struct{}{}:
		default:
		}
	}
}

func (p *tcpPeer) stats() PeerStats {
	frames, bytes, dropped := p.queue.gauges()
	return PeerStats{
		ID:             p.id,
		Addr:           p.address(),
		Connected:      p.connected.Load(),
		QueuedFrames:   frames,
		QueuedBytes:    bytes,
		SentFrames:     p.sentFrames.Load(),
		SentBytes:      p.sentBytes.Load(),
		DroppedFrames:  dropped,
		LostFrames:     p.lostFrames.Load(),
		Connects:       p.connects.Load(),
		DialFailures:   p.dialFailures.Load(),
		ReceivedFrames: p.recvFrames.Load(),
		ReceivedBytes:  p.recvBytes.Load(),
	}
}

// run dials the peer, writes its queue, and redials with backoff until the
// peer is removed or the transport closed. While no connection is up the
// queue fills to its bound and Send drops.
func (p *tcpPeer) run() {
	defer p.t.wg.Done()
	defer close(p.done)
	log := p.t.log.With("peer", p.id)
	var delay time.Duration
	for {
		if delay > 0 && !p.pause(delay) {
			return
		}
		if p.ctx.Err() != nil {
			return
		}
		addr := p.address()
		conn, err := p.dial(addr)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.dialFailures.Add(1)
			level := slog.LevelDebug // a peer that is down: expected, and repeated every backoff
			if errors.Is(err, ErrHandshake) {
				level = slog.LevelWarn // something listens there but refuses us: a misconfiguration
			}
			log.Log(p.ctx, level, "transport: dial failed", "addr", addr, "reason", err)
			delay = p.grow(delay)
			continue
		}
		p.connects.Add(1)
		p.connected.Store(true)
		log.Info("transport: connected", "addr", addr, "local", conn.LocalAddr().String())
		start := time.Now()
		err = p.serve(conn, addr)
		p.connected.Store(false)
		if p.ctx.Err() != nil {
			return
		}
		log.Info("transport: connection lost", "addr", addr, "reason", err)
		// A connection that dies young is not proof the peer is healthy:
		// keep backing off, or a peer that accepts and drops us would be
		// redialed in a tight loop.
		if errors.Is(err, errAddrChanged) || time.Since(start) >= p.t.cfg.DialBackoffMax {
			delay = 0
		} else {
			delay = p.grow(delay)
		}
	}
}

func (p *tcpPeer) grow(d time.Duration) time.Duration {
	if d == 0 {
		return p.t.cfg.DialBackoffMin
	}
	return min(2*d, p.t.cfg.DialBackoffMax)
}

// pause waits about d (drawn in [d/2, d]). It returns false if the peer is
// stopped, and early if its address changes: a new address is worth a try
// at once.
func (p *tcpPeer) pause(d time.Duration) bool {
	d = d/2 + time.Duration(p.rng.Int64N(int64(d/2)+1))
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.ctx.Done():
		return false
	case <-p.addrChanged:
		return true
	case <-timer.C:
		return true
	}
}

// dial connects to addr and exchanges hellos: we name ourselves and the
// member we expect, and the acceptor must answer as that member of our
// cluster, so an address now used by someone else is noticed.
func (p *tcpPeer) dial(addr string) (net.Conn, error) {
	cfg := &p.t.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(p.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(p.ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout)); err != nil {
		conn.Close()
		return nil, err
	}
	var buf [helloBytes]byte
	if _, err := conn.Write(appendHello(buf[:0], hello{version: wire.Version, cluster: cfg.ClusterID, from: cfg.ID, to: p.id})); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write hello: %w", err)
	}
	h, err := readHello(conn)
	if err == nil {
		err = h.check(cfg.ClusterID, cfg.ID, p.id)
	}
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// serve writes the queue to conn until the connection fails, the address
// changes or the peer stops. A second goroutine reads the acceptor's
// keep-alives, so a dead acceptor is noticed even when we have nothing to
// send (writes into a dead connection succeed until the kernel's buffer is
// full, which keep-alives alone never fill).
func (p *tcpPeer) serve(conn net.Conn, addr string) error {
	cfg := &p.t.cfg
	stop := context.AfterFunc(p.ctx, func() { conn.Close() })
	dead := make(chan struct{})
	var readErr error
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		readErr = readKeepAlives(conn, cfg.ReadIdleTimeout)
		conn.Close() // unblock a write stuck on a dead peer
		close(dead)
	}()
	defer func() {
		stop()
		conn.Close()
		<-dead
	}()

	keepAlive := time.NewTimer(cfg.KeepAliveInterval)
	defer keepAlive.Stop()
	for {
		for {
			b, ok := p.queue.pop()
			if !ok {
				break
			}
			if err := writeAll(conn, b.buf, cfg.WriteTimeout); err != nil {
				p.lostFrames.Add(uint64(b.frames))
				return err
			}
			p.sentFrames.Add(uint64(b.frames))
			p.sentBytes.Add(uint64(len(b.buf)))
			p.queue.recycle(b.buf)
			keepAlive.Reset(cfg.KeepAliveInterval)
			select {
			case <-p.addrChanged: // noticed even while the queue never empties
				if p.address() != addr {
					return errAddrChanged
				}
			default:
			}
		}
		select {
		case <-p.ctx.Done():
			return ErrClosed
		case <-p.addrChanged:
			if p.address() != addr {
				return errAddrChanged
			}
		case <-dead:
			return readErr
		case <-p.queue.ready:
		case <-keepAlive.C:
			if err := writeAll(conn, keepAliveFrame[:], cfg.WriteTimeout); err != nil {
				return err
			}
			keepAlive.Reset(cfg.KeepAliveInterval)
		}
	}
}

func writeAll(conn net.Conn, p []byte, timeout time.Duration) error {
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := conn.Write(p); err != nil {
		return fmt.Errorf("write %d bytes: %w", len(p), err)
	}
	return nil
}

// readKeepAlives reads the accepting side of an outbound connection, which
// sends nothing but keep-alives, until it fails: silence for idle, a data
// frame, or a closed connection.
func readKeepAlives(conn net.Conn, idle time.Duration) error {
	r := &idleReader{conn: conn, idle: idle}
	fr := frameReader{r: r, frameBytesMax: 0}
	for {
		_, err := fr.next()
		if errors.Is(err, ErrFrameTooLarge) {
			return fmt.Errorf("%w: data frame from the accepting side, which sends only keep-alives", ErrProtocol)
		}
		if err != nil {
			return err
		}
	}
}
