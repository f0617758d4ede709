package transport

// Behaviour tests run against both implementations (forEachFabric): what a
// shell may rely on does not depend on which one it was given.

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// TestIntegrity sends 10,000 messages of 0 B to 1 MiB between three members
// in all six directions at once: every one must arrive intact, exactly once,
// in per-pair order, with no concurrent Handler calls per sender, and the
// counters must add up.
func TestIntegrity(t *testing.T) {
	total := 10_000
	if testing.Short() {
		total = 2_000
	}
	forEachFabric(t, Limits{}, func(t *testing.T, f fabric) {
		ids := []peer.ID{1, 2, 3}
		perPair := total / (len(ids) * (len(ids) - 1))
		trs := map[peer.ID]Transport{}
		recs := map[peer.ID]*recorder{}
		for _, id := range ids {
			recs[id] = newRecorder(id, true)
			trs[id] = f.start(t, id, recs[id].handle)
		}
		defer closeAll(t, trs)
		linkAll(f, trs)

		var wg sync.WaitGroup
		for _, from := range ids {
			for _, to := range ids {
				if from == to {
					continue
				}
				wg.Go(func() {
					for seq := range uint64(perPair) {
						sendWait(t, trs[from], msg(from, to, seq))
					}
				})
			}
		}
		wg.Wait()
		for _, to := range ids {
			for _, from := range ids {
				if from != to {
					waitFor(t, 60*time.Second, fmt.Sprintf("%d messages %d->%d", perPair, from, to), func() bool {
						if st := trs[to].Stats(); st.ConnsDropped != 0 {
							t.Fatalf("member %d dropped a connection (see the log)", to)
						}
						return recs[to].count(from) >= perPair
					})
				}
			}
		}
		// A writer counts a batch as sent after its write returns, which
		// may be after the receiver has it: let the counters settle.
		waitFor(t, 10*time.Second, "sent counters", func() bool {
			for _, id := range ids {
				for _, p := range trs[id].Stats().Peers {
					if p.SentFrames < uint64(perPair) {
						return false
					}
				}
			}
			return true
		})
		for _, id := range ids {
			recs[id].check(t)
			st := trs[id].Stats()
			var received uint64
			for _, p := range st.Peers {
				if p.SentFrames != uint64(perPair) || p.DroppedFrames != 0 || p.LostFrames != 0 || p.QueuedFrames != 0 {
					t.Errorf("member %d peer %d: %+v, want %d sent and nothing dropped, lost or queued", id, p.ID, p, perPair)
				}
				received += p.ReceivedFrames
			}
			if received != st.ReceivedFrames || received != uint64(2*perPair) {
				t.Errorf("member %d received %d (per peer sum %d), want %d", id, st.ReceivedFrames, received, 2*perPair)
			}
			for _, p := range st.Peers {
				sent, _ := trs[p.ID].Stats().Peer(id)
				if sent.SentBytes != p.ReceivedBytes || sent.SentFrames != p.ReceivedFrames {
					t.Errorf("%d->%d: sent %d frames %d bytes, received %d frames %d bytes",
						p.ID, id, sent.SentFrames, sent.SentBytes, p.ReceivedFrames, p.ReceivedBytes)
				}
			}
		}
	})
}

// TestDropsCountedOrderKept floods one pair through a small queue without
// pacing: some Sends are refused, and then the counters must match exactly
// (what Send accepted was sent and received, what it refused was counted as
// dropped), and what arrived is in order.
func TestDropsCountedOrderKept(t *testing.T) {
	forEachFabric(t, Limits{SendQueueFramesMax: 64, FrameBytesMax: 4 << 10, BatchBytesMax: 2 << 10}, func(t *testing.T, f fabric) {
		rec := newRecorder(2, false)
		trs := map[peer.ID]Transport{1: f.start(t, 1, func(wire.Envelope) {}), 2: f.start(t, 2, rec.handle)}
		defer closeAll(t, trs)
		linkAll(f, trs)
		sendWait(t, trs[1], makeMsg(1, 2, seqsAbove, 8)) // connection up before the flood
		waitFor(t, 10*time.Second, "first message", func() bool { return rec.count(1) == 1 })

		accepted := uint64(1)
		const attempts = 20_000
		for i := range uint64(attempts) {
			if trs[1].Send(makeMsg(1, 2, seqsAbove+1+i, 100)) {
				accepted++
			}
		}
		waitFor(t, 20*time.Second, "the queue to drain", func() bool {
			p, _ := trs[1].Stats().Peer(2)
			return p.QueuedFrames == 0 && uint64(rec.count(1)) == p.SentFrames
		})
		p, _ := trs[1].Stats().Peer(2)
		if p.SentFrames != accepted || p.DroppedFrames != attempts+1-accepted || p.LostFrames != 0 {
			t.Errorf("accepted %d of %d; stats %+v", accepted, attempts+1, p)
		}
		if accepted == attempts+1 {
			t.Log("no Send was refused: the flood did not fill the queue (fast receiver)")
		}
		rec.check(t)
	})
}

