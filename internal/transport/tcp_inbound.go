package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// inConn is one accepted connection after its hello.
type inConn struct {
	from       peer.ID
	conn       net.Conn
	superseded atomic.Bool   // a newer connection from the same sender took over
	done       chan struct{} // closed after the last Handler call for this connection
}

// errSuperseded ends a connection replaced by a newer one from its sender.
var errSuperseded = errors.New("superseded by a newer connection from the same member")

// acceptLoop accepts connections until the listener closes.
func (t *TCP) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: pause and retry rather
			// than spin (net/http does the same).
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("transport: accept failed", "reason", err, "retry_in", delay)
			timer := time.NewTimer(delay)
			select {
			case <-t.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		delay = 0
		if !t.admit() {
			t.connsRefused.Add(1)
			t.log.Warn("transport: refused connection", "remote", conn.RemoteAddr().String(),
				"reason", fmt.Sprintf("already serving InboundConnsMax=%d connections", t.cfg.InboundConnsMax))
			conn.Close()
			continue
		}
		go t.serveInbound(conn)
	}
}

// admit reserves a slot for one more inbound connection and its goroutines.
func (t *TCP) admit() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.inboundN >= t.cfg.InboundConnsMax {
		return false
	}
	t.inboundN++
	t.wg.Add(1)
	return true
}

// serveInbound checks the hello, answers it, and reads frames until the
// connection fails or the transport closes. Whatever the peer sends, the
// worst outcome is this connection closed and one log line.
func (t *TCP) serveInbound(conn net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		t.inboundN--
		t.mu.Unlock()
	}()
	stop := context.AfterFunc(t.ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	remote := conn.RemoteAddr().String()

	ir := &idleReader{conn: conn, idle: t.cfg.HandshakeTimeout}
	br := bufio.NewReaderSize(ir, readBufferBytes)
	from, err := t.checkHello(br)
	if err != nil {
		if t.ctx.Err() == nil {
			t.connsRefused.Add(1)
			t.log.Warn("transport: refused connection", "remote", remote, "reason", err)
		}
		return
	}

	// Take over before answering: the dialer sends data, and dials again,
	// only after our answer, so the connections of one sender take over in
	// the order it made them.
	ic := &inConn{from: from, conn: conn, done: make(chan struct{})}
	old := t.takeOver(ic)
	err = t.answerHello(conn, from)
	quit := make(chan struct{})
	if err == nil {
		t.wg.Add(1)
		go t.sendKeepAlives(conn, quit) // also while we wait for old below
	}
	if old != nil {
		// The old connection's last Handler call must return before ours
		// start, and before ours end (a newer connection waits on ic.done).
		<-old.done
	}
	if err == nil {
		ir.idle = t.cfg.ReadIdleTimeout
		err = t.readLoop(ic, br)
	}
	close(quit)
	t.release(ic)

	log := t.log.With("remote", remote, "peer", from)
	switch {
	case t.ctx.Err() != nil, errors.Is(err, errSuperseded), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		log.Debug("transport: inbound connection closed", "reason", err)
	case errors.Is(err, ErrIdle):
		t.connsDropped.Add(1)
		log.Info("transport: dropped connection", "reason", err)
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrProtocol):
		t.connsDropped.Add(1)
		log.Warn("transport: dropped connection", "reason", err)
	default:
		log.Info("transport: inbound connection lost", "reason", err)
	}
}

// checkHello reads the dialer's hello and checks it.
func (t *TCP) checkHello(r io.Reader) (peer.ID, error) {
	h, err := readHello(r)
	if err != nil {
		return peer.None, err
	}
	if err := h.check(t.cfg.ClusterID, t.cfg.ID, peer.None); err != nil {
		return peer.None, err
	}
	t.connsAccepted.Add(1) // before the answer: a dialer that has it sees the count
	return h.from, nil
}

// answerHello writes our hello to the dialer.
func (t *TCP) answerHello(conn net.Conn, to peer.ID) error {
	var buf [helloBytes]byte
	reply := appendHello(buf[:0], hello{version: wire.Version, cluster: t.cfg.ClusterID, from: t.cfg.ID, to: to})
	if err := writeAll(conn, reply, t.cfg.HandshakeTimeout); err != nil {
		return fmt.Errorf("answer hello: %w", err)
	}
	return nil
}

// takeOver makes ic the connection read from its sender and returns the one
// it replaces, if any (the sender reconnected before we noticed its old
// connection die). That one is closed and marked, so it calls the Handler no
// more; the caller waits on its done before calling the Handler itself.
// Frames from two connections of one sender thus never interleave, and
// per-sender order holds across reconnections.
func (t *TCP) takeOver(ic *inConn) *inConn {
	t.mu.Lock()
	old := t.inbound[ic.from]
	t.inbound[ic.from] = ic
	t.mu.Unlock()
	if old != nil {
		old.superseded.Store(true)
		old.conn.Close()
	}
	return old
}

// release ends ic's turn: no Handler call for it follows.
func (t *TCP) release(ic *inConn) {
	t.mu.Lock()
	if t.inbound[ic.from] == ic {
		delete(t.inbound, ic.from)
	}
	t.mu.Unlock()
	close(ic.done)
}

// readLoop hands each envelope to the Handler. A frame that does not decode,
// or an envelope that is not from the hello's sender to us, ends the
// connection: framing is lost or the peer is broken, and nothing after it can
// be trusted.
func (t *TCP) readLoop(ic *inConn, br *bufio.Reader) error {
	fr := frameReader{r: br, frameBytesMax: t.cfg.FrameBytesMax}
	for {
		body, err := fr.next()
		if err != nil {
			return err
		}
		if len(body) == 0 {
			continue // keep-alive
		}
		env, err := wire.DecodeEnvelope(body, t.cfg.FrameBytesMax)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if env.From != ic.from || env.To != t.cfg.ID {
			return fmt.Errorf("%w: envelope from %s to %s on a connection from %s to %s", ErrProtocol, env.From, env.To, ic.from, t.cfg.ID)
		}
		if ic.superseded.Load() {
			return errSuperseded
		}
		t.handler(env)
		n := uint64(frameHeaderBytes + len(body))
		t.recvFrames.Add(1)
		t.recvBytes.Add(n)
		if p := (*t.peers.Load())[ic.from]; p != nil {
			p.recvFrames.Add(1)
			p.recvBytes.Add(n)
		}
	}
}

// sendKeepAlives writes a keep-alive every KeepAliveInterval on an accepted
// connection, so its dialer, which otherwise never reads, can tell a live
// acceptor from a dead one. Nothing else writes on an accepted connection
// after the hello.
func (t *TCP) sendKeepAlives(conn net.Conn, quit <-chan struct{}) {
	defer t.wg.Done()
	tick := time.NewTicker(t.cfg.KeepAliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.ctx.Done():
			return
		case <-tick.C:
			if err := writeAll(conn, keepAliveFrame[:], t.cfg.WriteTimeout); err != nil {
				t.log.Debug("transport: keep-alive failed", "remote", conn.RemoteAddr().String(), "reason", err)
				conn.Close()
				return
			}
		}
	}
}
