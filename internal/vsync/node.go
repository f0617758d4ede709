package vsync

import (
	"fmt"
	"slices"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/liveness"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/quorum"
)

// Delivery is one message handed to the application, tagged with the view
// it was delivered in (which is the view it was sent in).
type Delivery struct {
	View uint64
	order.Delivery
}

func (d Delivery) String() string { return fmt.Sprintf("v%d %s", d.View, d.Delivery) }

// ViewChange reports that this member installed View, in which it has
// rank Rank.
type ViewChange struct {
	View View
	Rank int
}

// TransferInstruction tells a donor's shell to snapshot the application
// state, as it is after applying every delivery of the Ready that carries
// the instruction, and to stream it to Joiner with SendChunk(Joiner,
// Transfer, ...).
type TransferInstruction struct {
	Joiner   peer.ID
	Transfer uint64
	View     uint64
}

// Chunk is one piece of the state a joiner restores, in order. Index 0
// starts a restore: the shell discards whatever an earlier attempt (from a
// donor that failed) restored. The restore is done when the Ready holding
// the Last chunk is advanced.
type Chunk struct {
	Index uint64
	Data  []byte
	Last  bool
}

// Ready is the output of a Node; see the package comment for the caller's
// duties.
type Ready struct {
	// Messages are to be sent, each to its To, best effort.
	Messages []Message
	// Deliveries are applied in order. A delivery of view v comes after
	// the ViewChange of v and before that of any later view, except at a
	// joiner, whose deliveries are held back until its restore is done.
	Deliveries []Delivery
	// ViewChanges are the views installed, in order.
	ViewChanges []ViewChange
	// TransferInstructions are state transfers this member must stream.
	TransferInstructions []TransferInstruction
	// Chunks are state to restore (at a joiner), in order.
	Chunks []Chunk
	// Stopped is set once, when the member stops (ErrLeft, ErrExcluded,
	// ErrRestoreOverflow). The Node accepts no input afterwards.
	Stopped error
}

// plants are deliberate bugs that tests switch on to show that their
// checkers catch them. They are never set outside tests.
type plants struct {
	ignoreAccepted      bool // a proposer does not adopt values accepted in an earlier round
	noQuorum            bool // a proposer needs no majority
	installWithoutFlush bool // install a decided view without fetching and delivering the cut
	flushInNextView     bool // tag the flush's deliveries with the next view
	duplicate           bool // hand out every seq 2 twice
	corrupt             bool // change the payload of every seq 3
	swapTotal           bool // odd ranks swap adjacent total deliveries
	stayWhenExcluded    bool // an excluded member reports the view without itself as installed
	reinstall           bool // report each installed view twice
	ignoreFaulty        bool // a proposer never excludes a faulty or silent member
	skipFourth          bool // odd ranks do not hand out seq 4 of any sender
	hideSecondView      bool // view 2 is installed but not reported
	skipOwnFirst        bool // a member does not hand out its own seq 1
}

// Node is the vsync core of one member (one incarnation of a process). It is
// not safe for concurrent use; see the package comment.
type Node struct {
	cfg  Config
	lim  Limits
	self peer.Member
	now  uint64

	// The installed view (ID 0 while joining) and its instances.
	view      View
	ord       *order.Instance
	det       *liveness.Detector
	faulty    peer.Set
	delivered []uint64 // by rank of view: highest seq handed out (or skipped)
	// The previous view, kept to answer fetches and stale requests.
	prev         *order.Instance
	prevView     View
	prevDecision *Value

	// Acceptor state of the change of view (volatile: crash-stop).
	promised       Ballot
	acceptedBallot Ballot
	accepted       *Value
	pendingAccept  *pendingAccept
	pausedTick     uint64
	decided        *Value
	queryTick      uint64
	proposeTick    uint64 // no new ballot before this tick (after a Reject)
	detResetTick   uint64 // tick of the last fresh detector (install or reset)

	prop   *proposal
	fetch  *fetchState
	joins  []peer.Member // pending at the proposer, in arrival order
	leaves []peer.Member

	leaving   bool
	leaveTick uint64
	// leavesDeferTick: leaves start no change before this tick (set when
	// the last restored member had to stay).
	leavesDeferTick uint64

	// Joiner.
	contacts    []peer.ID
	joinAttempt int
	joinTick    uint64

	xfer     joinerTransfer
	sessions []*session // donor side, at most one per joiner

	stopped error
	plant   plants

	local       []Message // to self, processed before returning
	out         []Message
	deliveries  []Delivery
	viewChanges []ViewChange
	transfers   []TransferInstruction
	chunks      []Chunk
	stopOut     error
	stopTaken   bool
}

