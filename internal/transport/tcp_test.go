package transport

// TCP-only behaviour: what peers on real sockets can do wrong. The bad peer
// is a raw net.Conn written by the test, byte by byte.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// pair starts members 1 and 2 over TCP, linked both ways, with tune applied
// to both configs; member 1's Handler is h1 (nil: a recorder).
type tcpPair struct {
	f      *tcpFabric
	t1, t2 *TCP
	r1, r2 *recorder
}

func newTCPPair(t *testing.T, tune func(*Config)) *tcpPair {
	t.Helper()
	log, buf := newTestLogger()
	f := &tcpFabric{log: log, buf: buf, addrs: map[peer.ID]string{}, tune: tune}
	p := &tcpPair{f: f, r1: newRecorder(1, false), r2: newRecorder(2, false)}
	p.t1 = f.start(t, 1, p.r1.handle).(*TCP)
	p.t2 = f.start(t, 2, p.r2.handle).(*TCP)
	p.t1.SetPeer(2, f.addr(2))
	p.t2.SetPeer(1, f.addr(1))
	t.Cleanup(func() {
		p.t1.Close()
		p.t2.Close()
		if t.Failed() {
			t.Logf("transport log:\n%s", tail(buf.String(), 60))
		}
		checkNoLeaks(t)
	})
	return p
}

// exchange sends one message each way and waits for both: the transports
// still serve.
func (p *tcpPair) exchange(t *testing.T, seq uint64) {
	t.Helper()
	sendWait(t, p.t1, makeMsg(1, 2, seq, 100))
	sendWait(t, p.t2, makeMsg(2, 1, seq, 100))
	waitFor(t, 10*time.Second, fmt.Sprintf("exchange %d", seq), func() bool {
		l1, ok1 := p.r1.lastSeq(2)
		l2, ok2 := p.r2.lastSeq(1)
		return ok1 && ok2 && l1 == seq && l2 == seq
	})
}

func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func helloBytesOf(h hello) []byte { return appendHello(nil, h) }

func goodHello(from, to peer.ID) hello {
	return hello{version: wire.Version, cluster: testCluster, from: from, to: to}
}

// rawHandshake says hello as from to to over c and checks the answer.
func rawHandshake(t *testing.T, c net.Conn, from, to peer.ID) {
	t.Helper()
	if _, err := c.Write(helloBytesOf(goodHello(from, to))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := readHello(c)
	if err != nil {
		t.Fatalf("no answer to a good hello: %v", err)
	}
	if h != goodHello(to, from) {
		t.Fatalf("answer %+v, want %+v", h, goodHello(to, from))
	}
	c.SetReadDeadline(time.Time{})
}

func frameOf(env wire.Envelope) []byte {
	return appendFrame(nil, env, wire.EncodedLen(env))
}

func rawFrame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// expectClosed reads c (discarding keep-alives) until the other side closes.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open 10 s after bad input")
	}
}

