package vsync

import (
	"fmt"
	"slices"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
)

// proposal is the proposer's state of one ballot of the change of the
// current view.
type proposal struct {
	ballot Ballot
	phase  int // 1: collecting promises; 2: collecting acceptances; 3: decided
	// participants are the members the proposer keeps for the flush, in
	// rank order: it needs a promise from every one of them.
	participants []peer.ID
	promises     map[peer.ID]Message
	value        *Value
	accepted     peer.Set
	retryTick    uint64
	startTick    uint64
}

// fetchState is a survivor fetching what it lacks of a cut.
type fetchState struct {
	value    *Value
	attempts int
	nextTick uint64
}

// pause starts the flush on this member (idempotent).
func (n *Node) pause() {
	if !n.ord.Paused() {
		n.ord.Pause()
		n.pausedTick = n.now
	}
}

// changeWanted reports whether the acting proposer has a reason to start
// a change: a member to exclude, a leave or join to fold in, or a change
// that other members started and that has stalled.
func (n *Node) changeWanted() bool {
	if !n.plant.ignoreFaulty && n.faulty.Len() > 0 {
		return true
	}
	// Leaves alone wait while the last restored member could not leave
	// (see buildValue), or the group would change views in a loop.
	if len(n.leaves) > 0 && n.now >= n.leavesDeferTick || len(n.joins) > 0 && len(n.view.Members) < n.cfg.MembersMax {
		return true
	}
	return n.ord.Paused() && n.now-n.pausedTick >= uint64(n.cfg.ChangeTimeoutTicks)
}

// maybePropose starts a ballot when this member is the acting proposer and
// there is a change to make.
func (n *Node) maybePropose() {
	if n.acting() != n.self.ID {
		// Requests are kept by the acting proposer only; the members
		// that sent them retry until the view shows the change.
		n.joins, n.leaves = nil, nil
		return
	}
	if n.decided != nil || n.prop != nil || n.now < n.proposeTick || n.acting() != n.self.ID || !n.changeWanted() {
		return
	}
	var parts []peer.ID
	for _, m := range n.view.Members {
		// A member whose newer incarnation asks to join has restarted:
		// the old one will never promise.
		if (n.plant.ignoreFaulty || !n.faulty.Contains(m.ID)) && !n.replaced(m) {
			parts = append(parts, m.ID)
		}
	}
	if len(parts) < n.majority() {
		return // a minority: the primary partition is elsewhere (or nowhere)
	}
	round := max(n.promised.Round, n.acceptedBallot.Round) + 1
	n.prop = &proposal{
		ballot:       Ballot{Round: round, Proposer: n.self.ID},
		phase:        1,
		participants: parts,
		promises:     map[peer.ID]Message{},
		retryTick:    n.now + uint64(n.cfg.RetryTicks),
		startTick:    n.now,
	}
	for _, id := range parts {
		n.send(Message{Type: MsgPrepare, To: id, View: n.view.ID, Ballot: n.prop.ballot})
	}
}