type pendingAccept struct {
	ballot Ballot
	value  *Value
	from   peer.ID
}

// New returns the Node of self, a founding member of the group whose first
// view is initial (every founder is given the same one).
func New(cfg Config, self peer.Member, initial View) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := initial.validate(cfg.MembersMax); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if initial.ID == 0 || !initial.Contains(self) {
		return nil, fmt.Errorf("%w: %s not in initial view %s (id must be > 0)", ErrConfig, self, initial)
	}
	n := &Node{cfg: cfg, lim: cfg.Limits(), self: self}
	n.xfer.restored = true
	if err := n.install(initial); err != nil {
		return nil, err
	}
	return n, nil
}

// NewJoiner returns the Node of self, which joins the group through
// contacts (members it knows). It installs its first view when the group
// adds it, then restores the application state from an old member.
func NewJoiner(cfg Config, self peer.Member, contacts []peer.ID) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if self.ID == peer.None || len(contacts) == 0 || slices.Contains(contacts, peer.None) || slices.Contains(contacts, self.ID) {
		return nil, fmt.Errorf("%w: joiner %s with contacts %v", ErrConfig, self, contacts)
	}
	n := &Node{cfg: cfg, lim: cfg.Limits(), self: self, contacts: slices.Clone(contacts)}
	n.sendJoin()
	return n, nil
}

// Self is this member.
func (n *Node) Self() peer.Member { return n.self }

// View returns the installed view; ok is false while joining.
func (n *Node) View() (View, bool) { return n.view, n.view.ID != 0 }

// Stopped returns the reason the member stopped, or nil.
func (n *Node) Stopped() error { return n.stopped }

// Restored reports whether the application state is complete (always true
// at a founder; at a joiner once its state transfer is done).
func (n *Node) Restored() bool { return n.xfer.restored }

// Send multicasts payload to the view with order o and returns its seq.
// It fails with ErrNotMember while joining, order.ErrPaused during a view
// change (retry after the next ViewChange), order.ErrWindowFull under
// back-pressure, and ErrStopped after the member stopped.
func (n *Node) Send(payload []byte, o order.Order) (uint64, error) {
	switch {
	case n.stopped != nil:
		return 0, ErrStopped
	case n.view.ID == 0:
		return 0, ErrNotMember
	}
	seq, err := n.ord.Send(payload, o)
	n.processLocal()
	return seq, err
}

// Leave asks the group to remove this member. The member takes part in the
// flush of the view it leaves, delivers its cut, and stops with ErrLeft.
func (n *Node) Leave() error {
	switch {
	case n.stopped != nil:
		return ErrStopped
	case n.view.ID == 0:
		return ErrNotMember
	case n.leaving:
		return ErrLeaving
	}
	n.leaving = true
	n.sendLeave()
	n.processLocal()
	return nil
}

func (n *Node) rankOf(id peer.ID) int { return n.view.Rank(id) }

func (n *Node) majority() int {
	if n.plant.noQuorum {
		return 1
	}
	return quorum.Majority(len(n.view.Members))
}

// acting returns the member that proposes changes of the view in this
// member's eyes: the lowest ranked one it does not hold faulty.
func (n *Node) acting() peer.ID {
	for _, m := range n.view.Members {
		if !n.faulty.Contains(m.ID) {
			return m.ID
		}
	}
	invariant.Unreachable("vsync: %s holds itself faulty", n.self)
	return peer.None
}

func (n *Node) send(m Message) {
	m.From = n.self.ID
	if m.To == n.self.ID {
		n.local = append(n.local, m)
		return
	}
	n.out = append(n.out, m)
}

