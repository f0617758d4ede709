package order

import (
	"bytes"
	"fmt"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vclock"
)

// violation is one broken property, tagged with the property's name so a
// test can tell which checker fired.
type violation struct {
	property string
	detail   string
}

func (v violation) String() string { return v.property + ": " + v.detail }

// The properties the checker verifies on every member's delivery sequence.
const (
	propCreation    = "no creation"
	propDuplication = "no duplication"
	propFIFO        = "fifo"
	propCausal      = "causal"
	propTotal       = "total order"
	propSafe        = "safe"
	propComplete    = "all delivered"
	propSameSet     = "same set"
)

// checkHistory verifies the harness's recorded history. members are the
// nodes whose logs are checked; complete asks for every sent message to be
// delivered by each of them (a run to quiescence with no crash). After a
// flush, checkSameSet and checkCut add virtual synchrony.
func checkHistory(h *harness, members []peer.ID, complete bool) []violation {
	var vs []violation
	add := func(prop, format string, args ...any) {
		vs = append(vs, violation{prop, fmt.Sprintf(format, args...)})
	}
	var longestTotal []Ref
	totals := map[peer.ID][]Ref{}
	for _, id := range members {
		n := h.node(id)
		seen := map[Ref]bool{}
		next := map[peer.ID]uint64{} // FIFO: the next seq expected from each sender
		dvec := vclock.New(len(h.ids))
		var causal []record
		for i, d := range n.log {
			ref := Ref{d.Sender, d.Seq}
			sent, ok := h.sent[ref]
			switch {
			case !ok:
				add(propCreation, "%s delivered %s, never sent", id, ref)
				continue
			case !bytes.Equal(sent.Payload, d.Payload) || sent.Order != d.Order:
				add(propCreation, "%s delivered %s as %s %q, sent as %s %q", id, ref, d.Order, d.Payload, sent.Order, sent.Payload)
			}
			if seen[ref] {
				add(propDuplication, "%s delivered %s twice (at %d)", id, ref, i)
				continue
			}
			seen[ref] = true
			if want := next[d.Sender] + 1; d.Seq != want {
				add(propFIFO, "%s delivered %s when %s.%d was next", id, ref, d.Sender, want)
			}
			next[d.Sender] = max(next[d.Sender], d.Seq)
			rank := int(d.Sender) - 1
			if d.Order == Causal {
				// Everything the sender had delivered must be delivered here.
				for k, v := range d.Clock {
					if k != rank && dvec[k] < v {
						add(propCausal, "%s delivered %s (clock %v) having delivered only %v", id, ref, d.Clock, dvec)
						break
					}
				}
				// And no earlier-delivered causal message may causally
				// follow this one.
				for _, c := range causal {
					if c.Clock.Compare(d.Clock) == vclock.After {
						add(propCausal, "%s delivered %s.%d (clock %v) before %s (clock %v)", id, c.Sender, c.Seq, c.Clock, ref, d.Clock)
					}
				}
				causal = append(causal, d)
			}
			dvec[rank] = max(dvec[rank], d.Seq)
			if d.Order.sequenced() {
				totals[id] = append(totals[id], ref)
				if d.Order == Safe && !d.inFlush && !d.heldByAll {
					add(propSafe, "%s delivered safe %s before every member held it", id, ref)
				}
			}
		}
		if len(totals[id]) > len(longestTotal) {
			longestTotal = totals[id]
		}
		if complete {
			for ref := range h.sent {
				if !seen[ref] {
					add(propComplete, "%s never delivered %s", id, ref)
				}
			}
		}
	}
	// Total and safe messages: every member's sequence is a prefix of the
	// longest one (all equal once everything is delivered).
	for _, id := range members {
		for i, ref := range totals[id] {
			if ref != longestTotal[i] {
				add(propTotal, "%s's total order has %s at position %d, another member has %s", id, ref, i, longestTotal[i])
				break
			}
		}
	}
	return vs
}

// checkSameSet verifies virtual synchrony after a flush: every survivor
// delivered exactly the same set of messages in the view.
func checkSameSet(h *harness, survivors []peer.ID) []violation {
	var vs []violation
	sets := map[peer.ID]map[Ref]bool{}
	for _, id := range survivors {
		sets[id] = map[Ref]bool{}
		for _, d := range h.node(id).log {
			sets[id][Ref{d.Sender, d.Seq}] = true
		}
	}
	first := survivors[0]
	for _, id := range survivors[1:] {
		for ref := range sets[first] {
			if !sets[id][ref] {
				vs = append(vs, violation{propSameSet, fmt.Sprintf("%s delivered %s, %s did not", first, ref, id)})
			}
		}
		for ref := range sets[id] {
			if !sets[first][ref] {
				vs = append(vs, violation{propSameSet, fmt.Sprintf("%s delivered %s, %s did not", id, ref, first)})
			}
		}
	}
	return vs
}
