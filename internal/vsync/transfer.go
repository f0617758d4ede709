package vsync

import (
	"slices"

	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
)

// joinerTransfer is a joiner's side of the state transfer.
type joinerTransfer struct {
	restored bool
	joinView uint64 // the first view installed: the donor must have reached it
	attempt  uint64 // numbers the attempts; a donor answers one at a time
	donorIdx int
	donor    peer.ID
	next     uint64 // next chunk index expected
	progress uint64 // tick of the last progress (request sent, chunk received)
	retry    uint64 // tick to resend the request if no chunk came
	// The donor's position: its state covers every delivery of views
	// below posView and, in posView, each sender's seqs up to pos.
	posSet  bool
	posView uint64
	pos     []order.Ref
	// Deliveries held back until the restore is done.
	buffer      []Delivery
	bufferBytes int
}

// covered reports whether the restored state already includes d.
func (t *joinerTransfer) covered(d Delivery) bool {
	if !t.posSet || d.View > t.posView {
		return false
	}
	if d.View < t.posView {
		return true
	}
	for _, r := range t.pos {
		if r.Sender == d.Sender {
			return d.Seq <= r.Seq
		}
	}
	return false
}

// chunkAckCancel, as a MsgChunkAck's Index, tells the donor that the
// joiner no longer wants this transfer.
const chunkAckCancel = ^uint64(0)

// session is a donor's side of one state transfer.
type session struct {
	joiner   peer.ID
	member   peer.Member // the joiner's incarnation: a restarted joiner is another transfer
	transfer uint64
	reqView  uint64
	posSet   bool
	posView  uint64
	pos      []order.Ref
	next     uint64 // next chunk index to send
	acked    uint64 // every chunk below is acknowledged
	unacked  []Message
	lastSent bool
	retry    uint64
	progress uint64 // tick of the last acknowledgement (or the start)
}

// startTransfer begins a joiner's restore after its first install.
func (n *Node) startTransfer() {
	n.xfer.joinView = n.view.ID
	n.requestTransfer()
}