// TestTCPBadInput writes, from a raw connection, each kind of bad input a
// peer (or a stranger) can send. Each time: the connection is closed, one
// log line names the remote address and the reason, it is counted, and the
// transport goes on serving its real peer, whose connection is not touched.
func TestTCPBadInput(t *testing.T) {
	const frameMax = 1 << 20
	p := newTCPPair(t, func(c *Config) {
		c.FrameBytesMax = frameMax
		c.HandshakeTimeout = 300 * time.Millisecond
	})
	p.exchange(t, seqsAbove)
	afterHello := func(body []byte) func(*testing.T, net.Conn) []byte {
		return func(t *testing.T, c net.Conn) []byte {
			rawHandshake(t, c, 5, 1)
			return body
		}
	}
	hdr := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	plain := func(b []byte) func(*testing.T, net.Conn) []byte {
		return func(*testing.T, net.Conn) []byte { return b }
	}
	for i, tc := range []struct {
		name    string
		send    func(*testing.T, net.Conn) []byte
		reason  string
		refused bool // at the hello (ConnsRefused) or later (ConnsDropped)
	}{
		{"garbage", plain([]byte("GET / HTTP/1.1\r\nHost: chorus\r\n\r\n")), `bad magic \"GET \"`, true},
		{"wrong version", plain(helloBytesOf(hello{version: wire.Version + 1, cluster: testCluster, from: 5, to: 1})),
			fmt.Sprintf("wire version %d, this build %d", wire.Version+1, wire.Version), true},
		{"wrong cluster", plain(helloBytesOf(hello{version: wire.Version, cluster: 99, from: 5, to: 1})),
			fmt.Sprintf("cluster id 99, this cluster is %d", testCluster), true},
		{"hello for another member", plain(helloBytesOf(goodHello(5, 7))), "hello addressed to member 7, this member is 1", true},
		{"hello from member 0", plain(helloBytesOf(goodHello(0, 1))), "hello from member 0", true},
		{"short hello", plain(helloBytesOf(goodHello(5, 1))[:10]), "read hello", true},
		{"oversized frame", afterHello(hdr(frameMax + 1)), fmt.Sprintf("header claims %d bytes, limit %d", frameMax+1, frameMax), false},
		{"4 GiB frame", afterHello(hdr(1<<32 - 1)), "header claims 4294967295 bytes", false},
		{"envelope of another version", afterHello(rawFrame([]byte{9, 0, 0, 0, 5, 1, 0})), "unsupported version", false},
		{"truncated envelope", afterHello(rawFrame([]byte{wire.Version, 0x10})), "truncated", false},
		{"trailing bytes", afterHello(rawFrame(append(wire.AppendEnvelope(nil, wire.Envelope{Kind: testKind, From: 5, To: 1}), 0))), "trailing", false},
		{"envelope from another member", afterHello(frameOf(wire.Envelope{Kind: testKind, From: 6, To: 1})), "envelope from 6 to 1 on a connection from 5 to 1", false},
		{"envelope for another member", afterHello(frameOf(wire.Envelope{Kind: testKind, From: 5, To: 3})), "envelope from 5 to 3", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.t1.Stats()
			c := rawDial(t, p.f.addr(1))
			if _, err := c.Write(tc.send(t, c)); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			line := p.f.buf.waitLine(t, "remote="+c.LocalAddr().String(), tc.reason)
			if !strings.Contains(line, "level=WARN") {
				t.Errorf("log line not a warning: %s", line)
			}
			after := p.t1.Stats()
			if tc.refused && after.ConnsRefused != before.ConnsRefused+1 || !tc.refused && after.ConnsDropped != before.ConnsDropped+1 {
				t.Errorf("counted refused %d->%d, dropped %d->%d", before.ConnsRefused, after.ConnsRefused, before.ConnsDropped, after.ConnsDropped)
			}
			if after.ReceivedFrames != before.ReceivedFrames {
				t.Errorf("bad input reached the Handler: %d frames", after.ReceivedFrames-before.ReceivedFrames)
			}
			p.exchange(t, seqsAbove+1+uint64(i))
		})
	}
	for _, tr := range []*TCP{p.t1, p.t2} {
		if ps := tr.Stats().Peers[0]; ps.Connects != 1 || ps.LostFrames != 0 {
			t.Errorf("the real peer's connection was disturbed: %+v", ps)
		}
	}
	p.r1.check(t)
	p.r2.check(t)
}

// rawListener accepts connections, answers hellos with answer (nil: no
// answer), and then runs serve on each until the test ends.
type rawListener struct {
	ln      net.Listener
	accepts atomic.Int32
	wg      sync.WaitGroup
}

