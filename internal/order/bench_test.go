package order

import (
	"errors"
	"fmt"
	"testing"

	"github.com/chorus-project/chorus/internal/peer"
)

// BenchmarkMulticast measures the core alone: one op is one multicast of a
// 64-byte payload, sent in turn by every member and delivered at all n
// members, with messages handed from Ready straight to Step (no codec, no
// loss) and every member ticking once per op (stability gossip every
// StabilityTicks ops, which keeps the windows open). It reports
// deliveries/s, summed over members.
func BenchmarkMulticast(b *testing.B) {
	for _, o := range []Order{FIFO, Causal, Total, Safe} {
		for _, n := range []int{3, 7} {
			b.Run(fmt.Sprintf("%s/n=%d", o, n), func(b *testing.B) {
				benchMulticast(b, o, n)
			})
		}
	}
}

func benchMulticast(b *testing.B, o Order, n int) {
	cfg := DefaultConfig()
	ids := make([]peer.ID, n)
	for i := range ids {
		ids[i] = peer.ID(i + 1)
	}
	insts := make([]*Instance, n)
	for i, id := range ids {
		e, err := New(cfg, 1, ids, id)
		if err != nil {
			b.Fatal(err)
		}
		insts[i] = e
	}
	var queue []Message
	deliveries := 0
	pump := func() {
		for {
			for _, e := range insts {
				rd := e.Ready()
				queue = append(queue, rd.Messages...)
				deliveries += len(rd.Deliveries)
				e.Advance(rd)
			}
			if len(queue) == 0 {
				return
			}
			for _, m := range queue {
				if err := insts[m.To-1].Step(m); err != nil {
					b.Fatal(err)
				}
			}
			queue = queue[:0]
		}
	}
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for {
			_, err := insts[i%n].Send(payload, o)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrWindowFull) {
				b.Fatal(err)
			}
			for _, e := range insts {
				e.Tick()
			}
			pump()
		}
		pump()
		for _, e := range insts {
			e.Tick()
		}
	}
	pump()
	b.ReportMetric(float64(deliveries)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkCodec encodes and decodes a data message with a 1 KiB payload.
func BenchmarkCodec(b *testing.B) {
	m := Message{Type: MsgData, View: 3, Sender: 2, Seq: 1000, StableSeq: 900, Order: FIFO, Payload: make([]byte, 1024)}
	lim := DefaultConfig().Limits(5)
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Payload)))
	for b.Loop() {
		buf = AppendMessage(buf[:0], m)
		if _, err := DecodeMessage(buf, lim); err != nil {
			b.Fatal(err)
		}
	}
}
