package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/chorus-project/chorus/internal/wire"
)

func TestHelloRoundTrip(t *testing.T) {
	h := hello{version: wire.Version, cluster: 1<<64 - 1, from: 3, to: 1 << 40}
	b := appendHello(nil, h)
	if len(b) != helloBytes || string(b[:4]) != "CHRS" {
		t.Fatalf("hello %x", b)
	}
	got, err := parseHello(b)
	if err != nil || got != h {
		t.Fatalf("parse: %+v %v", got, err)
	}
	if err := got.check(1<<64-1, 1<<40, 3); err != nil {
		t.Errorf("check: %v", err)
	}
	for _, tc := range []struct {
		h    hello
		want error
		text string
	}{
		{hello{version: 2, cluster: 1, from: 3, to: 1}, wire.ErrVersion, "wire version 2"},
		{hello{version: wire.Version, cluster: 2, from: 3, to: 1}, ErrHandshake, "cluster id 2"},
		{hello{version: wire.Version, cluster: 1, from: 3, to: 4}, ErrHandshake, "addressed to member 4"},
		{hello{version: wire.Version, cluster: 1, from: 0, to: 1}, ErrHandshake, "from member 0"},
		{hello{version: wire.Version, cluster: 1, from: 5, to: 1}, ErrHandshake, "member 5 answered, expected member 3"},
	} {
		err := tc.h.check(1, 1, 3)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%+v: %v, want %v with %q", tc.h, err, tc.want, tc.text)
		}
	}
	if _, err := parseHello(append([]byte("XHRS"), b[4:]...)); !errors.Is(err, ErrHandshake) {
		t.Errorf("bad magic: %v", err)
	}
	if _, err := readHello(bytes.NewReader(b[:20])); !errors.Is(err, ErrHandshake) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short hello: %v", err)
	}
}

