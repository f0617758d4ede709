package transport

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// memTrio starts members 1, 2 and 3 on a fresh network, linked, with
// recorders that allow gaps.
func memTrio(t *testing.T, l Limits) (*MemNetwork, map[peer.ID]*MemEndpoint, map[peer.ID]*recorder) {
	t.Helper()
	n, err := NewMemNetworkLimits(l)
	if err != nil {
		t.Fatal(err)
	}
	eps := map[peer.ID]*MemEndpoint{}
	recs := map[peer.ID]*recorder{}
	for _, id := range []peer.ID{1, 2, 3} {
		recs[id] = newRecorder(id, false)
		if eps[id], err = n.Endpoint(id, recs[id].handle); err != nil {
			t.Fatal(err)
		}
	}
	for a, e := range eps {
		for b := range eps {
			if a != b {
				e.SetPeer(b, "")
			}
		}
	}
	return n, eps, recs
}

func closeEndpoints(eps map[peer.ID]*MemEndpoint) {
	for _, e := range eps {
		e.Close()
	}
}

// TestMemPartitionAndIsolate runs inside a synctest bubble: after
// synctest.Wait every link goroutine is idle, so "everything sent has been
// delivered or lost" is a fact to assert, not a timeout to wait out. The
// bubble also fails the test if any goroutine outlives the endpoints.
func TestMemPartitionAndIsolate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, eps, recs := memTrio(t, Limits{})
		defer closeEndpoints(eps)
		seq := uint64(seqsAbove)
		send := func(from, to peer.ID) {
			seq++
			if !eps[from].Send(makeMsg(from, to, seq, 16)) {
				t.Fatalf("Send %d->%d refused", from, to)
			}
		}
		count := func(from, to peer.ID) int { return recs[to].count(from) }
		lost := func(from, to peer.ID) uint64 {
			p, _ := eps[from].Stats().Peer(to)
			return p.LostFrames
		}

		n.Partition(1, 2)
		send(1, 2)
		send(2, 1)
		send(1, 3)
		synctest.Wait()
		if count(1, 2) != 0 || count(2, 1) != 0 || lost(1, 2) != 1 || lost(2, 1) != 1 {
			t.Errorf("partition 1|2 let frames through: %d %d, lost %d %d", count(1, 2), count(2, 1), lost(1, 2), lost(2, 1))
		}
		if count(1, 3) != 1 {
			t.Error("partition 1|2 blocked 1->3")
		}
		if p, _ := eps[1].Stats().Peer(2); p.Connected {
			t.Error("a partitioned peer reported connected")
		}

		n.Heal(2, 1) // either order names the pair
		send(1, 2)
		synctest.Wait()
		if count(1, 2) != 1 {
			t.Error("Heal did not restore 1->2")
		}

		n.Isolate(3)
		send(1, 3)
		send(3, 2)
		send(1, 2)
		synctest.Wait()
		if count(1, 3) != 1 || count(3, 2) != 0 || count(1, 2) != 2 {
			t.Errorf("isolation of 3: 1->3 %d, 3->2 %d, 1->2 %d", count(1, 3), count(3, 2), count(1, 2))
		}
		n.Restore(3)
		send(3, 2)
		n.Partition(1, 3)
		n.Isolate(2)
		n.HealAll()
		send(1, 3)
		send(1, 2)
		synctest.Wait()
		if count(3, 2) != 1 || count(1, 3) != 2 || count(1, 2) != 3 {
			t.Errorf("after Restore and HealAll: 3->2 %d, 1->3 %d, 1->2 %d", count(3, 2), count(1, 3), count(1, 2))
		}
		for _, r := range recs {
			r.check(t)
		}
	})
}