// tickProposal resends what is unanswered and reacts to members found
// faulty during the ballot: in phase 1 they are dropped from the
// participants (their promise is no longer awaited); in phase 2 the ballot
// restarts without them, since the value names them.
func (n *Node) tickProposal() {
	p := n.prop
	if p == nil {
		return
	}
	if n.acting() != n.self.ID {
		n.prop = nil
		return
	}
	if !n.plant.ignoreFaulty {
		for _, id := range p.participants {
			if n.faulty.Contains(id) {
				if p.phase == 2 {
					n.prop = nil
					return
				}
				p.participants = slices.DeleteFunc(p.participants, func(x peer.ID) bool { return n.faulty.Contains(x) })
				if len(p.participants) < n.majority() {
					n.prop = nil
					return
				}
				n.checkPromises()
				break
			}
		}
	}
	if n.prop != nil && p.phase == 1 && n.now-p.startTick >= uint64(n.cfg.ChangeTimeoutTicks) && !n.plant.ignoreFaulty {
		// A participant that is heard from but does not promise (it
		// lags in an older view, or cannot finish that view's flush)
		// must not block the group: it is left out like a faulty one.
		p.participants = slices.DeleteFunc(p.participants, func(x peer.ID) bool { return !hasKey(p.promises, x) })
		if len(p.participants) < n.majority() {
			n.prop = nil
			return
		}
		n.checkPromises()
	}
	if n.prop == nil || n.now < p.retryTick {
		return
	}
	p.retryTick = n.now + uint64(n.cfg.RetryTicks)
	for _, id := range p.participants {
		switch {
		case p.phase == 1 && !hasKey(p.promises, id):
			n.send(Message{Type: MsgPrepare, To: id, View: n.view.ID, Ballot: p.ballot})
		case p.phase == 2 && !p.accepted.Contains(id):
			n.send(Message{Type: MsgAccept, To: id, View: n.view.ID, Ballot: p.ballot, Value: p.value})
		}
	}
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// stale answers a request about an older view: if this member knows what
// that view's change decided, it says so.
func (n *Node) answerStale(m Message) {
	switch {
	case m.View == n.view.ID && n.decided != nil:
		n.send(Message{Type: MsgDecide, To: m.From, View: m.View, Value: n.decided})
	case m.View == n.prevView.ID && n.prevDecision != nil:
		n.send(Message{Type: MsgDecide, To: m.From, View: m.View, Value: n.prevDecision})
	}
}

// stepPrepare is the acceptor's phase 1. A Prepare with the zero ballot is
// a query (what did this view's change decide?) and changes nothing.
func (n *Node) stepPrepare(m Message) error {
	if n.view.ID == 0 || m.View > n.view.ID {
		return nil
	}
	if m.View < n.view.ID || n.decided != nil || m.Ballot.IsZero() {
		n.answerStale(m)
		return nil
	}
	if n.rankOf(m.From) < 0 || m.Ballot.Proposer != m.From {
		return fmt.Errorf("%w: prepare %s from %s", ErrNotMember, m.Ballot, m.From)
	}
	if m.Ballot.Less(n.promised) {
		n.send(Message{Type: MsgReject, To: m.From, View: m.View, Ballot: n.promised})
		return nil
	}
	n.promised = m.Ballot
	n.pause()
	if m.From != n.self.ID {
		// Defer to the proposer we promised: a ballot of our own would
		// only preempt it. Two members that both believe they are the
		// acting proposer (each holds the other faulty, and verdicts are
		// final) would otherwise duel forever; this way the last one
		// promised runs a full round.
		n.proposeTick = max(n.proposeTick, n.now+uint64(n.cfg.ChangeTimeoutTicks))
		if n.prop != nil && n.prop.ballot.Less(m.Ballot) {
			n.prop = nil
		}
	}
	reply := Message{Type: MsgPromise, To: m.From, View: m.View, Ballot: m.Ballot, Digest: n.ord.Digest(), Restored: n.xfer.restored}
	if n.accepted != nil {
		reply.AcceptedBallot, reply.Value = n.acceptedBallot, n.accepted
	}
	n.send(reply)
	return nil
}

func (n *Node) stepPromise(m Message) error {
	p := n.prop
	if p == nil || p.phase != 1 || m.View != n.view.ID || m.Ballot != p.ballot || !slices.Contains(p.participants, m.From) {
		return nil
	}
	if len(m.Digest.Received) != len(n.view.Members) {
		return fmt.Errorf("%w: digest of %d members for view %s", ErrMalformed, len(m.Digest.Received), n.view)
	}
	if m.Value != nil {
		if err := n.checkValue(m.Value); err != nil {
			return err
		}
	}
	p.promises[m.From] = m
	n.checkPromises()
	return nil
}

func (n *Node) stepReject(m Message) {
	if p := n.prop; p != nil && m.View == n.view.ID && p.ballot.Less(m.Ballot) {
		// Preempted. Back off before trying again, longer for higher
		// ranks, so that two members that both believe they are the
		// acting proposer do not preempt each other forever.
		n.prop = nil
		n.promised = max2(n.promised, m.Ballot)
		n.proposeTick = n.now + uint64(n.cfg.RetryTicks*(1+n.rankOf(n.self.ID)))
	}
}

func max2(a, b Ballot) Ballot {
	if a.Less(b) {
		return b
	}
	return a
}

// checkPromises moves to phase 2 once every participant promised: the
// value is the one accepted with the highest ballot among the promises
// (Paxos: it may have been chosen), or else a new one built from the
// participants' digests and the pending requests.
func (n *Node) checkPromises() {
	p := n.prop
	if p == nil || p.phase != 1 {
		return
	}
	for _, id := range p.participants {
		if !hasKey(p.promises, id) {
			return
		}
	}
	var best *Message
	for _, id := range p.participants {
		pm := p.promises[id]
		if pm.Value != nil && !n.plant.ignoreAccepted && (best == nil || best.AcceptedBallot.Less(pm.AcceptedBallot)) {
			best = &pm
		}
	}
	if best != nil {
		p.value = best.Value
	} else {
		v, ok := n.buildValue(p)
		if !ok {
			n.prop = nil
			return
		}
		p.value = v
	}
	p.phase = 2
	p.retryTick = n.now + uint64(n.cfg.RetryTicks)
	for _, id := range p.participants {
		n.send(Message{Type: MsgAccept, To: id, View: n.view.ID, Ballot: p.ballot, Value: p.value})
	}
}

// buildValue computes the next view and the cut. The next view keeps the
// participants in rank order, without leavers and members replaced by a
// newer incarnation, then appends the joiners in arrival order up to
// MembersMax.
func (n *Node) buildValue(p *proposal) (*Value, bool) {
	var ds []order.Digest
	for _, id := range p.participants {
		ds = append(ds, p.promises[id].Digest)
	}
	cut, err := order.MaxDigest(ds...)
	if err != nil {
		return nil, false // lengths were checked on receipt
	}
	v := &Value{Next: View{ID: n.view.ID + 1}, Cut: cut, Holders: make([]peer.ID, len(cut.Received))}
	for r := range cut.Received {
		for _, id := range p.participants {
			if p.promises[id].Digest.Received[r] == cut.Received[r] {
				v.Holders[r] = id
				break
			}
		}
	}
	for _, id := range p.participants {
		if p.promises[id].Digest.Ordered == cut.Ordered {
			v.OrderHolder = id
			break
		}
	}
	for _, m := range n.view.Members {
		if slices.Contains(p.participants, m.ID) && !slices.Contains(n.leaves, m) && !n.replaced(m) {
			v.Next.Members = append(v.Next.Members, m)
		}
	}
	// The next view must keep a member that holds the application
	// state, since joiners restore theirs from one. If every restored
	// participant leaves, the lowest-ranked one stays (first in the
	// view, as in its old rank order); its leave waits for the next
	// change. (If no participant is restored, the state is already gone
	// with the members that held it; nothing can bring it back.)
	if !slices.ContainsFunc(v.Next.Members, func(m peer.Member) bool { return p.promises[m.ID].Restored }) {
		for _, id := range p.participants {
			if p.promises[id].Restored {
				m, _ := n.view.Member(id)
				n.leavesDeferTick = n.now + uint64(n.cfg.ChangeTimeoutTicks)
				v.Next.Members = append([]peer.Member{m}, v.Next.Members...)
				slices.SortFunc(v.Next.Members, func(a, b peer.Member) int { return n.rankOf(a.ID) - n.rankOf(b.ID) })
				break
			}
		}
	}
	if len(v.Next.Members) == 0 {
		m, _ := n.view.Member(p.participants[0])
		v.Next.Members = append(v.Next.Members, m)
	}
	for _, j := range n.joins {
		if len(v.Next.Members) < n.cfg.MembersMax && v.Next.Rank(j.ID) < 0 {
			v.Next.Members = append(v.Next.Members, j)
		}
	}
	return v, true
}

// replaced reports whether a newer incarnation of m asks to join.
func (n *Node) replaced(m peer.Member) bool {
	return slices.ContainsFunc(n.joins, func(j peer.Member) bool { return j.ID == m.ID && j.Incarnation > m.Incarnation })
}

// checkValue checks a value proposed for the change of the current view.
func (n *Node) checkValue(v *Value) error {
	if v.Next.ID != n.view.ID+1 || len(v.Cut.Received) != len(n.view.Members) {
		return fmt.Errorf("%w: value %s for view %s", ErrMalformed, v, n.view)
	}
	for _, h := range append(slices.Clone(v.Holders), v.OrderHolder) {
		if n.rankOf(h) < 0 {
			return fmt.Errorf("%w: holder %s outside view %s", ErrMalformed, h, n.view)
		}
	}
	return nil
}

// stepAccept is the acceptor's phase 2. It accepts only once it holds the
// whole cut (it fetches what it lacks first), so that any member that
// accepted a value can serve its cut: a value is never chosen that the
// survivors cannot deliver.
func (n *Node) stepAccept(m Message) error {
	if n.view.ID == 0 || m.View > n.view.ID {
		return nil
	}
	if m.View < n.view.ID || n.decided != nil {
		n.answerStale(m)
		return nil
	}
	if n.rankOf(m.From) < 0 || m.Ballot.Proposer != m.From {
		return fmt.Errorf("%w: accept %s from %s", ErrNotMember, m.Ballot, m.From)
	}
	if err := n.checkValue(m.Value); err != nil {
		return err
	}
	if m.Ballot.Less(n.promised) {
		n.send(Message{Type: MsgReject, To: m.From, View: m.View, Ballot: n.promised})
		return nil
	}
	n.promised = m.Ballot
	n.pause()
	if _, err := n.ord.Missing(m.Value.Cut); err != nil && m.Value.Next.Contains(n.self) {
		return fmt.Errorf("vsync: accept %s: %w", m.Ballot, err)
	}
	n.pendingAccept = &pendingAccept{ballot: m.Ballot, value: m.Value, from: m.From}
	n.progressAccept()
	return nil
}

// progressAccept accepts the pending value once its cut is held.
func (n *Node) progressAccept() {
	pa := n.pendingAccept
	if pa == nil {
		return
	}
	if pa.ballot != n.promised {
		n.pendingAccept = nil
		return
	}
	if _, err := n.ord.Missing(pa.value.Cut); err != nil {
		// Only a member the value excludes gets here (stepAccept refused
		// the others): it kept delivering past the cut while it was
		// left out of the round that built the value. Its vote is still
		// a vote; it will not install the view, so it needs no cut.
		invariant.Check(!pa.value.Next.Contains(n.self), "vsync: accepting a value whose cut is below our deliveries")
	} else if !n.holdsCut(pa.value) {
		return
	}
	n.pendingAccept = nil
	n.acceptedBallot, n.accepted = pa.ballot, pa.value
	n.send(Message{Type: MsgAccepted, To: pa.from, View: n.view.ID, Ballot: pa.ballot})
}

// holdsCut reports whether this member holds all of v's cut, and starts
// fetching what it lacks if not.
func (n *Node) holdsCut(v *Value) bool {
	miss, err := n.ord.Missing(v.Cut)
	if err != nil || !miss.Empty() {
		if n.fetch == nil || n.fetch.value != v {
			n.fetch = &fetchState{value: v}
			n.tickFetch()
		}
		return false
	}
	return true
}

func (n *Node) stepAccepted(m Message) {
	p := n.prop
	if p == nil || p.phase != 2 || m.View != n.view.ID || m.Ballot != p.ballot || n.rankOf(m.From) < 0 {
		return
	}
	p.accepted = p.accepted.Add(m.From)
	if p.accepted.Len() < n.majority() {
		return
	}
	p.phase = 3
	to := peer.Set{}
	for _, id := range n.view.IDs() {
		to = to.Add(id)
	}
	for _, m := range p.value.Next.Members {
		to = to.Add(m.ID)
	}
	for id := range to.All() {
		n.send(Message{Type: MsgDecide, To: id, View: n.view.ID, Value: p.value})
	}
}

// stepDecide learns the chosen value. A joiner in its next view installs
// it at once (it has no old view to flush).
func (n *Node) stepDecide(m Message) error {
	if n.view.ID == 0 {
		if m.Value.Next.Contains(n.self) {
			return n.install(m.Value.Next)
		}
		return nil
	}
	if m.View != n.view.ID || n.decided != nil {
		return nil
	}
	if err := n.checkValue(m.Value); err != nil {
		return err
	}
	n.decided = m.Value
	n.pause()
	n.prop = nil
	n.progressFlush()
	return nil
}

// progressFlush completes a decided change: an excluded member stops at
// once (it delivers nothing more of the view); a survivor or a leaver
// fetches what it lacks of the cut, delivers the rest of the cut
// (FinishFlush), and then installs the next view or stops.
func (n *Node) progressFlush() {
	v := n.decided
	if v == nil || n.stopped != nil {
		return
	}
	in := v.Next.Contains(n.self)
	leaving := n.leaving && !in
	if !in && !leaving {
		if n.plant.stayWhenExcluded {
			n.viewChanges = append(n.viewChanges, ViewChange{View: v.Next, Rank: -1})
		}
		n.stop(ErrExcluded)
		return
	}
	if n.plant.installWithoutFlush {
		n.finishInstall(v)
		return
	}
	if _, err := n.ord.Missing(v.Cut); err != nil && leaving {
		// A leaver that was left out of the flush (it fell silent) may
		// have delivered past the cut; it has no one to be synchronous
		// with in the next view, so it just goes.
		n.stop(ErrLeft)
		return
	}
	if !n.holdsCut(v) {
		return
	}
	if _, err := n.ord.FinishFlush(v.Cut); err != nil {
		return // the cut was checked against Missing just above
	}
	n.drainOrder()
	if leaving {
		n.stop(ErrLeft)
		return
	}
	n.finishInstall(v)
}

func (n *Node) finishInstall(v *Value) {
	_ = n.install(v.Next) // the value was checked; order.New cannot refuse it
}

// tickFetch asks for what this member lacks of the cut it is fetching: at
// first from the holders the value names, then from every member it does
// not hold faulty, every RetryTicks.
func (n *Node) tickFetch() {
	f := n.fetch
	if f == nil || n.now < f.nextTick {
		return
	}
	miss, err := n.ord.Missing(f.value.Cut)
	if err != nil || miss.Empty() {
		n.fetch = nil
		return
	}
	f.nextTick = n.now + uint64(n.cfg.RetryTicks)
	f.attempts++
	if f.attempts == 1 {
		byHolder := map[peer.ID]*Message{}
		get := func(h peer.ID) *Message {
			if byHolder[h] == nil {
				byHolder[h] = &Message{Type: MsgFetch, To: h, View: n.view.ID}
			}
			return byHolder[h]
		}
		for _, ref := range miss.Data {
			h := f.value.Holders[n.rankOf(ref.Sender)]
			get(h).Refs = append(get(h).Refs, ref)
		}
		if len(miss.Orders) > 0 {
			get(f.value.OrderHolder).Ranges = miss.Orders
		}
		for _, id := range n.view.IDs() {
			if m := byHolder[id]; m != nil && id != n.self.ID {
				n.send(*m)
			}
		}
		return
	}
	for _, id := range n.view.IDs() {
		if id != n.self.ID && !n.faulty.Contains(id) {
			n.send(Message{Type: MsgFetch, To: id, View: n.view.ID, Refs: miss.Data, Ranges: miss.Orders})
		}
	}
}

// stepFetch serves a fetch from the current or the previous view's
// instance: whatever of the request this member holds.
func (n *Node) stepFetch(m Message) {
	var inst *order.Instance
	switch {
	case n.view.ID != 0 && m.View == n.view.ID:
		inst = n.ord
	case n.prev != nil && m.View == n.prevView.ID:
		inst = n.prev
	default:
		return
	}
	var fw []order.Message
	for _, ref := range m.Refs {
		if om, ok := inst.Message(ref.Sender, ref.Seq); ok {
			fw = append(fw, om)
		}
	}
	for _, rg := range m.Ranges {
		if rg.First <= rg.Last {
			fw = append(fw, inst.OrderBatches(rg)...)
		}
	}
	for len(fw) > 0 {
		k := min(len(fw), forwardMessagesMax)
		n.send(Message{Type: MsgForward, To: m.From, View: m.View, Forwards: fw[:k:k]})
		fw = fw[k:]
	}
}

func (n *Node) stepForward(m Message) error {
	if n.view.ID == 0 || m.View != n.view.ID || n.ord.Finished() {
		return nil
	}
	var first error
	for _, f := range m.Forwards {
		if err := n.ord.Add(f); err != nil && first == nil {
			first = fmt.Errorf("vsync: forward: %w", err)
		}
	}
	n.progressAccept()
	n.progressFlush()
	return first
}