// requestTransfer asks the next donor candidate (the members of the current
// view in rank order, skipping self) to stream its state, as attempt
// n.xfer.attempt+1. The first candidate is the coordinator, an old member
// unless every old member is gone; a candidate that is itself not restored
// does not answer, and the joiner moves on after TransferTimeoutTicks.
func (n *Node) requestTransfer() {
	var cands []peer.ID
	for _, id := range n.view.IDs() {
		if id != n.self.ID {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		n.restoreDone() // alone in the view: nobody holds any state
		return
	}
	t := &n.xfer
	t.attempt++
	t.donor = cands[t.donorIdx%len(cands)]
	t.donorIdx++
	t.next, t.posSet, t.pos = 0, false, nil
	t.progress = n.now
	t.retry = n.now + uint64(n.cfg.RetryTicks)
	n.send(Message{Type: MsgTransferRequest, To: t.donor, View: t.joinView, Transfer: t.attempt})
}

func (n *Node) tickJoinerTransfer() {
	t := &n.xfer
	if t.restored || t.joinView == 0 {
		return
	}
	switch {
	case n.now-t.progress >= uint64(n.cfg.TransferTimeoutTicks):
		n.requestTransfer()
	case t.next == 0 && n.now >= t.retry:
		t.retry = n.now + uint64(n.cfg.RetryTicks)
		n.send(Message{Type: MsgTransferRequest, To: t.donor, View: t.joinView, Transfer: t.attempt})
	}
}

// stepChunk takes the next chunk of the current attempt (go-back-N: a chunk
// out of order is dropped) and acknowledges what it holds.
func (n *Node) stepChunk(m Message) {
	t := &n.xfer
	if t.joinView == 0 {
		return
	}
	if t.restored || m.From != t.donor || m.Transfer != t.attempt || m.View != t.joinView {
		// A donor of an attempt given up on: tell it to stop.
		n.send(Message{Type: MsgChunkAck, To: m.From, View: m.View, Transfer: m.Transfer, Index: chunkAckCancel})
		return
	}
	if m.Index == t.next && !(t.next > 0 && len(n.chunks) > 0 && n.chunks[len(n.chunks)-1].Last) {
		if m.Index == 0 {
			t.posSet, t.posView, t.pos = true, m.PosView, m.Position
		}
		n.chunks = append(n.chunks, Chunk{Index: m.Index, Data: m.Data, Last: m.Last})
		t.next++
		t.progress = n.now
	}
	n.send(Message{Type: MsgChunkAck, To: m.From, View: m.View, Transfer: m.Transfer, Index: t.next})
}

// restoreDone releases the deliveries held back, without those the
// restored state covers.
func (n *Node) restoreDone() {
	t := &n.xfer
	if t.restored {
		return
	}
	t.restored = true
	for _, d := range t.buffer {
		if !t.covered(d) {
			n.emit(d)
		}
	}
	t.buffer, t.bufferBytes = nil, 0
}

// buffer holds back a delivery until the restore is done, within the
// configured bounds; past them the joiner stops (it cannot slow the group
// down: the others' windows already count these messages as delivered).
func (n *Node) buffer(d Delivery) {
	t := &n.xfer
	if len(t.buffer)+1 > n.cfg.RestoreBufferDeliveriesMax || t.bufferBytes+len(d.Payload) > n.cfg.RestoreBufferBytesMax {
		n.stop(ErrRestoreOverflow)
		return
	}
	t.buffer = append(t.buffer, d)
	t.bufferBytes += len(d.Payload)
}

// stepTransferRequest starts a transfer to a joiner that has reached our
// view. Only a restored member donates; a newer attempt of the same joiner
// replaces the old one.
func (n *Node) stepTransferRequest(m Message) {
	if n.view.ID == 0 || !n.xfer.restored || m.View > n.view.ID || n.rankOf(m.From) < 0 || m.Transfer == 0 {
		return
	}
	member, _ := n.view.Member(m.From)
	i := slices.IndexFunc(n.sessions, func(s *session) bool { return s.joiner == m.From })
	if i >= 0 {
		if s := n.sessions[i]; s.member == member && s.reqView == m.View && s.transfer >= m.Transfer {
			return // a duplicate or an old attempt
		}
		n.sessions = slices.Delete(n.sessions, i, i+1)
	}
	n.sessions = append(n.sessions, &session{joiner: m.From, member: member, transfer: m.Transfer, reqView: m.View, progress: n.now})
	n.transfers = append(n.transfers, TransferInstruction{Joiner: m.From, Transfer: m.Transfer, View: n.view.ID})
}

// fillPositions records, for each transfer instruction about to be handed
// out, the position its snapshot will have: everything delivered so far.
func (n *Node) fillPositions() {
	for _, s := range n.sessions {
		if s.posSet {
			continue
		}
		s.posSet = true
		s.posView, s.pos = n.position()
	}
}

// position is what this member's application state covers: every view
// before the returned one, and in it each sender's seqs up to the refs.
// That is what it delivered, and, at a member that restored its state
// from a donor, also what that donor's position covered (the restored
// state holds messages this member's order instance may deliver later,
// and will skip).
func (n *Node) position() (uint64, []order.Ref) {
	t := &n.xfer
	if t.posSet && t.posView > n.view.ID {
		return t.posView, slices.Clone(t.pos)
	}
	var pos []order.Ref
	for r, seq := range n.delivered {
		id := n.view.Members[r].ID
		if t.posSet && t.posView == n.view.ID {
			for _, p := range t.pos {
				if p.Sender == id {
					seq = max(seq, p.Seq)
				}
			}
		}
		if seq > 0 {
			pos = append(pos, order.Ref{Sender: id, Seq: seq})
		}
	}
	return n.view.ID, pos
}

// SendChunk sends the next chunk of the state snapshot of transfer to
// joiner (see TransferInstruction). last marks the final chunk (an empty
// state is one empty last chunk). The Node keeps data until the joiner
// acknowledges it. It returns ErrTransferWindowFull while
// TransferWindowChunks chunks are unacknowledged (retry after a Ready),
// ErrNoTransfer if the transfer is over or was replaced, and
// ErrChunkTooLarge.
func (n *Node) SendChunk(joiner peer.ID, transfer uint64, data []byte, last bool) error {
	if n.stopped != nil {
		return ErrStopped
	}
	i := slices.IndexFunc(n.sessions, func(s *session) bool { return s.joiner == joiner && s.transfer == transfer })
	switch {
	case i < 0 || !n.sessions[i].posSet || n.sessions[i].lastSent:
		return ErrNoTransfer
	case len(data) > n.cfg.ChunkBytesMax:
		return ErrChunkTooLarge
	case n.sessions[i].next-n.sessions[i].acked >= uint64(n.cfg.TransferWindowChunks):
		return ErrTransferWindowFull
	}
	s := n.sessions[i]
	m := Message{Type: MsgChunk, From: n.self.ID, To: joiner, View: s.reqView, Transfer: transfer, Index: s.next, Last: last, Data: data}
	if s.next == 0 {
		m.PosView, m.Position = s.posView, s.pos
	}
	s.unacked = append(s.unacked, m)
	s.next++
	s.lastSent = last
	s.retry = n.now + uint64(n.cfg.RetryTicks)
	n.out = append(n.out, m)
	return nil
}

func (n *Node) stepChunkAck(m Message) {
	i := slices.IndexFunc(n.sessions, func(s *session) bool { return s.joiner == m.From && s.transfer == m.Transfer })
	if i < 0 {
		return
	}
	s := n.sessions[i]
	if m.Index == chunkAckCancel {
		n.sessions = slices.Delete(n.sessions, i, i+1)
		return
	}
	if m.Index <= s.acked || m.Index > s.next {
		return
	}
	s.acked = m.Index
	s.progress = n.now
	s.unacked = slices.DeleteFunc(s.unacked, func(c Message) bool { return c.Index < s.acked })
	if s.lastSent && s.acked == s.next {
		n.sessions = slices.Delete(n.sessions, i, i+1)
	}
}

// tickTransfers drives both sides: the joiner's timeouts and the donors'
// retransmission of unacknowledged chunks.
func (n *Node) tickTransfers() {
	n.tickJoinerTransfer()
	// A joiner silent for TransferTimeoutTicks has crashed or moved to
	// another donor; its session is dropped.
	n.sessions = slices.DeleteFunc(n.sessions, func(s *session) bool {
		return n.now-s.progress >= uint64(n.cfg.TransferTimeoutTicks)
	})
	for _, s := range n.sessions {
		if len(s.unacked) > 0 && n.now >= s.retry {
			s.retry = n.now + uint64(n.cfg.RetryTicks)
			n.out = append(n.out, s.unacked...)
		}
	}
}