// processLocal handles the messages this member sent itself (a proposer is
// also an acceptor), then gives the proposer a chance to act.
func (n *Node) processLocal() {
	for i := 0; len(n.local) > 0; i++ {
		invariant.Check(i < 1<<16, "vsync: local message loop")
		m := n.local[0]
		n.local = n.local[1:]
		if n.stopped == nil {
			_ = n.handle(m)
		}
	}
	if n.stopped == nil && n.view.ID != 0 {
		n.maybePropose()
		for len(n.local) > 0 && n.stopped == nil {
			m := n.local[0]
			n.local = n.local[1:]
			_ = n.handle(m)
		}
	}
	n.local = nil
}

// Step handles a message from a peer. Stale input (an old view, a lower
// ballot) is dropped, silently or with a reply that helps the sender catch
// up; input that breaks the protocol is dropped with an error wrapping
// ErrMalformed, ErrNotMember or an order error. No input makes Step panic.
func (n *Node) Step(m Message) error {
	if n.stopped != nil {
		return ErrStopped
	}
	if m.To != n.self.ID || m.From == n.self.ID || m.From == peer.None {
		return fmt.Errorf("%w: %s->%s at %s", ErrMalformed, m.From, m.To, n.self.ID)
	}
	if n.det != nil {
		n.det.Heard(m.From)
	}
	err := n.handle(m)
	n.processLocal()
	return err
}

