package order

import (
	"fmt"
	"math"
)

// assignOrders is the sequencer's job (rank 0): give the next global
// sequence number to every Total or Safe message it holds, sender by sender
// in seq order, as soon as the message is contiguous. Waiting for
// contiguity keeps each sender's messages in seq order within the global
// order, so FIFO and total order never disagree; assigning at receipt keeps
// causality (a message delivered anywhere was ordered before any message
// sent after that delivery).
//
// The sequencer stops while more than members × window globals would be
// outside what every member holds, so no member ever needs to buffer more
// ordering entries than that; stability gossip restarts it.
func (e *Instance) assignOrders() bool {
	if !e.isSequencer() || e.flushing {
		return false
	}
	assigned := false
	for r := range e.senders {
		s := &e.senders[r]
		for s.sequenced < s.contig {
			seq := s.sequenced + 1
			if m, ok := s.held[seq]; ok && m.Order.sequenced() {
				g := e.contigGlobal + 1
				if g > e.stableGlobal+e.orderWindow() || len(e.orders) >= e.orderEntriesMax() {
					return assigned
				}
				if len(e.pending) == 0 {
					e.pendingFirst = g
				}
				e.addOrder(g, ref{r, seq})
				e.pending = append(e.pending, ref{r, seq})
				assigned = true
			}
			// A seq that is not held here was delivered by every member
			// and collected; it needed no order, or it had one already.
			s.sequenced = seq
		}
	}
	return assigned
}

// addOrder records that global g is the message k.
func (e *Instance) addOrder(g uint64, k ref) {
	e.orders[g] = k
	e.orderOf[k] = g
	e.knownGlobal = max(e.knownGlobal, g)
	for {
		if _, ok := e.orders[e.contigGlobal+1]; !ok {
			return
		}
		e.contigGlobal++
	}
}

// sealBatch turns the sequencer's pending entries into MsgOrder batches of
// at most BatchEntriesMax entries, one copy per other member.
func (e *Instance) sealBatch() {
	for i := 0; i < len(e.pending); i += e.cfg.BatchEntriesMax {
		chunk := e.pending[i:min(i+e.cfg.BatchEntriesMax, len(e.pending))]
		entries := e.refs(chunk)
		for r := range e.members {
			if r == e.self {
				continue
			}
			es := entries
			if e.plant.sequencerReorder && r%2 == 1 {
				es = swapFirstOfDifferentSenders(entries)
			}
			e.send(r, Message{Type: MsgOrder, Global: e.pendingFirst + uint64(i), Entries: es})
		}
	}
	e.pending = nil
}

// swapFirstOfDifferentSenders is the planted sequencer bug: it tells some
// members a different order. It swaps two adjacent entries of different
// senders only, so each sender's own messages stay in seq order and the
// members it misleads are not stuck, just wrong.
func swapFirstOfDifferentSenders(es []Ref) []Ref {
	for i := 0; i+1 < len(es); i++ {
		if es[i].Sender != es[i+1].Sender {
			out := append([]Ref(nil), es...)
			out[i], out[i+1] = out[i+1], out[i]
			return out
		}
	}
	return es
}

func (e *Instance) refs(ks []ref) []Ref {
	out := make([]Ref, len(ks))
	for i, k := range ks {
		out[i] = Ref{Sender: e.members[k.rank], Seq: k.seq}
	}
	return out
}

