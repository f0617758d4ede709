package order

import (
	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/vclock"
)

// computeStable recomputes the stability bounds: the element-wise minimum
// of every member's latest report, this member's own state standing in for
// its report. Reports and own state only grow, so the bounds only grow;
// the max with the previous bound makes that explicit.
func (e *Instance) computeStable() {
	for r := range e.senders {
		s := &e.senders[r]
		minR, minD := s.contig, e.delivered[r]
		for k := range e.reports {
			if k != e.self {
				minR = min(minR, e.reports[k].received[r])
				minD = min(minD, e.reports[k].delivered[r])
			}
		}
		s.stableR = max(s.stableR, minR)
		s.stableD = max(s.stableD, s.stableHint, minD)
	}
	minO := e.contigGlobal
	for k := range e.reports {
		if k != e.self {
			minO = min(minO, e.reports[k].ordered)
		}
	}
	e.stableGlobal = max(e.stableGlobal, minO)
}

// deliverAll delivers everything deliverable, scanning senders in rank
// order until nothing moves, and reports whether anything was delivered.
func (e *Instance) deliverAll() bool {
	if e.paused && !e.flushing {
		return false
	}
	progressed := false
	for {
		e.skipLostGlobals()
		moved := false
		for r := range e.senders {
			for e.deliverNext(r) {
				moved = true
			}
		}
		if !moved {
			return progressed
		}
		progressed = true
	}
}

// deliverNext delivers the next message of rank r if every rule allows it:
// FIFO always (the next seq), causal readiness for Causal, the next global
// for Total and Safe, and for Safe that every member holds the message and
// its ordering entry (waived inside FinishFlush, where every survivor holds
// the whole cut).
func (e *Instance) deliverNext(r int) bool {
	s := &e.senders[r]
	seq := e.delivered[r] + 1
	m, ok := s.held[seq]
	if !ok || (e.flushing && seq > e.cut.Received[r]) {
		return false
	}
	var global uint64
	switch m.Order {
	case Causal:
		if !e.plant.skipCausalWait && !vclock.CausallyReady(m.Clock, r, e.delivered) {
			return false
		}
	case Total, Safe:
		g, ok := e.orderOf[ref{r, seq}]
		if !ok || g != e.deliveredG+1 {
			return false
		}
		// Safe waits until every member holds both the message and its
		// ordering entry. The message alone is not enough: if the
		// sequencer then left the view (crashed, or excluded while alive)
		// and no survivor held the entry, the flush would order the
		// message by rank, differently from what was delivered here.
		if m.Order == Safe && !e.flushing && !e.plant.skipSafeWait && (s.stableR < seq || e.stableGlobal < g) {
			return false
		}
		global = g
	}
	e.deliver(r, m, global)
	return true
}

// skipLostGlobals, inside FinishFlush, passes over globals whose message is
// outside the cut: the sequencer ordered it, but it died with members that
// are not in the next view, so no survivor will ever deliver it.
func (e *Instance) skipLostGlobals() {
	for e.flushing {
		x, ok := e.orders[e.deliveredG+1]
		if !ok || x.seq <= e.cut.Received[x.rank] {
			return
		}
		e.deliveredG++
	}
}

// deliver hands m, the next message of rank r, to the application.
func (e *Instance) deliver(r int, m Message, global uint64) {
	s := &e.senders[r]
	invariant.Check(m.Seq == e.delivered[r]+1, "order: delivering %d.%d after %d", r, m.Seq, e.delivered[r])
	invariant.Check(m.Seq <= s.contig, "order: delivering %d.%d beyond contiguous %d", r, m.Seq, s.contig)
	if global != 0 {
		invariant.Check(global == e.deliveredG+1, "order: delivering global %d after %d", global, e.deliveredG)
		e.deliveredG = global
	}
	e.delivered[r] = m.Seq
	e.emit(Delivery{Sender: m.Sender, Seq: m.Seq, Order: m.Order, Global: global, Clock: m.Clock, Payload: m.Payload})
}

// emit appends a delivery to the output; the planted bugs tamper with it
// here, after every internal check has passed, as a buggy output path would.
func (e *Instance) emit(d Delivery) {
	switch {
	case e.plant.duplicateDelivery && d.Seq == 2:
		e.deliveries = append(e.deliveries, d, d)
		return
	case e.plant.corruptPayload && d.Seq == 3:
		d.Payload = append([]byte("corrupt:"), d.Payload...)
	case e.plant.swapFIFO && d.Seq == 2 && e.stash == nil:
		e.stash = &d
		return
	case e.plant.swapFIFO && d.Seq == 3 && e.stash != nil && e.stash.Sender == d.Sender:
		e.deliveries = append(e.deliveries, d, *e.stash)
		e.stash = nil
		return
	}
	e.deliveries = append(e.deliveries, d)
}

// gc drops data every member has delivered, and ordering entries every
// member holds and this member has delivered.
func (e *Instance) gc() {
	for r := range e.senders {
		s := &e.senders[r]
		for ; s.gcSeq < s.stableD; s.gcSeq++ {
			delete(s.held, s.gcSeq+1)
		}
	}
	for limit := min(e.deliveredG, e.stableGlobal); e.gcGlobal < limit; e.gcGlobal++ {
		if x, ok := e.orders[e.gcGlobal+1]; ok {
			delete(e.orderOf, x)
			delete(e.orders, e.gcGlobal+1)
		}
	}
}