func (n *Node) handle(m Message) error {
	if n.view.ID != 0 && m.View > n.view.ID && n.rankOf(m.From) >= 0 && m.Type != MsgDecide {
		n.query(m.From)
	}
	switch m.Type {
	case MsgOrder:
		return n.stepOrder(m)
	case MsgLiveness:
		return n.stepLiveness(m)
	case MsgPrepare:
		return n.stepPrepare(m)
	case MsgPromise:
		return n.stepPromise(m)
	case MsgReject:
		n.stepReject(m)
	case MsgAccept:
		return n.stepAccept(m)
	case MsgAccepted:
		n.stepAccepted(m)
	case MsgDecide:
		return n.stepDecide(m)
	case MsgFetch:
		n.stepFetch(m)
	case MsgForward:
		return n.stepForward(m)
	case MsgJoin:
		n.stepJoin(m)
	case MsgLeave:
		n.stepLeave(m)
	case MsgNotice:
		return n.stepNotice(m)
	case MsgTransferRequest:
		n.stepTransferRequest(m)
	case MsgChunk:
		n.stepChunk(m)
	case MsgChunkAck:
		n.stepChunkAck(m)
	default:
		return fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	return nil
}

// query asks a member that is in a later view what our view's change
// decided (the Decide may have been lost), at most once per RetryTicks.
func (n *Node) query(to peer.ID) {
	if n.now < n.queryTick {
		return
	}
	n.queryTick = n.now + uint64(n.cfg.RetryTicks)
	n.send(Message{Type: MsgPrepare, To: to, View: n.view.ID})
}

func (n *Node) stepOrder(m Message) error {
	if n.view.ID == 0 || m.View != n.view.ID || m.Order.View != m.View {
		return nil // another view's stream: stale, or ahead of us (order retransmits)
	}
	if n.rankOf(m.From) < 0 {
		return fmt.Errorf("%w: order message from %s", ErrNotMember, m.From)
	}
	om := m.Order
	om.From, om.To = m.From, m.To
	if err := n.ord.Step(om); err != nil && err != order.ErrFinished {
		return fmt.Errorf("vsync: %w", err)
	}
	return nil
}

func (n *Node) stepLiveness(m Message) error {
	if n.view.ID == 0 {
		return nil
	}
	if n.rankOf(m.From) < 0 {
		// A process outside our view heartbeats us: it may be a member
		// we excluded that does not know yet.
		if m.Live.Type == liveness.Heartbeat && m.View < n.view.ID {
			n.send(Message{Type: MsgNotice, To: m.From, View: n.view.ID, Next: n.view})
		}
		return nil
	}
	lm := m.Live
	if m.View != n.view.ID && (lm.Type == liveness.PingReq || lm.Type == liveness.IndirectAck) {
		// About a subject of the sender's view, which is not ours: the
		// sender has already heard from us (Step), nothing more to do.
		return nil
	}
	lm.From, lm.To = m.From, m.To
	if err := n.det.Step(lm); err != nil {
		return fmt.Errorf("vsync: %w", err)
	}
	n.drainDetector()
	return nil
}

// stepNotice: a member of a later view tells us its view. If this
// incarnation is not in it, we were excluded (a member never re-enters a
// view under the same incarnation); a joiner in it installs it.
func (n *Node) stepNotice(m Message) error {
	if err := m.Next.validate(n.cfg.MembersMax); err != nil {
		return err
	}
	if m.Next.ID == 0 {
		return fmt.Errorf("%w: notice of view 0", ErrMalformed)
	}
	switch {
	case n.view.ID == 0:
		if m.Next.Contains(n.self) {
			return n.install(m.Next)
		}
	case m.Next.ID > n.view.ID && !m.Next.Contains(n.self):
		n.stop(ErrExcluded)
	}
	return nil
}

func (n *Node) stop(reason error) {
	if n.stopped != nil {
		return
	}
	n.stopped = reason
	n.stopOut = reason
	n.local = nil
}

// Tick advances time by one tick.
func (n *Node) Tick() {
	if n.stopped != nil {
		return
	}
	n.now++
	if n.view.ID == 0 {
		if n.now >= n.joinTick {
			n.sendJoin()
		}
		return
	}
	n.ord.Tick()
	n.det.Tick()
	n.drainDetector()
	n.maybeResetDetector()
	if n.leaving && n.now >= n.leaveTick {
		n.sendLeave()
	}
	n.tickProposal()
	n.tickFetch()
	n.tickTransfers()
	n.processLocal()
}

// drainDetector moves the detector's output out: messages to send, and
// verdicts into the faulty set (which the proposer reads).
func (n *Node) drainDetector() {
	if !n.det.HasReady() {
		return
	}
	rd := n.det.Ready()
	for _, lm := range rd.Messages {
		n.send(Message{Type: MsgLiveness, To: lm.To, View: n.view.ID, Live: lm})
	}
	for _, id := range rd.Faulty {
		n.faulty = n.faulty.Add(id)
	}
	n.det.Advance(rd)
}

// maybeResetDetector gives a member that holds a majority of its view
// faulty a fresh detector every ChangeTimeoutTicks. Verdicts are final for
// a detector, and with a majority faulty this member can change nothing;
// if the verdicts came from a partition that has healed, the fresh
// detector finds the members alive and the group can move on. If they are
// really gone, the verdicts come back and nothing is lost.
func (n *Node) maybeResetDetector() {
	if len(n.view.Members)-n.faulty.Len() >= n.majority() || n.now-n.detResetTick < uint64(n.cfg.ChangeTimeoutTicks) {
		return
	}
	set, err := peer.NewSet(n.view.IDs()...)
	invariant.Check(err == nil, "vsync: view %s: %v", n.view, err)
	det, err := liveness.New(n.cfg.Liveness, n.self.ID, set)
	invariant.Check(err == nil, "vsync: detector for %s: %v", n.view, err)
	n.det, n.faulty, n.detResetTick = det, peer.Set{}, n.now
	n.prop = nil
}

func (n *Node) sendJoin() {
	to := n.contacts[n.joinAttempt%len(n.contacts)]
	n.joinAttempt++
	n.joinTick = n.now + uint64(n.cfg.RetryTicks)
	n.out = append(n.out, Message{Type: MsgJoin, From: n.self.ID, To: to, Member: n.self})
}

func (n *Node) sendLeave() {
	n.leaveTick = n.now + uint64(n.cfg.RetryTicks)
	n.send(Message{Type: MsgLeave, To: n.acting(), View: n.view.ID, Member: n.self})
}

// stepJoin: the acting proposer queues the request for the next change;
// another member forwards a direct request to it once (a forwarded request
// is not forwarded again, so no request loops; the joiner retries).
func (n *Node) stepJoin(m Message) {
	j := m.Member
	if n.view.ID == 0 || j.ID == peer.None || (m.From != j.ID && n.rankOf(m.From) < 0) {
		return
	}
	if cur, ok := n.view.Member(j.ID); ok && cur.Incarnation >= j.Incarnation {
		if cur == j {
			// Already in: the Decide was lost. Tell it the view.
			n.send(Message{Type: MsgNotice, To: j.ID, View: n.view.ID, Next: n.view})
		}
		return
	}
	if acting := n.acting(); acting != n.self.ID {
		if m.From == j.ID {
			n.send(Message{Type: MsgJoin, To: acting, View: n.view.ID, Member: j})
		}
		return
	}
	for i, p := range n.joins {
		if p.ID == j.ID {
			n.joins[i].Incarnation = max(p.Incarnation, j.Incarnation)
			return
		}
	}
	if len(n.joins) < n.cfg.JoinsPendingMax {
		n.joins = append(n.joins, j)
	}
}

func (n *Node) stepLeave(m Message) {
	l := m.Member
	if n.view.ID == 0 || m.View != n.view.ID || !n.view.Contains(l) || n.rankOf(m.From) < 0 {
		return
	}
	if acting := n.acting(); acting != n.self.ID {
		if m.From == l.ID {
			n.send(Message{Type: MsgLeave, To: acting, View: n.view.ID, Member: l})
		}
		return
	}
	if !slices.Contains(n.leaves, l) {
		n.leaves = append(n.leaves, l)
	}
}

// install makes next the current view: a fresh order instance and failure
// detector, fresh acceptor state. The old view's output must be drained.
func (n *Node) install(next View) error {
	ids := next.IDs()
	ord, err := order.New(n.cfg.Order, next.ID, ids, n.self.ID)
	if err != nil {
		return fmt.Errorf("%w: view %s: %w", ErrMalformed, next, err)
	}
	set, err := peer.NewSet(ids...)
	if err != nil {
		return fmt.Errorf("%w: view %s: %w", ErrMalformed, next, err)
	}
	det, err := liveness.New(n.cfg.Liveness, n.self.ID, set)
	if err != nil {
		return fmt.Errorf("%w: view %s: %w", ErrMalformed, next, err)
	}
	first := n.view.ID == 0
	if n.ord != nil {
		n.drainOrder()
	}
	n.prev, n.prevView, n.prevDecision = n.ord, n.view, n.decided
	n.view = View{ID: next.ID, Members: slices.Clone(next.Members)}
	n.ord, n.det, n.faulty, n.detResetTick = ord, det, peer.Set{}, n.now
	n.delivered = make([]uint64, len(next.Members))
	n.promised, n.acceptedBallot, n.accepted, n.pendingAccept = Ballot{}, Ballot{}, nil, nil
	n.decided, n.prop, n.fetch, n.pausedTick, n.proposeTick = nil, nil, nil, 0, 0
	n.joins = slices.DeleteFunc(n.joins, func(j peer.Member) bool {
		cur, ok := next.Member(j.ID)
		return ok && cur.Incarnation >= j.Incarnation
	})
	n.leaves = slices.DeleteFunc(n.leaves, func(l peer.Member) bool { return !next.Contains(l) })
	if !(n.plant.hideSecondView && next.ID == 2) {
		n.viewChanges = append(n.viewChanges, ViewChange{View: n.view, Rank: n.rankOf(n.self.ID)})
	}
	if n.plant.reinstall {
		n.viewChanges = append(n.viewChanges, ViewChange{View: n.view, Rank: n.rankOf(n.self.ID)})
	}
	n.sessions = slices.DeleteFunc(n.sessions, func(s *session) bool { return !next.Contains(s.member) })
	if first && !n.xfer.restored {
		n.startTransfer()
	}
	return nil
}

// HasReady reports whether Ready has anything to hand out.
func (n *Node) HasReady() bool {
	return len(n.out) > 0 || len(n.deliveries) > 0 || len(n.viewChanges) > 0 || len(n.transfers) > 0 ||
		len(n.chunks) > 0 || (n.stopOut != nil && !n.stopTaken) || (n.stopped == nil && n.ord != nil && n.ord.HasReady())
}

// drainOrder moves the order instance's output out: messages wrapped for
// the wire, deliveries handed out (or held back at a joiner).
func (n *Node) drainOrder() {
	rd := n.ord.Ready()
	for _, om := range rd.Messages {
		n.out = append(n.out, Message{Type: MsgOrder, From: n.self.ID, To: om.To, View: om.View, Order: om})
	}
	for _, d := range rd.Deliveries {
		n.handOut(Delivery{View: n.ord.View(), Delivery: d})
	}
	n.ord.Advance(rd)
}

// Ready returns the output accumulated since the last Advance. The slices
// are the caller's until Advance; the Node never modifies them before, and
// reuses the arrays of Messages and Deliveries after.
func (n *Node) Ready() Ready {
	if n.ord != nil && n.stopped == nil {
		n.drainOrder()
	}
	n.fillPositions()
	rd := Ready{
		Messages:             n.out[:len(n.out):len(n.out)],
		Deliveries:           n.deliveries[:len(n.deliveries):len(n.deliveries)],
		ViewChanges:          n.viewChanges[:len(n.viewChanges):len(n.viewChanges)],
		TransferInstructions: n.transfers[:len(n.transfers):len(n.transfers)],
		Chunks:               n.chunks[:len(n.chunks):len(n.chunks)],
	}
	if !n.stopTaken {
		rd.Stopped = n.stopOut
	}
	return rd
}

// Advance acknowledges rd, the value of the last Ready call: its messages
// were handed to the transport, its deliveries, view changes and chunks
// applied, and its transfer instructions' snapshots taken. Output produced
// since that Ready is kept for the next one.
func (n *Node) Advance(rd Ready) {
	invariant.Check(len(rd.Messages) <= len(n.out) && len(rd.Deliveries) <= len(n.deliveries) &&
		len(rd.ViewChanges) <= len(n.viewChanges) && len(rd.TransferInstructions) <= len(n.transfers) &&
		len(rd.Chunks) <= len(n.chunks), "vsync: Advance with more than Ready handed out")
	// The two busy outputs reuse their arrays once taken whole (the
	// slices of rd are the caller's only until Advance): a member under
	// load would otherwise regrow them for every Ready.
	n.out = reuse(n.out, len(rd.Messages))
	n.deliveries = reuse(n.deliveries, len(rd.Deliveries))
	n.viewChanges = clip(n.viewChanges[len(rd.ViewChanges):])
	n.transfers = clip(n.transfers[len(rd.TransferInstructions):])
	n.chunks = clip(n.chunks[len(rd.Chunks):])
	if rd.Stopped != nil {
		n.stopTaken = true
	}
	for _, c := range rd.Chunks {
		if c.Last && n.stopped == nil {
			n.restoreDone()
		}
	}
}

// reuseCapMax bounds the capacity Advance keeps for reuse: a burst that
// grew a slice beyond it gives the array back to the garbage collector.
const reuseCapMax = 4096

// reuse drops the first taken elements of s, reusing its array when
// nothing is left; the old elements are cleared so they keep nothing alive.
func reuse[T any](s []T, taken int) []T {
	if taken < len(s) {
		return s[taken:]
	}
	if cap(s) > reuseCapMax {
		return nil
	}
	clear(s)
	return s[:0]
}

func clip[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// handOut passes a delivery to the application: counted in the view's
// delivered vector (the state transfer position), then emitted, held back
// (joiner not restored) or skipped (covered by the restored state).
func (n *Node) handOut(d Delivery) {
	if d.View == n.view.ID {
		if r := n.rankOf(d.Sender); r >= 0 {
			n.delivered[r] = d.Seq
		}
	}
	if n.plant.flushInNextView && n.ord != nil && n.ord.Finished() && n.decided != nil {
		d.View = n.decided.Next.ID
	}
	if !n.xfer.restored {
		n.buffer(d)
		return
	}
	if n.xfer.covered(d) {
		return
	}
	n.emit(d)
}

func (n *Node) emit(d Delivery) {
	switch {
	case n.plant.duplicate && d.Seq == 2:
		n.deliveries = append(n.deliveries, d)
	case n.plant.skipOwnFirst && d.Seq == 1 && d.Sender == n.self.ID:
		return
	case n.plant.skipFourth && d.Seq == 4 && n.rankOf(n.self.ID)%2 == 1:
		return
	case n.plant.corrupt && d.Seq == 3:
		d.Payload = append([]byte("corrupt:"), d.Payload...)
	case n.plant.swapTotal && n.rankOf(n.self.ID)%2 == 1 && d.Order == order.Total && len(n.deliveries) > 0:
		last := &n.deliveries[len(n.deliveries)-1]
		if last.Order == order.Total && last.View == d.View && last.Sender != d.Sender {
			n.deliveries = append(n.deliveries, *last)
			*last = d
			return
		}
	}
	n.deliveries = append(n.deliveries, d)
}
