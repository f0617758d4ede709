package order

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/peer"
)

// Pause starts a flush on this member: Send returns ErrPaused from now on
// and deliveries are held back until FinishFlush. Receiving, NAKs,
// retransmission and stability go on, so the flush can complete. Holding
// deliveries back is what makes Digest an upper bound of everything this
// member will have delivered outside FinishFlush.
func (e *Instance) Pause() { e.paused = true }

// Paused reports whether Pause was called.
func (e *Instance) Paused() bool { return e.paused }

// Finished reports whether FinishFlush completed.
func (e *Instance) Finished() bool { return e.finished }

// Digest reports what this member holds (see Digest). Taken after Pause,
// it covers everything the member delivered.
func (e *Instance) Digest() Digest {
	d := Digest{Received: make([]uint64, e.n()), Ordered: e.contigGlobal}
	for r, s := range e.senders {
		d.Received[r] = s.contig
	}
	return d
}

// checkCut refuses a cut that cannot come from this view's survivors: wrong
// length, below what this member delivered (every survivor's digest covers
// its deliveries, so the maximum does too), or further above it than any
// sender's window or the sequencer's cap allows.
func (e *Instance) checkCut(cut Digest) error {
	if len(cut.Received) != e.n() {
		return fmt.Errorf("%w: %d entries for %d members", ErrBadCut, len(cut.Received), e.n())
	}
	for r, d := range e.delivered {
		if c := cut.Received[r]; c < d || c-d > e.window() {
			return fmt.Errorf("%w: rank %d cut at %d, delivered %d, window %d", ErrBadCut, r, c, d, e.window())
		}
	}
	if c := cut.Ordered; c < e.deliveredG || c-e.deliveredG > e.orderWindow() {
		return fmt.Errorf("%w: global cut %d, delivered %d, window %d", ErrBadCut, c, e.deliveredG, e.orderWindow())
	}
	return nil
}

// Missing reports the messages and ordering entries of cut that this member
// does not hold. vsync fetches them from a survivor whose digest shows it
// holds them (Message, OrderBatches) and hands them over with Add.
func (e *Instance) Missing(cut Digest) (Missing, error) {
	if err := e.checkCut(cut); err != nil {
		return Missing{}, err
	}
	var miss Missing
	for r, s := range e.senders {
		for seq := s.contig + 1; seq <= cut.Received[r]; seq++ {
			if !e.holds(r, seq) {
				miss.Data = append(miss.Data, Ref{Sender: e.members[r], Seq: seq})
			}
		}
	}
	for g := e.contigGlobal + 1; g <= cut.Ordered; g++ {
		if _, ok := e.orders[g]; ok {
			continue
		}
		if n := len(miss.Orders); n > 0 && miss.Orders[n-1].Last == g-1 {
			miss.Orders[n-1].Last = g
		} else {
			miss.Orders = append(miss.Orders, Range{First: g, Last: g})
		}
	}
	return miss, nil
}

// Message returns the data message sender.seq if this member holds it, for
// forwarding to a survivor that lacks it. From and To are unset.
func (e *Instance) Message(sender peer.ID, seq uint64) (Message, bool) {
	r, ok := e.rankOf[sender]
	if !ok {
		return Message{}, false
	}
	m, ok := e.senders[r].held[seq]
	return m, ok
}

// OrderBatches returns the ordering entries this member holds in rg, as
// MsgOrder messages (From and To unset) for forwarding.
func (e *Instance) OrderBatches(rg Range) []Message { return e.orderBatches(rg) }

// Add accepts a data message or an ordering batch forwarded during a flush
// (by vsync, from any survivor). It validates like Step.
func (e *Instance) Add(m Message) error {
	if m.View != e.view {
		return fmt.Errorf("%w: view %d, this is view %d", ErrWrongView, m.View, e.view)
	}
	if e.finished {
		return ErrFinished
	}
	var err error
	switch m.Type {
	case MsgData:
		err = e.stepData(m)
	case MsgOrder:
		err = e.stepOrder(m)
	default:
		err = fmt.Errorf("%w: cannot add a %s message", ErrMalformed, m.Type)
	}
	e.progress()
	return err
}

// FinishFlush ends the view on this member: it delivers every message of
// cut that is not delivered yet, in an order every survivor computes alike,
// and then nothing more. It returns ErrCutNotHeld (nothing delivered) while
// Missing(cut) is not empty.
//
// The order: first the normal rules, with the sequencer's order up to
// cut.Ordered (skipping globals whose message is outside the cut) and with
// safe messages no longer waiting for stability (every survivor holds the
// cut); then the Total and Safe messages left without a global, one at a
// time, smallest (sender rank, seq) first among those that are next in
// their sender's FIFO order, each followed by whatever it unblocks. FIFO
// and causal messages keep their rules throughout. Every survivor starts
// from a subset of the same fixed point (what it delivered before is in the
// cut and closed under the rules), so all reach the same set and the same
// total order.
//
// A causal message whose dependency is outside the cut (it died with its
// only holders) cannot be delivered without breaking causal order; it and
// its sender's later messages are returned, undelivered, in rank and seq
// order. Every survivor returns the same list.
func (e *Instance) FinishFlush(cut Digest) ([]Ref, error) {
	if e.finished {
		return nil, ErrFinished
	}
	miss, err := e.Missing(cut)
	if err != nil {
		return nil, err
	}
	if !miss.Empty() {
		return nil, fmt.Errorf("%w: %d messages and %d order ranges missing", ErrCutNotHeld, len(miss.Data), len(miss.Orders))
	}
	e.paused, e.flushing = true, true
	e.cut = Digest{Received: append([]uint64(nil), cut.Received...), Ordered: cut.Ordered}
	e.pending = nil
	// Ordering entries above the cut are forgotten: their messages join
	// the unordered remainder. The deletions commute, so the map's
	// iteration order cannot leak.
	for g, k := range e.orders {
		if g > cut.Ordered {
			delete(e.orders, g)
			delete(e.orderOf, k)
		}
	}
	e.progress()
	for !e.plant.flushSkipRemainder {
		r := e.nextUnordered()
		if r < 0 {
			break
		}
		e.deliver(r, e.senders[r].held[e.delivered[r]+1], 0)
		e.progress()
	}
	var stuck []Ref
	for r := range e.senders {
		for seq := e.delivered[r] + 1; seq <= cut.Received[r]; seq++ {
			stuck = append(stuck, Ref{Sender: e.members[r], Seq: seq})
		}
	}
	e.flushing, e.finished = false, true
	return stuck, nil
}

// nextUnordered returns the smallest rank whose next message is in the cut,
// Total or Safe, and has no global, or -1.
func (e *Instance) nextUnordered() int {
	for r, s := range e.senders {
		seq := e.delivered[r] + 1
		m, ok := s.held[seq]
		if !ok || seq > e.cut.Received[r] || !m.Order.sequenced() {
			continue
		}
		if _, ordered := e.orderOf[ref{r, seq}]; !ordered {
			return r
		}
	}
	return -1
}