// TestMemDownPeerQueuesThenDelivers: frames for a member with no endpoint
// wait in the queue (up to its bound) and are delivered, in order, when it
// starts; a virtual hour passing changes nothing (no timer drops them).
func TestMemDownPeerQueuesThenDelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, err := NewMemNetworkLimits(Limits{SendQueueFramesMax: 10})
		if err != nil {
			t.Fatal(err)
		}
		e1, _ := n.Endpoint(1, func(wire.Envelope) {})
		defer e1.Close()
		e1.SetPeer(2, "")
		accepted := 0
		for i := range uint64(15) {
			if e1.Send(makeMsg(1, 2, seqsAbove+i, 8)) {
				accepted++
			}
		}
		time.Sleep(time.Hour) // virtual time: the bubble's clock
		synctest.Wait()
		p, _ := e1.Stats().Peer(2)
		if accepted != 10 || p.QueuedFrames != 10 || p.DroppedFrames != 5 || p.Connected || p.Connects != 0 {
			t.Fatalf("accepted %d; %+v", accepted, p)
		}
		rec := newRecorder(2, true)
		rec.senders[1] = &senderState{next: seqsAbove}
		e2, err := n.Endpoint(2, rec.handle)
		if err != nil {
			t.Fatal(err)
		}
		defer e2.Close()
		synctest.Wait()
		if rec.count(1) != 10 {
			t.Errorf("%d of 10 queued frames delivered when the member started", rec.count(1))
		}
		rec.check(t)
		if p, _ := e1.Stats().Peer(2); p.Connects != 1 || p.SentFrames != 10 || !p.Connected {
			t.Errorf("%+v", p)
		}
	})
}

// TestMemRestartDeliversToNewLife: a closed endpoint's ID can be started
// again, and links find the new one (Connects counts lives).
func TestMemRestartDeliversToNewLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, eps, recs := memTrio(t, Limits{})
		defer closeEndpoints(eps)
		eps[1].Send(makeMsg(1, 2, seqsAbove, 8))
		synctest.Wait()
		if _, err := n.Endpoint(2, recs[2].handle); err == nil {
			t.Fatal("second open endpoint for member 2 allowed")
		}
		eps[2].Close()
		recs[2] = newRecorder(2, false)
		var err error
		if eps[2], err = n.Endpoint(2, recs[2].handle); err != nil {
			t.Fatal(err)
		}
		eps[1].Send(makeMsg(1, 2, seqsAbove+1, 8))
		synctest.Wait()
		if recs[2].count(1) != 1 {
			t.Error("nothing delivered to the restarted member")
		}
		if p, _ := eps[1].Stats().Peer(2); p.Connects != 2 {
			t.Errorf("Connects %d, want 2", p.Connects)
		}
	})
}

// TestMemCloseRefusesDeliveries: once Close has begun, no new Handler call
// starts, even for frames of a batch already being delivered. Close waits
// for the call in progress. (The 100 frames are queued while member 2 does
// not exist yet, so they form one batch, taken whole when it appears.)
func TestMemCloseRefusesDeliveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewMemNetwork()
		e1, _ := n.Endpoint(1, func(wire.Envelope) {})
		defer e1.Close()
		e1.SetPeer(2, "")
		for i := range uint64(100) {
			e1.Send(makeMsg(1, 2, seqsAbove+i, 8))
		}
		gate := make(chan struct{})
		calls := 0
		e2, _ := n.Endpoint(2, func(wire.Envelope) {
			calls++
			if calls == 1 {
				<-gate
			}
		})
		synctest.Wait() // the link is blocked in the first Handler call
		closed := make(chan struct{})
		go func() {
			e2.Close()
			close(closed)
		}()
		synctest.Wait() // Close is waiting for that call
		select {
		case <-closed:
			t.Fatal("Close returned while a Handler call was running")
		default:
		}
		close(gate)
		<-closed
		synctest.Wait()
		if calls != 1 {
			t.Errorf("%d Handler calls, want 1: deliveries started after Close began", calls)
		}
		if p, _ := e1.Stats().Peer(2); p.SentFrames != 1 || p.LostFrames != 99 {
			t.Errorf("%+v, want 1 sent and 99 lost", p)
		}
	})
}

func TestMemEndpointErrors(t *testing.T) {
	n := NewMemNetwork()
	h := func(wire.Envelope) {}
	for _, tc := range []struct {
		id peer.ID
		h  Handler
	}{{0, h}, {1, nil}} {
		if _, err := n.Endpoint(tc.id, tc.h); !errors.Is(err, ErrConfig) {
			t.Errorf("Endpoint(%d, handler %v): %v", tc.id, tc.h != nil, err)
		}
	}
	e, err := n.Endpoint(1, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Endpoint(1, h); !errors.Is(err, ErrConfig) {
		t.Errorf("duplicate endpoint: %v", err)
	}
	e.Close()
	e2, err := n.Endpoint(1, h)
	if err != nil {
		t.Errorf("restart after Close: %v", err)
	} else {
		e2.Close()
	}
}