func TestFrameReader(t *testing.T) {
	env := wire.Envelope{Kind: testKind, Channel: 9, From: 1, To: 2, Payload: []byte("payload")}
	var stream []byte
	stream = append(stream, keepAliveFrame[:]...)
	stream = append(stream, frameOf(env)...)
	stream = append(stream, frameOf(wire.Envelope{From: 1, To: 2})...)
	// A body larger than frameGrowBytes, read in growing pieces, followed
	// by a frame that must start exactly where it ends.
	big := wire.Envelope{From: 1, To: 2, Payload: bytes.Repeat([]byte{0xb1}, 3*frameGrowBytes+1)}
	stream = append(stream, frameOf(big)...)
	stream = append(stream, frameOf(env)...)
	// One byte at a time, to exercise every partial read.
	fr := frameReader{r: iotest.OneByteReader(bytes.NewReader(stream)), frameBytesMax: 4 * frameGrowBytes}
	var bodies [][]byte
	for {
		b, err := fr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	if len(bodies) != 5 || len(bodies[0]) != 0 {
		t.Fatalf("%d bodies", len(bodies))
	}
	for _, i := range []int{1, 4} {
		if got, err := wire.DecodeEnvelope(bodies[i], 64); err != nil || string(got.Payload) != "payload" || got.Channel != 9 {
			t.Errorf("frame %d decoded %+v %v", i, got, err)
		}
	}
	if got, err := wire.DecodeEnvelope(bodies[3], 4*frameGrowBytes); err != nil || !bytes.Equal(got.Payload, big.Payload) {
		t.Errorf("large frame: %v", err)
	}

	for _, tc := range []struct {
		name   string
		stream []byte
		max    int
		want   error
	}{
		{"header cut", []byte{0, 0}, 64, io.ErrUnexpectedEOF},
		{"body cut", append(binary.BigEndian.AppendUint32(nil, 10), 1, 2, 3), 64, io.ErrUnexpectedEOF},
		{"over limit", binary.BigEndian.AppendUint32(nil, 65), 64, ErrFrameTooLarge},
		{"4 GiB", []byte{0xff, 0xff, 0xff, 0xff}, 64, ErrFrameTooLarge},
		{"data where only keep-alives are allowed", frameOf(env), 0, ErrFrameTooLarge},
	} {
		fr := frameReader{r: bytes.NewReader(tc.stream), frameBytesMax: tc.max}
		if _, err := fr.next(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestFrameReaderAllocatesOnlyWhatArrives: a header may claim up to the
// limit, but the reader's memory follows the bytes that actually come; a
// claim over the limit allocates nothing at all.
func TestFrameReaderAllocatesOnlyWhatArrives(t *testing.T) {
	const limit = 16 << 20
	allocated := func(stream []byte, max int) (uint64, error) {
		fr := &frameReader{r: bytes.NewReader(stream), frameBytesMax: max}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := fr.next()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	claim := append(binary.BigEndian.AppendUint32(nil, limit), make([]byte, 10)...)
	n, err := allocated(claim, limit)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n > 4*frameGrowBytes {
		t.Errorf("claim of %d bytes with 10 sent: allocated %d bytes (%v)", limit, n, err)
	}
	n, err = allocated([]byte{0xff, 0xff, 0xff, 0xff}, limit)
	if !errors.Is(err, ErrFrameTooLarge) || n > 4<<10 {
		t.Errorf("claim of 4 GiB: allocated %d bytes (%v)", n, err)
	}
	// A body that does arrive in full, larger than the first chunk, is read
	// whole and costs at most about twice its size.
	body := bytes.Repeat([]byte{7}, 3*frameGrowBytes+5)
	n, err = allocated(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...), limit)
	if err != nil || n > uint64(2*len(body)+frameGrowBytes) {
		t.Errorf("allocated %d for a %d-byte body (%v)", n, len(body), err)
	}
}

func popAll(q *sendQueue) []batch {
	var bs []batch
	for {
		b, ok := q.pop()
		if !ok {
			return bs
		}
		bs = append(bs, b)
	}
}

// decodeBatches decodes frames from batches, checking no batch is over
// batchMax unless it holds a single frame.
func decodeBatches(t *testing.T, bs []batch, batchMax int) []wire.Envelope {
	t.Helper()
	var out []wire.Envelope
	for _, b := range bs {
		if len(b.buf) > batchMax && b.frames != 1 {
			t.Errorf("batch of %d bytes and %d frames over BatchBytesMax %d", len(b.buf), b.frames, batchMax)
		}
		fr := frameReader{r: bytes.NewReader(b.buf), frameBytesMax: 1 << 20}
		n := 0
		for {
			body, err := fr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			env, err := wire.DecodeEnvelope(body, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, env)
			n++
		}
		if n != b.frames {
			t.Errorf("batch says %d frames, holds %d", b.frames, n)
		}
	}
	return out
}

func TestQueueBatchesInOrder(t *testing.T) {
	l, err := Limits{FrameBytesMax: 1000, SendQueueFramesMax: 100, SendQueueBytesMax: 10000, BatchBytesMax: 100}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	q := newSendQueue(l)
	var sent []wire.Envelope
	for i, size := range []int{10, 20, 30, 40, 500, 5, 0, 60, 60, 60} {
		env := wire.Envelope{Kind: testKind, Channel: uint64(i), From: 1, To: 2, Payload: bytes.Repeat([]byte{byte(i)}, size)}
		if q.push(env, wire.EncodedLen(env)) != pushed {
			t.Fatalf("push %d refused", i)
		}
		sent = append(sent, env)
	}
	bs := popAll(q)
	got := decodeBatches(t, bs, l.BatchBytesMax)
	if len(got) != len(sent) {
		t.Fatalf("%d frames out, %d in", len(got), len(sent))
	}
	for i := range got {
		if got[i].Channel != sent[i].Channel || !bytes.Equal(got[i].Payload, sent[i].Payload) {
			t.Errorf("frame %d: %+v, want %+v", i, got[i], sent[i])
		}
	}
	if len(bs) >= len(sent) {
		t.Errorf("%d batches for %d frames: nothing was batched", len(bs), len(sent))
	}
	if f, b, _ := q.gauges(); f != 0 || b != 0 {
		t.Errorf("queue not empty after popping all: %d frames %d bytes", f, b)
	}
}

func TestQueueDropsNewest(t *testing.T) {
	l, _ := Limits{FrameBytesMax: 100, SendQueueFramesMax: 3, SendQueueBytesMax: 1000, BatchBytesMax: 1000}.withDefaults()
	q := newSendQueue(l)
	env := func(i int) wire.Envelope { return wire.Envelope{Channel: uint64(i), From: 1, To: 2} }
	for i := range 5 {
		want := pushed
		if i >= 3 {
			want = pushFull
		}
		if r := q.push(env(i), wire.EncodedLen(env(i))); r != want {
			t.Errorf("push %d: %v, want %v", i, r, want)
		}
	}
	if f, _, d := q.gauges(); f != 3 || d != 2 {
		t.Errorf("%d queued, %d dropped; want 3 and 2", f, d)
	}
	got := decodeBatches(t, popAll(q), l.BatchBytesMax)
	if len(got) != 3 || got[0].Channel != 0 || got[2].Channel != 2 {
		t.Errorf("kept %+v, want the first three", got)
	}
	if q.push(env(9), wire.EncodedLen(env(9))) != pushed {
		t.Error("push refused after the queue drained")
	}
	q.close()
	if q.push(env(10), wire.EncodedLen(env(10))) != pushClosed {
		t.Error("push accepted after close")
	}
	if f, b, _ := q.gauges(); f != 0 || b != 0 {
		t.Errorf("close kept %d frames %d bytes", f, b)
	}
}

func TestQueuePushWait(t *testing.T) {
	l, _ := Limits{FrameBytesMax: 100, SendQueueFramesMax: 1, SendQueueBytesMax: 1000, BatchBytesMax: 1000}.withDefaults()
	q := newSendQueue(l)
	env := wire.Envelope{From: 1, To: 2}
	n := wire.EncodedLen(env)
	q.push(env, n)
	done := make(chan bool)
	go func() { done <- q.pushWait(context.Background(), env, n) }()
	select {
	case <-done:
		t.Fatal("pushWait returned on a full queue")
	case <-time.After(20 * time.Millisecond): // it must still be waiting
	}
	q.pop()
	if !<-done {
		t.Error("pushWait failed after room was made")
	}
	if _, _, d := q.gauges(); d != 0 {
		t.Errorf("pushWait counted %d drops", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- q.pushWait(ctx, env, n) }()
	cancel()
	if <-done {
		t.Error("pushWait succeeded after its context ended on a full queue")
	}
	go func() { done <- q.pushWait(context.Background(), env, n) }()
	q.close()
	if <-done {
		t.Error("pushWait succeeded on a closed queue")
	}
}

// captureTB records errors instead of failing, to test the test helpers.
type captureTB struct {
	testing.TB
	errs []string
}

func (c *captureTB) Helper()                   {}
func (c *captureTB) Error(args ...any)         { c.errs = append(c.errs, fmt.Sprint(args...)) }
func (c *captureTB) Errorf(f string, a ...any) { c.errs = append(c.errs, fmt.Sprintf(f, a...)) }

// TestRecorderCatchesBadDelivery plants each delivery bug the suite claims
// to catch, straight into the recorder, and checks it is reported.
func TestRecorderCatchesBadDelivery(t *testing.T) {
	good := func(seq uint64) wire.Envelope { return msg(1, 2, seq) }
	corrupt := good(2)
	corrupt.Payload = append([]byte(nil), corrupt.Payload...)
	corrupt.Payload[7] ^= 1
	short := good(3)
	short.Payload = short.Payload[:len(short.Payload)-1]
	short.Channel = 3<<32 | uint64(crc32.Checksum(short.Payload, castagnoli)) // checksum right, length wrong
	for _, tc := range []struct {
		name    string
		strict  bool
		deliver func(r *recorder)
		want    string
	}{
		{"gap", true, func(r *recorder) { r.handle(good(0)); r.handle(good(2)) }, "seq 2, want 1"},
		{"reorder", false, func(r *recorder) { r.handle(good(0)); r.handle(good(3)); r.handle(good(2)) }, "reordered or duplicated"},
		{"duplicate", false, func(r *recorder) { r.handle(good(0)); r.handle(good(0)) }, "reordered or duplicated"},
		{"corrupt", false, func(r *recorder) { r.handle(corrupt) }, "checksum mismatch"},
		{"truncated", false, func(r *recorder) { r.handle(short) }, "payload bytes, want"},
		{"misrouted", false, func(r *recorder) { r.handle(msg(1, 3, 0)) }, "got an envelope for 3"},
		{"concurrent", false, func(r *recorder) {
			s := r.sender(1)
			s.busy.Lock() // as if another Handler call for sender 1 were running
			go func() { <-time.After(10 * time.Millisecond); s.busy.Unlock() }()
			r.handle(good(0))
		}, "two Handler calls at once"},
		{"overwritten after delivery", false, func(r *recorder) {
			env := good(97)
			env.Payload = append([]byte(nil), env.Payload...)
			r.handle(env)
			env.Payload[0] ^= 1
		}, "payload changed after delivery"},
	} {
		r := newRecorder(2, tc.strict)
		tc.deliver(r)
		c := &captureTB{TB: t}
		r.check(c)
		if !strings.Contains(strings.Join(c.errs, "\n"), tc.want) {
			t.Errorf("%s: errors %q, want one with %q", tc.name, c.errs, tc.want)
		}
	}
}

// TestLeakCheckCatchesLeak: the leak check sees a transport left open, and
// stops seeing it once closed.
func TestLeakCheckCatchesLeak(t *testing.T) {
	tr, err := NewTCP(testConfig(1, nil), func(wire.Envelope) {})
	if err != nil {
		t.Fatal(err)
	}
	tr.SetPeer(2, "127.0.0.1:1")
	e, err := NewMemNetwork().Endpoint(1, func(wire.Envelope) {})
	if err != nil {
		t.Fatal(err)
	}
	e.SetPeer(2, "")
	if err := waitNoLeaks(50 * time.Millisecond); err == nil {
		t.Error("open transports not reported as leaks")
	}
	tr.Close()
	e.Close()
	checkNoLeaks(t)
}
