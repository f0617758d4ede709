package vsync

import (
	"fmt"
	"testing"

	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
)

// BenchmarkViewChange measures two view changes per operation in a group of
// n members over the test harness (every message encoded and decoded): a
// process joins (consensus round, flush, install, state transfer of the
// application's state), then leaves again (round, flush, install). The
// group carries 32 delivered messages of state. msgs/op counts every
// message sent, order and liveness included.
func BenchmarkViewChange(b *testing.B) {
	for _, n := range []int{3, 5, 9} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			h, err := newHarness(testConfig(), n, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range 32 {
				if err := h.send(peer.ID(1+i%n), order.Total, fmt.Sprintf("state-%d", i)); err != nil {
					b.Fatal(err)
				}
				// Tick so that stability gossip frees the send window.
				for range 3 {
					for _, o := range h.live() {
						h.tick(o)
					}
					h.drain()
				}
			}
			h.out = nil // no transcript
			h.hist.sends = map[msgKey]string{}
			id := peer.ID(n + 1)
			sent := 0
			b.ResetTimer()
			for range b.N {
				before := total(h.stats)
				if err := h.join(id, []peer.ID{1}); err != nil {
					b.Fatal(err)
				}
				if _, ok := h.stabilize(1000); !ok {
					b.Fatal("join did not settle")
				}
				hn := h.nodes[id]
				if err := hn.n.Leave(); err != nil {
					b.Fatal(err)
				}
				h.collect(hn)
				if _, ok := h.stabilize(1000); !ok {
					b.Fatal("leave did not settle")
				}
				sent += total(h.stats) - before
				// Forget the departed process so the next join is fresh
				// and the history does not grow.
				delete(h.nodes, id)
				h.hist.procs = h.hist.procs[:n]
			}
			b.ReportMetric(float64(sent)/float64(b.N), "msgs/op")
		})
	}
}

// BenchmarkMulticast measures one total-order multicast per operation in a
// settled group of n members, from Send to delivery everywhere, through
// vsync (wrapping order) and the codec.
func BenchmarkMulticast(b *testing.B) {
	for _, n := range []int{3, 9} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			h, err := newHarness(testConfig(), n, nil)
			if err != nil {
				b.Fatal(err)
			}
			h.out = nil
			payload := make([]byte, 64)
			b.ResetTimer()
			for i := range b.N {
				hn := h.nodes[peer.ID(1+i%n)]
				if _, err := hn.n.Send(payload, order.Total); err != nil {
					// The window is full: let stability catch up.
					for _, o := range h.live() {
						h.tick(o)
					}
					h.drain()
					continue
				}
				h.collect(hn)
				h.drain()
				if i%4 == 3 {
					for _, o := range h.live() {
						h.tick(o)
					}
					h.drain()
				}
				for _, o := range h.live() {
					o.state = o.state[:0]
				}
			}
		})
	}
}

func total(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}