// TestRestart closes member 2 and starts it again on the same address: the
// others reconnect, messages sent after the restart arrive, and the new
// member reaches them too. Messages sent while it was down may be lost, but
// nothing arrives out of order.
func TestRestart(t *testing.T) {
	forEachFabric(t, Limits{}, func(t *testing.T, f fabric) {
		ids := []peer.ID{1, 2, 3}
		trs := map[peer.ID]Transport{}
		recs := map[peer.ID]*recorder{}
		for _, id := range ids {
			recs[id] = newRecorder(id, false)
			trs[id] = f.start(t, id, recs[id].handle)
		}
		defer func() { closeAll(t, trs) }()
		linkAll(f, trs)
		for _, from := range []peer.ID{1, 3} {
			for seq := range uint64(20) {
				sendWait(t, trs[from], msg(from, 2, seq))
			}
			waitFor(t, 10*time.Second, "messages before the restart", func() bool { return recs[2].count(from) == 20 })
		}

		if err := trs[2].Close(); err != nil {
			t.Fatal(err)
		}
		old := recs[2]
		recs[2] = newRecorder(2, false)
		trs[2] = f.start(t, 2, recs[2].handle)
		for _, id := range []peer.ID{1, 3} {
			trs[2].SetPeer(id, f.addr(id))
		}

		// Send one message at a time until one gets through: the first
		// ones may go into a connection the sender has not yet seen die.
		for _, from := range []peer.ID{1, 3} {
			seq := uint64(seqsAbove)
			deadline := time.Now().Add(20 * time.Second)
			for recs[2].count(from) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("nothing from %d reached the restarted member", from)
				}
				trs[from].Send(makeMsg(from, 2, seq, 16))
				seq++
				waitOrTimeout(recs[2], from, 10*time.Millisecond)
			}
			// Now the connection is up: the next 100 must all arrive.
			mark := seq
			for i := range uint64(100) {
				sendWait(t, trs[from], makeMsg(from, 2, mark+i, 64))
			}
			waitFor(t, 10*time.Second, "100 messages after the restart", func() bool {
				last, _ := recs[2].lastSeq(from)
				return last == mark+99
			})
			if p, _ := trs[from].Stats().Peer(2); p.Connects < 2 {
				t.Errorf("member %d: %d connects to 2, want a reconnection", from, p.Connects)
			}
		}
		for _, to := range []peer.ID{1, 3} {
			for i := range uint64(50) {
				sendWait(t, trs[2], makeMsg(2, to, seqsAbove+i, 32))
			}
			waitFor(t, 10*time.Second, "messages from the restarted member", func() bool {
				last, ok := recs[to].lastSeq(2)
				return ok && last == seqsAbove+49
			})
		}
		for _, r := range []*recorder{old, recs[1], recs[2], recs[3]} {
			r.check(t)
		}
	})
}

// waitOrTimeout waits up to d for a message from from at r; it is the pace
// of a retry loop, not a condition wait that could return early.
func waitOrTimeout(r *recorder, from peer.ID, d time.Duration) {
	deadline := time.Now().Add(d)
	for r.count(from) == 0 && time.Now().Before(deadline) {
		<-time.After(time.Millisecond)
	}
}

