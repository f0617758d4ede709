package transport

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"net"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

const testCluster = 0xc0ffee

// testKind is the envelope kind of test messages (the application range).
const testKind wire.Kind = 0x1000

// waitFor polls cond until it holds or timeout passes. Polling with a
// deadline, not sleeping: the test proceeds the moment cond holds.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// logBuffer collects slog output from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// line returns the first log line containing every part, or "".
func (b *logBuffer) line(parts ...string) string {
	for l := range strings.Lines(b.String()) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

// waitLine waits for a log line containing every part and returns it.
func (b *logBuffer) waitLine(t testing.TB, parts ...string) string {
	t.Helper()
	var l string
	waitFor(t, 10*time.Second, fmt.Sprintf("a log line with %q", parts), func() bool {
		l = b.line(parts...)
		return l != ""
	})
	return l
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// testConfig is a Config with timings shrunk for tests: fast redial, quick
// keep-alives. ReadIdleTimeout stays generous because the test machine is
// shared and a starved process must not look dead.
func testConfig(id peer.ID, log *slog.Logger) Config {
	cfg := DefaultConfig(id, testCluster, "127.0.0.1:0")
	cfg.Logger = log
	cfg.DialBackoffMin = 5 * time.Millisecond
	cfg.DialBackoffMax = 100 * time.Millisecond
	cfg.KeepAliveInterval = 100 * time.Millisecond
	cfg.ReadIdleTimeout = 2 * time.Second
	cfg.WriteTimeout = 3 * time.Second
	cfg.JitterSeed = 1
	return cfg
}

// waitSender is implemented by both transports for tests and benchmarks.
type waitSender interface {
	sendWait(ctx context.Context, env wire.Envelope) bool
}

func sendWait(t testing.TB, tr Transport, env wire.Envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !tr.(waitSender).sendWait(ctx, env) {
		t.Errorf("sendWait %d->%d refused", env.From, env.To)
	}
}

// A fabric starts members of one implementation, so one test body checks
// both.
type fabric interface {
	// start starts member id, or restarts it (same address) after its
	// previous transport was closed.
	start(t *testing.T, id peer.ID, h Handler) Transport
	// addr is the address to give SetPeer for id.
	addr(id peer.ID) string
	// downAddr is an address where nobody listens.
	downAddr(t *testing.T) string
	logs() *logBuffer
}

type tcpFabric struct {
	limits Limits
	tune   func(*Config)
	log    *slog.Logger
	buf    *logBuffer
	addrs  map[peer.ID]string
}

func (f *tcpFabric) start(t *testing.T, id peer.ID, h Handler) Transport {
	t.Helper()
	cfg := testConfig(id, f.log.With("member", id))
	cfg.Limits = f.limits
	if a, ok := f.addrs[id]; ok {
		cfg.ListenAddr = a
	}
	if f.tune != nil {
		f.tune(&cfg)
	}
	tr, err := NewTCP(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	f.addrs[id] = tr.Addr().String()
	return tr
}

func (f *tcpFabric) addr(id peer.ID) string { return f.addrs[id] }
func (f *tcpFabric) logs() *logBuffer       { return f.buf }

func (f *tcpFabric) downAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

type memFabric struct {
	net *MemNetwork
	buf *logBuffer
}

func (f *memFabric) start(t *testing.T, id peer.ID, h Handler) Transport {
	t.Helper()
	e, err := f.net.Endpoint(id, h)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *memFabric) addr(id peer.ID) string       { return fmt.Sprintf("mem-%d", id) }
func (f *memFabric) downAddr(t *testing.T) string { return "mem-down" }
func (f *memFabric) logs() *logBuffer             { return f.buf }

// forEachFabric runs body once over TCP on loopback and once over a
// MemNetwork, both with limits l.
func forEachFabric(t *testing.T, l Limits, body func(t *testing.T, f fabric)) {
	t.Run("tcp", func(t *testing.T) {
		log, buf := newTestLogger()
		body(t, &tcpFabric{limits: l, log: log, buf: buf, addrs: map[peer.ID]string{}})
		if t.Failed() {
			t.Logf("transport log:\n%s", tail(buf.String(), 60))
		}
		checkNoLeaks(t)
	})
	t.Run("mem", func(t *testing.T) {
		n, err := NewMemNetworkLimits(l)
		if err != nil {
			t.Fatal(err)
		}
		body(t, &memFabric{net: n, buf: &logBuffer{}})
		checkNoLeaks(t)
	})
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// linkAll makes every member a peer of every other.
func linkAll(f fabric, trs map[peer.ID]Transport) {
	for a, tr := range trs {
		for b := range trs {
			if a != b {
				tr.SetPeer(b, f.addr(b))
			}
		}
	}
}

func closeAll(t testing.TB, trs map[peer.ID]Transport) {
	t.Helper()
	for _, tr := range trs {
		if err := tr.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

// Test messages. A message's size and bytes follow from (from, to, seq), and
// its Channel carries seq<<32 | crc32c(payload), so the receiver checks
// order, length and content without shared state with the sender.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sizeFor draws a payload size: 0 and 1 MiB at the start of every stream,
// then mostly small, a quarter up to 64 KiB, one in 200 up to 1 MiB.
func sizeFor(from, to peer.ID, seq uint64) int {
	switch seq {
	case 0:
		return 0
	case 1:
		return 1 << 20
	}
	r := rand.New(rand.NewPCG(uint64(from)<<32|uint64(to), seq))
	switch x := r.IntN(200); {
	case x == 0:
		return r.IntN(1<<20 + 1)
	case x < 50:
		return r.IntN(64<<10 + 1)
	default:
		return r.IntN(513)
	}
}

func makeMsg(from, to peer.ID, seq uint64, size int) wire.Envelope {
	p := make([]byte, size)
	r := rand.New(rand.NewPCG(seq, uint64(from)<<32|uint64(to)))
	for i := 0; i < len(p); i += 8 {
		v := r.Uint64()
		for j := i; j < min(i+8, len(p)); j++ {
			p[j] = byte(v)
			v >>= 8
		}
	}
	return wire.Envelope{Kind: testKind, Channel: seq<<32 | uint64(crc32.Checksum(p, castagnoli)), From: from, To: to, Payload: p}
}

func msg(from, to peer.ID, seq uint64) wire.Envelope {
	return makeMsg(from, to, seq, sizeFor(from, to, seq))
}

// recorder is a Handler that checks every message it receives: addressed to
// its member, payload intact, per sender in increasing sequence (strict: no
// gap allowed; otherwise gaps are allowed but never a step back), and never
// two calls for one sender at once. It keeps a sample of payloads to check
// later that nobody wrote over them after delivery.
type recorder struct {
	self   peer.ID
	strict bool

	mu      sync.Mutex
	senders map[peer.ID]*senderState
	errs    []string
}

type senderState struct {
	busy sync.Mutex // held during a Handler call for this sender, only by handle

	mu    sync.Mutex // guards the rest, for handle and for readers
	next  uint64     // lowest acceptable next seq
	count int
	last  uint64
	kept  []wire.Envelope
}

func newRecorder(self peer.ID, strict bool) *recorder {
	return &recorder{self: self, strict: strict, senders: map[peer.ID]*senderState{}}
}

func (r *recorder) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 20 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

func (r *recorder) sender(id peer.ID) *senderState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.senders[id]
	if s == nil {
		s = &senderState{}
		r.senders[id] = s
	}
	return s
}

func (r *recorder) handle(env wire.Envelope) {
	s := r.sender(env.From)
	if !s.busy.TryLock() {
		r.fail("member %s: two Handler calls at once for sender %s", r.self, env.From)
		s.busy.Lock()
	}
	defer s.busy.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, crc := env.Channel>>32, uint32(env.Channel)
	switch {
	case env.To != r.self:
		r.fail("member %s got an envelope for %s", r.self, env.To)
	case env.Kind != testKind:
		r.fail("member %s: kind %#x", r.self, env.Kind)
	case r.strict && seq != s.next:
		r.fail("%s->%s: seq %d, want %d", env.From, r.self, seq, s.next)
	case !r.strict && seq < s.next:
		r.fail("%s->%s: seq %d after %d (reordered or duplicated)", env.From, r.self, seq, s.next-1)
	case crc32.Checksum(env.Payload, castagnoli) != crc:
		r.fail("%s->%s seq %d: payload checksum mismatch (%d bytes)", env.From, r.self, seq, len(env.Payload))
	case seq < seqsAbove && len(env.Payload) != sizeFor(env.From, r.self, seq):
		r.fail("%s->%s seq %d: %d payload bytes, want %d", env.From, r.self, seq, len(env.Payload), sizeFor(env.From, r.self, seq))
	}
	s.next = seq + 1
	s.last = seq
	s.count++
	if seq%97 == 0 {
		s.kept = append(s.kept, env)
	}
}

// seqsAbove is a marker: messages with seq at or above it are sized freely
// (restart tests use seqs from here so they never collide with sizeFor).
const seqsAbove = 1 << 30

func (r *recorder) count(from peer.ID) int {
	s := r.sender(from)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (r *recorder) lastSeq(from peer.ID) (uint64, bool) {
	s := r.sender(from)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.count > 0
}

// check reports recorded errors and re-checks the kept payloads.
func (r *recorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	errs := append([]string(nil), r.errs...)
	senders := make([]*senderState, 0, len(r.senders))
	for _, s := range r.senders {
		senders = append(senders, s)
	}
	r.mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	for _, s := range senders {
		s.mu.Lock()
		for _, env := range s.kept {
			if crc32.Checksum(env.Payload, castagnoli) != uint32(env.Channel) {
				t.Errorf("%s->%s seq %d: payload changed after delivery", env.From, r.self, env.Channel>>32)
			}
		}
		s.mu.Unlock()
	}
}

// goroutineFrame matches a stack frame in a non-test file of this package.
var goroutineFrame = regexp.MustCompile(`/internal/transport/[a-z_]+\.go:\d+`)

// leakedGoroutines lists the goroutines running code of this package (test
// files aside).
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, m := range goroutineFrame.FindAllString(g, -1) {
			if !strings.Contains(m, "_test.go") {
				leaked = append(leaked, g)
				break
			}
		}
	}
	return leaked
}

// checkNoLeaks fails the test if goroutines of this package are still alive
// a while after everything was closed (they may take a moment to unwind).
func checkNoLeaks(t testing.TB) {
	t.Helper()
	if err := waitNoLeaks(5 * time.Second); err != nil {
		t.Error(err)
	}
}

func waitNoLeaks(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		leaked := leakedGoroutines()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d goroutines leaked, first:\n%s", len(leaked), leaked[0])
		}
		<-time.After(5 * time.Millisecond)
	}
}