// stepOrder stores the entries of an ordering batch. Entries already held
// are skipped; an entry that contradicts one held (another message for the
// same global, or another global for the same message) is refused. Entries
// further than members × window above the contiguous point cannot be
// legitimate yet and are dropped (a NAK fetches them later).
func (e *Instance) stepOrder(m Message) error {
	if m.Global == 0 || len(m.Entries) == 0 || len(m.Entries) > e.cfg.BatchEntriesMax ||
		m.Global > math.MaxUint64-uint64(len(m.Entries)) {
		return fmt.Errorf("%w: batch of %d entries at global %d", ErrMalformed, len(m.Entries), m.Global)
	}
	if e.isSequencer() {
		return nil // the sequencer is the source of the order; it asks nobody
	}
	for i, x := range m.Entries {
		g := m.Global + uint64(i)
		r, ok := e.rankOf[x.Sender]
		if !ok {
			return fmt.Errorf("%w: ordered message from %s", ErrUnknownMember, x.Sender)
		}
		if x.Seq == 0 {
			return fmt.Errorf("%w: ordered seq 0", ErrMalformed)
		}
		e.senders[r].known = max(e.senders[r].known, x.Seq)
		k := ref{r, x.Seq}
		if g <= e.contigGlobal {
			continue
		}
		if g > e.contigGlobal+e.orderWindow() || len(e.orders) >= e.orderEntriesMax() {
			break
		}
		held, hasG := e.orders[g]
		heldG, hasK := e.orderOf[k]
		switch {
		case hasG && held == k:
			continue
		case hasG:
			return fmt.Errorf("%w: global %d is %s, but %s.%d holds it", ErrMalformed, g, x, e.members[held.rank], held.seq)
		case hasK:
			return fmt.Errorf("%w: global %d is %s, which holds global %d", ErrMalformed, g, x, heldG)
		case x.Seq <= e.delivered[r]:
			return fmt.Errorf("%w: global %d orders %s, already delivered", ErrMalformed, g, x)
		}
		e.addOrder(g, k)
	}
	e.knownGlobal = max(e.knownGlobal, m.Global+uint64(len(m.Entries))-1)
	return nil
}

// stepOrderNak answers a request for ordering entries with the ones held.
func (e *Instance) stepOrderNak(from int, m Message) error {
	if err := checkRanges(m.Ranges, e.orderWindow()); err != nil {
		return err
	}
	if e.plant.ignoreNaks {
		return nil
	}
	for _, rg := range m.Ranges {
		for _, b := range e.orderBatches(rg) {
			e.send(from, b)
		}
	}
	return nil
}

// orderBatches returns the held ordering entries of rg as MsgOrder
// messages of at most BatchEntriesMax entries, without From and To.
func (e *Instance) orderBatches(rg Range) []Message {
	var out []Message
	var run []ref
	var first uint64
	flush := func() {
		if len(run) > 0 {
			out = append(out, Message{Type: MsgOrder, View: e.view, Global: first, Entries: e.refs(run)})
			run = nil
		}
	}
	lo := max(rg.First, e.gcGlobal+1)
	hi := min(rg.Last, e.contigGlobal+e.orderWindow())
	for g := lo; g <= hi && g >= lo; g++ {
		k, ok := e.orders[g]
		if !ok {
			flush()
			continue
		}
		if len(run) == 0 {
			first = g
		}
		run = append(run, k)
		if len(run) == e.cfg.BatchEntriesMax {
			flush()
		}
	}
	flush()
	return out
}

// nakOrders asks for missing ordering entries once a gap has lasted
// NakTicks: first the sequencer, then also a member that reported holding
// them, in case the sequencer's link to us is down.
func (e *Instance) nakOrders() {
	if e.isSequencer() {
		return
	}
	gap := e.knownGlobal > e.contigGlobal
	if !e.orderNak.due(gap, e.contigGlobal, e.cfg.NakTicks) {
		return
	}
	last := min(e.knownGlobal, e.contigGlobal+e.orderWindow())
	var ranges []Range
	for g := e.contigGlobal + 1; g <= last; g++ {
		if _, ok := e.orders[g]; ok {
			continue
		}
		if n := len(ranges); n > 0 && ranges[n-1].Last == g-1 {
			ranges[n-1].Last = g
		} else {
			ranges = append(ranges, Range{First: g, Last: g})
		}
	}
	if len(ranges) == 0 {
		return
	}
	for _, to := range e.nakTargets(0, e.orderNak.attempts, func(k int) bool { return e.reports[k].ordered > e.contigGlobal }) {
		e.send(to, Message{Type: MsgOrderNak, Ranges: ranges})
	}
}