// TestDownPeerBounded sends 1,000,000 messages to a member that is down:
// the queue stays at its bound (frames for small messages, bytes for larger
// ones), every refusal is counted, and the loop finishes (Send never waits).
func TestDownPeerBounded(t *testing.T) {
	attempts := 1_000_000
	if testing.Short() {
		attempts = 100_000
	}
	l := Limits{FrameBytesMax: 64 << 10, SendQueueFramesMax: 1000, SendQueueBytesMax: 256 << 10, BatchBytesMax: 32 << 10}
	forEachFabric(t, l, func(t *testing.T, f fabric) {
		tr := f.start(t, 1, func(wire.Envelope) {})
		defer tr.Close()
		tr.SetPeer(8, f.downAddr(t)) // bytes bound: 1 KiB messages
		tr.SetPeer(9, f.downAddr(t)) // frames bound: 16 B messages
		small := wire.Envelope{Kind: testKind, Channel: 1 << 40, From: 1, To: 9, Payload: make([]byte, 16)}
		large := wire.Envelope{Kind: testKind, Channel: 1 << 40, From: 1, To: 8, Payload: make([]byte, 1024)}
		smallFrame := frameHeaderBytes + wire.EncodedLen(small)
		largeFrame := frameHeaderBytes + wire.EncodedLen(large)

		start := time.Now()
		var acceptedSmall, acceptedLarge uint64
		for i := range attempts {
			small.Channel = 1<<40 | uint64(i) // same varint length for every i: same frame size
			if tr.Send(small) {
				acceptedSmall++
			}
			if i%10 == 0 {
				large.Channel = 1<<40 | uint64(i)
				if tr.Send(large) {
					acceptedLarge++
				}
			}
			if i%50_000 == 0 {
				st := tr.Stats()
				p8, _ := st.Peer(8)
				p9, _ := st.Peer(9)
				if p9.QueuedFrames > l.SendQueueFramesMax || p8.QueuedBytes > l.SendQueueBytesMax {
					t.Fatalf("queue over its bound after %d sends: %+v %+v", i, p8, p9)
				}
			}
		}
		elapsed := time.Since(start)
		st := tr.Stats()
		p8, _ := st.Peer(8)
		p9, _ := st.Peer(9)
		if acceptedSmall != uint64(l.SendQueueFramesMax) || p9.QueuedFrames != l.SendQueueFramesMax ||
			p9.QueuedBytes != l.SendQueueFramesMax*smallFrame || p9.DroppedFrames != uint64(attempts)-acceptedSmall {
			t.Errorf("small: accepted %d of %d, stats %+v", acceptedSmall, attempts, p9)
		}
		wantLarge := l.SendQueueBytesMax / largeFrame
		if acceptedLarge != uint64(wantLarge) || p8.QueuedBytes != wantLarge*largeFrame ||
			p8.DroppedFrames != uint64(attempts/10)-acceptedLarge {
			t.Errorf("large: accepted %d of %d, want %d; stats %+v", acceptedLarge, attempts/10, wantLarge, p8)
		}
		if p8.Connected || p9.Connected || p8.SentFrames != 0 {
			t.Errorf("a down peer looks connected: %+v %+v", p8, p9)
		}
		t.Logf("%d Sends to a down peer in %v (%v each)", attempts+attempts/10, elapsed, elapsed/time.Duration(attempts+attempts/10))
	})
}