func newRawListener(t *testing.T, answer func(hello) []byte, serve func(net.Conn)) *rawListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawListener{ln: ln}
	var conns []net.Conn
	var mu sync.Mutex
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			r.accepts.Add(1)
			r.wg.Go(func() {
				h, err := readHello(c)
				if err != nil {
					return
				}
				if a := answer(h); a != nil {
					c.Write(a)
				}
				serve(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *rawListener) addr() string { return r.ln.Addr().String() }

func answerAs(id peer.ID) func(hello) []byte {
	return func(h hello) []byte { return helloBytesOf(goodHello(id, h.from)) }
}

func discard(c net.Conn) { io.Copy(io.Discard, c) }

func startTCP(t *testing.T, id peer.ID, tune func(*Config), h Handler) (*TCP, *logBuffer) {
	t.Helper()
	log, buf := newTestLogger()
	cfg := testConfig(id, log)
	if tune != nil {
		tune(&cfg)
	}
	if h == nil {
		h = func(wire.Envelope) {}
	}
	tr, err := NewTCP(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.Close()
		if t.Failed() {
			t.Logf("transport log:\n%s", tail(buf.String(), 40))
		}
		checkNoLeaks(t)
	})
	return tr, buf
}

// TestTCPDeadAcceptorNoticed: the accepting side answers the hello, then
// sends nothing (no keep-alives) while reading everything. The dialer must
// give the connection up after ReadIdleTimeout and dial again.
func TestTCPDeadAcceptorNoticed(t *testing.T) {
	raw := newRawListener(t, answerAs(2), discard)
	tr, logs := startTCP(t, 1, func(c *Config) {
		c.KeepAliveInterval = 50 * time.Millisecond
		c.ReadIdleTimeout = 300 * time.Millisecond
	}, nil)
	tr.SetPeer(2, raw.addr())
	logs.waitLine(t, "connection lost", "peer=2", "connection idle")
	waitFor(t, 10*time.Second, "a second dial", func() bool { return raw.accepts.Load() >= 2 })
}

// TestTCPDeadDialerNoticed: a dialer completes the hello and then goes
// silent. The acceptor must drop it after ReadIdleTimeout.
func TestTCPDeadDialerNoticed(t *testing.T) {
	tr, logs := startTCP(t, 1, func(c *Config) {
		c.KeepAliveInterval = 50 * time.Millisecond
		c.ReadIdleTimeout = 300 * time.Millisecond
	}, nil)
	c := rawDial(t, tr.Addr().String())
	rawHandshake(t, c, 5, 1)
	expectClosed(t, c)
	logs.waitLine(t, "dropped connection", "remote="+c.LocalAddr().String(), "connection idle")
	if st := tr.Stats(); st.ConnsDropped != 1 {
		t.Errorf("ConnsDropped %d, want 1", st.ConnsDropped)
	}
}

// TestTCPIdleConnectionSurvives: two healthy members with nothing to say
// keep their connections for several ReadIdleTimeouts, thanks to the
// keep-alives. (This waits on purpose: it shows that something does not
// happen over a span of time.)
func TestTCPIdleConnectionSurvives(t *testing.T) {
	idle := time.Second
	p := newTCPPair(t, func(c *Config) {
		c.KeepAliveInterval = idle / 10
		c.ReadIdleTimeout = idle
	})
	p.exchange(t, seqsAbove)
	<-time.After(3 * idle)
	p.exchange(t, seqsAbove+1)
	for _, tr := range []*TCP{p.t1, p.t2} {
		st := tr.Stats()
		if st.Peers[0].Connects != 1 || st.ConnsDropped != 0 {
			t.Errorf("an idle healthy connection was dropped: %+v", st)
		}
	}
	if l := p.f.buf.line("idle"); l != "" {
		t.Errorf("idle timeout on a healthy connection: %s", l)
	}
}

// TestTCPStuckPeerWriteDeadline: the acceptor answers the hello and sends
// keep-alives, but never reads. Once the kernel buffers are full the
// writer's write blocks; WriteTimeout must end it, count the batch as lost,
// and reconnect. Close must not hang on the stuck write.
func TestTCPStuckPeerWriteDeadline(t *testing.T) {
	raw := newRawListener(t, answerAs(2), func(c net.Conn) {
		for {
			if _, err := c.Write(keepAliveFrame[:]); err != nil {
				return
			}
			<-time.After(20 * time.Millisecond)
		}
	})
	tr, logs := startTCP(t, 1, func(c *Config) {
		c.WriteTimeout = 200 * time.Millisecond
	}, nil)
	tr.SetPeer(2, raw.addr())
	big := makeMsg(1, 2, seqsAbove, 64<<10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, _ := tr.Stats().Peer(2)
		if p.LostFrames > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write timed out: %+v", p)
		}
		if !tr.Send(big) {
			<-time.After(time.Millisecond) // queue full: pace the retry
		}
	}
	logs.waitLine(t, "connection lost", "peer=2", "i/o timeout")
	waitFor(t, 10*time.Second, "a reconnection", func() bool { return raw.accepts.Load() >= 2 })
	done := make(chan error)
	go func() { done <- tr.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a peer that does not read")
	}
}

