package smr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
)

// TestSessionsEvictAndSnapshot checks the session table: the client whose
// last applied command is oldest is evicted past SessionsMax (its retry is applied again: the
// documented window), and a snapshot round trip keeps the table and its order,
// so a restored member answers retries as the original does.
func TestSessionsEvictAndSnapshot(t *testing.T) {
	sm := &recorder{}
	a := newApplier(sm, 2, 1, nil, peer.Set{})
	slot := uint64(0)
	apply := func(a *applier, id RequestID, cmd string) outcome {
		slot++
		w := &waiter{typ: paxos.EntryNormal, data: encodeUserCommand(id, []byte(cmd)), ch: make(chan outcome, 1)}
		a.wait(slot, w)
		a.Apply(paxos.Entry{Slot: slot, Type: paxos.EntryNormal, Data: w.data})
		return <-w.ch
	}
	c1, c2, c3 := RequestID{1, 1}, RequestID{2, 1}, RequestID{3, 1}
	apply(a, c1, "a")
	apply(a, c2, "b")
	if out := apply(a, c1, "a"); string(out.result) != "1" || out.err != nil {
		t.Fatalf("retry of c1: %+v, want the first result", out)
	}
	// The retry did not apply anything, so c1's last applied command is
	// still the oldest: c3 evicts c1.
	apply(a, c3, "c")
	var snap bytes.Buffer
	if err := a.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	b := newApplier(&recorder{}, 2, 1, nil, peer.Set{})
	if err := b.Restore(paxos.SnapshotMeta{Slot: slot}, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string]*applier{"original": a, "restored": b} {
		before := len(x.sm.(*recorder).snapshotLog())
		if out := apply(x, c3, "c"); out.err != nil || string(out.result) != "3" {
			t.Errorf("%s: retry of c3: %+v, want result 3", name, out)
		}
		if out := apply(x, RequestID{2, 0}, "old"); !errors.Is(out.err, ErrStaleRequest) {
			t.Errorf("%s: stale request of c2: %+v", name, out)
		}
		apply(x, c1, "a") // evicted: applied again
		if got := len(x.sm.(*recorder).snapshotLog()) - before; got != 1 {
			t.Errorf("%s: %d commands applied, want 1 (the evicted client's retry)", name, got)
		}
	}
}

// TestWaiterLost checks that a waiter whose slot is applied with another
// entry, or skipped by a snapshot, gets ErrProposalLost.
func TestWaiterLost(t *testing.T) {
	a := newApplier(&recorder{}, 4, 1, nil, peer.Set{})
	w := &waiter{typ: paxos.EntryNormal, data: encodeUserCommand(RequestID{1, 1}, []byte("x")), ch: make(chan outcome, 1)}
	a.wait(1, w)
	a.Apply(paxos.Entry{Slot: 1, Type: paxos.EntryNoop})
	if out := <-w.ch; !errors.Is(out.err, ErrProposalLost) {
		t.Fatalf("overwritten slot: %+v", out)
	}
	w2 := &waiter{typ: paxos.EntryNormal, data: encodeUserCommand(RequestID{1, 2}, []byte("y")), ch: make(chan outcome, 1)}
	a.wait(5, w2)
	var snap bytes.Buffer
	if err := newApplier(&recorder{}, 4, 1, nil, peer.Set{}).Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	if err := a.Restore(paxos.SnapshotMeta{Slot: 9}, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if out := <-w2.ch; !errors.Is(out.err, ErrProposalLost) {
		t.Fatalf("slot skipped by a snapshot: %+v", out)
	}
}

// TestNotLeaderHint checks that a follower refuses proposals and reads with
// the leader's id and address.
func TestNotLeaderHint(t *testing.T) {
	c := newCluster(t, 3, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.propose(ctx, NewRequestID(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	lead, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := c.member(c.next(lead))
	want := fmt.Sprintf("leader is %d at %s", lead, c.peers[lead-1].Addr)
	_, perr := f.Propose(ctx, []byte("y"))
	_, rerr := f.Read(ctx, nil)
	for _, err := range []error{perr, rerr} {
		var nl *NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) || nl.Leader != lead || nl.Addr != c.peers[lead-1].Addr {
			t.Fatalf("follower: %v, want %q", err, want)
		}
	}
}

// FuzzApplierRestore feeds arbitrary snapshot bytes to the applier: it
// returns an error or restores, never panics.
func FuzzApplierRestore(f *testing.F) {
	a := newApplier(&recorder{}, 4, 1, []Peer{{1, "127.0.0.1:1"}}, peer.MustSet(1))
	a.Apply(paxos.Entry{Slot: 1, Type: paxos.EntryNormal, Data: encodeUserCommand(RequestID{7, 1}, []byte("x"))})
	var snap bytes.Buffer
	if err := a.Snapshot(&snap); err != nil {
		f.Fatal(err)
	}
	f.Add(snap.Bytes())
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		b := newApplier(&recorder{}, 4, 1, nil, peer.Set{})
		_ = b.Restore(paxos.SnapshotMeta{Slot: 1}, bytes.NewReader(p))
	})
}

// FuzzApplyCommand feeds arbitrary entry data to the applier: a corrupt
// command is skipped the same way on every member, never a panic.
func FuzzApplyCommand(f *testing.F) {
	f.Add(encodeUserCommand(RequestID{1, 1}, []byte("x")))
	f.Add(encodeAddressCommand(4, "127.0.0.1:4"))
	f.Add([]byte{3})
	f.Fuzz(func(t *testing.T, p []byte) {
		a := newApplier(&recorder{}, 4, 1, nil, peer.Set{})
		a.Apply(paxos.Entry{Slot: 1, Type: paxos.EntryNormal, Data: p})
	})
}
