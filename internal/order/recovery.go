package order

import "fmt"

// nakBackoffShiftMax caps the backoff of repeated NAKs for one gap at
// 2^3 = 8 × NakTicks: when the round trip is longer than NakTicks, every
// NAK sent before the first answer can arrive only multiplies
// retransmissions (the randomized test, whose network delays messages for
// many ticks, sent three to seven times as many data messages without
// it), while the cap
// keeps recovery from a long loss streak prompt.
const nakBackoffShiftMax = 3

// due advances the timer of one gap by a tick and reports whether a NAK is
// due. A gap must last NakTicks without the contiguous point moving (a
// reordered message may simply be late); then NAKs go out after NakTicks,
// 2, 4 and then every 8 × NakTicks until the gap closes. Progress (the
// contiguous point moving) restarts the count.
func (t *nakTimer) due(gap bool, contig uint64, nakTicks int) bool {
	if !gap {
		*t = nakTimer{}
		return false
	}
	if contig != t.mark {
		*t = nakTimer{mark: contig}
	}
	t.ageTicks++
	if t.ageTicks < nakTicks<<min(t.attempts, nakBackoffShiftMax) {
		return false
	}
	t.ageTicks = 0
	t.attempts++
	return true
}

// nakTargets returns whom to ask on the attempts-th NAK for what source
// (the sender, or the sequencer) should have: the source alone the first
// time; from the second on, also one other member, rotating among those
// whose reports show they hold it (or among all if none does). Any holder
// can retransmit, so a source whose link to us is broken, or that crashed,
// does not block recovery.
func (e *Instance) nakTargets(source, attempts int, holds func(k int) bool) []int {
	targets := []int{source}
	if attempts < 2 {
		return targets
	}
	var holders, others []int
	for k := range e.members {
		if k == e.self || k == source {
			continue
		}
		others = append(others, k)
		if holds(k) {
			holders = append(holders, k)
		}
	}
	if len(holders) == 0 {
		holders = others
	}
	if len(holders) > 0 {
		targets = append(targets, holders[(attempts-2)%len(holders)])
	}
	return targets
}

// nakGaps asks for missing data messages, sender by sender.
func (e *Instance) nakGaps() {
	for r := range e.senders {
		if r == e.self {
			continue
		}
		s := &e.senders[r]
		if !s.nak.due(s.known > s.contig, s.contig, e.cfg.NakTicks) {
			continue
		}
		// Nothing above stableD+window can exist yet; a larger known
		// came from a report we cannot act on until stability catches up.
		last := min(s.known, s.stableD+e.window())
		var ranges []Range
		for seq := s.contig + 1; seq <= last; seq++ {
			if e.holds(r, seq) {
				continue
			}
			if n := len(ranges); n > 0 && ranges[n-1].Last == seq-1 {
				ranges[n-1].Last = seq
			} else {
				ranges = append(ranges, Range{First: seq, Last: seq})
			}
		}
		if len(ranges) == 0 {
			continue
		}
		for _, to := range e.nakTargets(r, s.nak.attempts, func(k int) bool { return e.reports[k].received[r] > s.contig }) {
			e.send(to, Message{Type: MsgNak, Sender: e.members[r], Ranges: ranges})
		}
	}
}

// checkRanges validates the ranges of a NAK: ascending, disjoint, seqs from
// 1, and at most countMax seqs in all (nobody can lack more than that).
func checkRanges(rs []Range, countMax uint64) error {
	var count, prev uint64
	for _, rg := range rs {
		if rg.First == 0 || rg.First > rg.Last || rg.First <= prev {
			return fmt.Errorf("%w: ranges %v", ErrMalformed, rs)
		}
		if rg.Last-rg.First >= countMax || count+rg.Last-rg.First+1 > countMax {
			return fmt.Errorf("%w: ranges %v ask for more than %d", ErrMalformed, rs, countMax)
		}
		count += rg.Last - rg.First + 1
		prev = rg.Last
	}
	if len(rs) == 0 {
		return fmt.Errorf("%w: empty nak", ErrMalformed)
	}
	return nil
}

// stepNak retransmits the requested messages this member holds: any holder
// answers, not only the original sender.
func (e *Instance) stepNak(from int, m Message) error {
	r, ok := e.rankOf[m.Sender]
	if !ok {
		return fmt.Errorf("%w: nak for %s", ErrUnknownMember, m.Sender)
	}
	if err := checkRanges(m.Ranges, e.window()); err != nil {
		return err
	}
	if e.plant.ignoreNaks {
		return nil
	}
	for _, rg := range m.Ranges {
		for seq := rg.First; seq <= rg.Last && seq >= rg.First; seq++ {
			if held, ok := e.senders[r].held[seq]; ok {
				e.send(from, held)
			}
		}
	}
	return nil
}

// gossip sends this member's stability report to every other member.
func (e *Instance) gossip() {
	recv := make([]uint64, e.n())
	deliv := make([]uint64, e.n())
	for r, s := range e.senders {
		recv[r], deliv[r] = s.contig, e.delivered[r]
	}
	for k := range e.members {
		if k != e.self {
			e.send(k, Message{Type: MsgStable, Received: recv, Delivered: deliv, Ordered: e.contigGlobal})
		}
	}
	// The vectors are shared with the messages just queued, which nobody
	// modifies.
	e.reported = report{received: recv, delivered: deliv, ordered: e.contigGlobal}
}

// reportDue reports whether this member has moved ReportEveryMessages past
// its last report for some sender (received or delivered) or for the
// ordering entries: an early report then lets senders reuse their window
// without waiting for the next StabilityTicks. Reports only say what is
// true, and receivers merge them with max, so sending more of them changes
// no decision, only how soon it is taken.
func (e *Instance) reportDue() bool {
	every := uint64(e.cfg.ReportEveryMessages)
	if every == 0 || e.finished || e.n() == 1 {
		return false
	}
	if e.reported.received == nil {
		e.reported = report{received: make([]uint64, e.n()), delivered: make([]uint64, e.n())}
	}
	for r := range e.senders {
		if e.senders[r].contig-e.reported.received[r] >= every || e.delivered[r]-e.reported.delivered[r] >= every {
			return true
		}
	}
	return e.contigGlobal-e.reported.ordered >= every
}

// stepStable merges a member's report. It also tells us which messages
// exist, so a lost last message (no later one reveals the gap) is found.
func (e *Instance) stepStable(from int, m Message) error {
	if len(m.Received) != e.n() || len(m.Delivered) != e.n() {
		return fmt.Errorf("%w: stable vectors of %d and %d for %d members", ErrMalformed, len(m.Received), len(m.Delivered), e.n())
	}
	for r := range m.Received {
		if m.Delivered[r] > m.Received[r] {
			return fmt.Errorf("%w: rank %d delivered %d beyond received %d", ErrMalformed, r, m.Delivered[r], m.Received[r])
		}
	}
	rep := &e.reports[from]
	for r := range m.Received {
		rep.received[r] = max(rep.received[r], m.Received[r])
		rep.delivered[r] = max(rep.delivered[r], m.Delivered[r])
		e.senders[r].known = max(e.senders[r].known, m.Received[r])
	}
	rep.ordered = max(rep.ordered, m.Ordered)
	e.knownGlobal = max(e.knownGlobal, m.Ordered)
	return nil
}