// TestTCPWrongMemberAnswers: the address of peer 2 is answered by member 7
// (say, the address was reused). The dialer must refuse it and keep trying.
func TestTCPWrongMemberAnswers(t *testing.T) {
	raw := newRawListener(t, answerAs(7), discard)
	tr, logs := startTCP(t, 1, nil, nil)
	tr.SetPeer(2, raw.addr())
	line := logs.waitLine(t, "dial failed", "peer=2", "member 7 answered, expected member 2")
	if !strings.Contains(line, "level=WARN") {
		t.Errorf("not a warning: %s", line)
	}
	waitFor(t, 10*time.Second, "a retry", func() bool { return raw.accepts.Load() >= 2 })
	if p, _ := tr.Stats().Peer(2); p.Connects != 0 || p.DialFailures == 0 {
		t.Errorf("stats %+v", p)
	}
}

// TestTCPDialBackoff: a peer that refuses connections is redialed with
// exponential backoff (5 ms doubling to 100 ms here), not in a tight loop.
// (It waits on purpose: the count of dials over a span of time is the point.)
func TestTCPDialBackoff(t *testing.T) {
	tr, _ := startTCP(t, 1, nil, nil)
	down := (&tcpFabric{}).downAddr(t)
	tr.SetPeer(2, down)
	const span = 600 * time.Millisecond
	<-time.After(span)
	// Pauses drawn in [d/2, d] for d = 5, 10, 20, 40, 80, 100, 100, ... ms:
	// between 6 (all pauses long) and about 15 (all short, plus dial time)
	// fit in 600 ms. Without backoff it would be thousands.
	p, _ := tr.Stats().Peer(2)
	if p.DialFailures < 4 || p.DialFailures > 25 {
		t.Errorf("%d failed dials in %v, want about 6 to 15", p.DialFailures, span)
	}
}

// TestTCPAddressChange: peer 2 moves to another port; after SetPeer with the
// new address, messages reach it there.
func TestTCPAddressChange(t *testing.T) {
	p := newTCPPair(t, nil)
	p.exchange(t, seqsAbove)
	p.t2.Close()
	delete(p.f.addrs, 2)
	p.r2 = newRecorder(2, false)
	p.t2 = p.f.start(t, 2, p.r2.handle).(*TCP)
	p.t2.SetPeer(1, p.f.addr(1))
	p.t1.SetPeer(2, p.f.addr(2))
	p.exchange(t, seqsAbove+1)
	if ps, _ := p.t1.Stats().Peer(2); ps.Addr != p.f.addr(2) {
		t.Errorf("address %q, want %q", ps.Addr, p.f.addr(2))
	}
}

// TestTCPTakeOverKeepsOrder: member 5 reconnects while its old connection is
// still being read (the Handler is blocked on its first message). The new
// connection must not deliver until that call returns, and then the old one
// delivers no more: never two Handler calls at once for one sender, nothing
// out of order.
func TestTCPTakeOverKeepsOrder(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	freshDelivered := make(chan struct{}, 1)
	var active atomic.Int32
	var concurrent atomic.Bool
	rec := newRecorder(1, false)
	tr, _ := startTCP(t, 1, nil, func(env wire.Envelope) {
		if active.Add(1) > 1 {
			concurrent.Store(true)
		}
		defer active.Add(-1)
		rec.handle(env)
		switch env.Channel >> 32 {
		case seqsAbove:
			entered <- struct{}{}
			<-gate
		case seqsAbove + 100:
			freshDelivered <- struct{}{}
		}
	})
	old := rawDial(t, tr.Addr().String())
	rawHandshake(t, old, 5, 1)
	var frames []byte
	for i := range uint64(10) {
		frames = append(frames, frameOf(makeMsg(5, 1, seqsAbove+i, 10))...)
	}
	old.Write(frames)
	<-entered

	fresh := rawDial(t, tr.Addr().String())
	rawHandshake(t, fresh, 5, 1)
	frames = frames[:0]
	for i := range uint64(5) {
		frames = append(frames, frameOf(makeMsg(5, 1, seqsAbove+100+i, 10))...)
	}
	fresh.Write(frames)
	// Give the new connection time to misbehave: it must not deliver while
	// the old connection's Handler call is blocked.
	select {
	case <-freshDelivered:
		t.Error("the new connection delivered while the old one's Handler call was running")
	case <-time.After(300 * time.Millisecond):
	}
	close(gate)
	expectClosed(t, old)
	waitFor(t, 10*time.Second, "the new connection's messages", func() bool {
		last, _ := rec.lastSeq(5)
		return last == seqsAbove+104
	})
	if concurrent.Load() {
		t.Error("two Handler calls at once for one sender")
	}
	rec.check(t)
}