// TestSendRefusals checks each reason Send refuses, and its counter.
func TestSendRefusals(t *testing.T) {
	forEachFabric(t, Limits{FrameBytesMax: 1024}, func(t *testing.T, f fabric) {
		tr := f.start(t, 1, func(wire.Envelope) {})
		tr.SetPeer(2, f.downAddr(t))
		if tr.Send(wire.Envelope{From: 1, To: 3}) {
			t.Error("Send to an unknown member accepted")
		}
		maxPayload := 1024 - wire.EncodedLen(wire.Envelope{From: 1, To: 2, Payload: make([]byte, 1000)}) + 1000
		if !tr.Send(wire.Envelope{From: 1, To: 2, Payload: make([]byte, maxPayload)}) {
			t.Errorf("Send of a %d-byte payload (frame exactly FrameBytesMax) refused", maxPayload)
		}
		if tr.Send(wire.Envelope{From: 1, To: 2, Payload: make([]byte, maxPayload+1)}) {
			t.Error("Send over FrameBytesMax accepted")
		}
		tr.RemovePeer(2)
		if tr.Send(wire.Envelope{From: 1, To: 2}) {
			t.Error("Send to a removed peer accepted")
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if tr.Send(wire.Envelope{From: 1, To: 2}) {
			t.Error("Send after Close accepted")
		}
		st := tr.Stats()
		if st.RefusedUnknown != 2 || st.RefusedTooLarge != 1 || st.RefusedClosed != 1 {
			t.Errorf("refusals counted %+v, want 2 unknown, 1 too large, 1 closed", st)
		}
	})
}

// TestSendFromAnotherMemberPanics: a wrong From is a bug in our own caller.
func TestSendFromAnotherMemberPanics(t *testing.T) {
	forEachFabric(t, Limits{}, func(t *testing.T, f fabric) {
		tr := f.start(t, 1, func(wire.Envelope) {})
		defer tr.Close()
		tr.SetPeer(2, f.downAddr(t))
		defer func() {
			var v invariant.Violation
			if r := recover(); r == nil || !errors.As(r.(error), &v) {
				t.Errorf("recovered %v, want an invariant.Violation", r)
			}
		}()
		tr.Send(wire.Envelope{From: 3, To: 2})
	})
}

// TestStatsOrderAndAddress: peers come out in ID order whatever the order
// they were added in, and SetPeer on a known peer changes its address.
func TestStatsOrderAndAddress(t *testing.T) {
	forEachFabric(t, Limits{}, func(t *testing.T, f fabric) {
		tr := f.start(t, 1, func(wire.Envelope) {})
		defer tr.Close()
		for _, id := range []peer.ID{9, 3, 7, 5} {
			tr.SetPeer(id, f.downAddr(t))
		}
		tr.SetPeer(7, "elsewhere:1")
		tr.RemovePeer(5)
		st := tr.Stats()
		var got []peer.ID
		for _, p := range st.Peers {
			got = append(got, p.ID)
		}
		if fmt.Sprint(got) != "[3 7 9]" {
			t.Errorf("peers %v, want [3 7 9]", got)
		}
		if p, _ := st.Peer(7); p.Addr != "elsewhere:1" {
			t.Errorf("peer 7 address %q after SetPeer", p.Addr)
		}
	})
}

// TestCloseStopsEverything closes members with traffic in flight in every
// direction and a peer that is down: Close returns, and no goroutine of this
// package survives (forEachFabric checks, after the body).
func TestCloseStopsEverything(t *testing.T) {
	forEachFabric(t, Limits{}, func(t *testing.T, f fabric) {
		h := func(wire.Envelope) {}
		trs := map[peer.ID]Transport{1: f.start(t, 1, h), 2: f.start(t, 2, h), 3: f.start(t, 3, h)}
		linkAll(f, trs)
		trs[1].SetPeer(9, f.downAddr(t))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for from, tr := range trs {
			wg.Go(func() {
				for i := uint64(0); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if to := peer.ID(1 + i%3); to != from {
						tr.Send(makeMsg(from, to, seqsAbove+i, int(i%2000)))
					}
					tr.Send(makeMsg(from, 9, i, 10))
				}
			})
		}
		waitFor(t, 10*time.Second, "traffic", func() bool {
			return trs[2].Stats().ReceivedFrames > 100
		})
		// Close member 2 while the others keep sending to it, then the rest.
		if err := trs[2].Close(); err != nil {
			t.Error(err)
		}
		close(stop)
		wg.Wait()
		closeAll(t, trs)
	})
}

// TestNoHandlerAfterClose: once Close returns, the Handler is never called
// again, even though peers keep sending.
func TestNoHandlerAfterClose(t *testing.T) {
	forEachFabric(t, Limits{}, func(t *testing.T, f fabric) {
		var mu sync.Mutex
		closed, late := false, 0
		h2 := func(wire.Envelope) {
			mu.Lock()
			if closed {
				late++
			}
			mu.Unlock()
		}
		trs := map[peer.ID]Transport{1: f.start(t, 1, func(wire.Envelope) {}), 2: f.start(t, 2, h2)}
		linkAll(f, trs)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				trs[1].Send(makeMsg(1, 2, seqsAbove+i, 64))
			}
		})
		waitFor(t, 10*time.Second, "traffic", func() bool { return trs[2].Stats().ReceivedFrames > 100 })
		if err := trs[2].Close(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		closed = true
		mu.Unlock()
		// Give senders time to push more at the closed member.
		before := trs[1].Stats()
		waitFor(t, 10*time.Second, "more sends after close", func() bool {
			p, _ := trs[1].Stats().Peer(2)
			p0, _ := before.Peer(2)
			return p.DroppedFrames+p.LostFrames+p.SentFrames > p0.DroppedFrames+p0.LostFrames+p0.SentFrames+1000
		})
		close(stop)
		wg.Wait()
		closeAll(t, trs)
		if late != 0 {
			t.Errorf("%d Handler calls after Close returned", late)
		}
	})
}