// TestTCPInboundConnsMax: connections beyond the limit are closed at once.
func TestTCPInboundConnsMax(t *testing.T) {
	tr, logs := startTCP(t, 1, func(c *Config) { c.InboundConnsMax = 2 }, nil)
	for _, from := range []peer.ID{5, 6} {
		rawHandshake(t, rawDial(t, tr.Addr().String()), from, 1)
	}
	c := rawDial(t, tr.Addr().String())
	expectClosed(t, c)
	logs.waitLine(t, "refused connection", "remote="+c.LocalAddr().String(), "InboundConnsMax=2")
	if st := tr.Stats(); st.ConnsRefused != 1 || st.ConnsAccepted != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestTCPRemovePeerStopsWriter: after RemovePeer nothing more reaches the
// peer and its goroutines are gone.
func TestTCPRemovePeerStopsWriter(t *testing.T) {
	p := newTCPPair(t, nil)
	p.exchange(t, seqsAbove)
	p.t1.RemovePeer(2)
	if p.t1.Send(makeMsg(1, 2, seqsAbove+1, 10)) {
		t.Error("Send to a removed peer accepted")
	}
	if n := len(p.t1.Stats().Peers); n != 0 {
		t.Errorf("%d peers after RemovePeer", n)
	}
	// Member 2 still reaches member 1: inbound is not tied to the peer list.
	sendWait(t, p.t2, makeMsg(2, 1, seqsAbove+1, 10))
	waitFor(t, 10*time.Second, "inbound after RemovePeer", func() bool {
		last, _ := p.r1.lastSeq(2)
		return last == seqsAbove+1
	})
}

func TestConfigValidation(t *testing.T) {
	good := DefaultConfig(1, 1, "127.0.0.1:0")
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no id", func(c *Config) { c.ID = 0 }, "ID is required"},
		{"no cluster", func(c *Config) { c.ClusterID = 0 }, "ClusterID is required"},
		{"no address", func(c *Config) { c.ListenAddr = "" }, "ListenAddr is required"},
		{"tiny frames", func(c *Config) { c.FrameBytesMax = 10 }, "FrameBytesMax 10 not in"},
		{"huge frames", func(c *Config) { c.FrameBytesMax = 2 << 30 }, "FrameBytesMax 2147483648 not in"},
		{"queue smaller than a frame", func(c *Config) { c.SendQueueBytesMax = c.FrameBytesMax }, "cannot hold one frame"},
		{"negative queue", func(c *Config) { c.SendQueueFramesMax = -1 }, "SendQueueFramesMax -1"},
		{"batch over queue", func(c *Config) { c.BatchBytesMax = c.SendQueueBytesMax + 1 }, "BatchBytesMax"},
		{"negative timeout", func(c *Config) { c.WriteTimeout = -1 }, "negative duration"},
		{"backoff inverted", func(c *Config) { c.DialBackoffMax = c.DialBackoffMin / 2 }, "DialBackoffMax"},
		{"idle too short", func(c *Config) { c.ReadIdleTimeout = c.KeepAliveInterval }, "ReadIdleTimeout"},
		{"inbound negative", func(c *Config) { c.InboundConnsMax = -1 }, "InboundConnsMax -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			_, err := NewTCP(c, func(wire.Envelope) {})
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrConfig with %q", err, tc.want)
			}
		})
	}
	if _, err := NewTCP(good, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil handler: %v", err)
	}
	// Zero fields take defaults; the result validates.
	c, err := Config{ID: 1, ClusterID: 1, ListenAddr: "x"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig(1, 1, "x")
	c.Logger, want.Logger = nil, nil
	if c != want {
		t.Errorf("defaults\n got %+v\nwant %+v", c, want)
	}
	if _, err := NewMemNetworkLimits(Limits{BatchBytesMax: -1}); !errors.Is(err, ErrConfig) {
		t.Errorf("mem limits: %v", err)
	}
}
