package order

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vclock"
)

// ref is a Ref with the sender's rank instead of its id.
type ref struct {
	rank int
	seq  uint64
}

// sender is what a member knows of one sender's stream (its own included).
type sender struct {
	// held are the messages in (gcSeq, stableD+SendWindowMax]: delivered
	// ones kept for retransmission until stable, and received ones
	// waiting for delivery.
	held   map[uint64]Message
	contig uint64 // every seq up to contig is held or was delivered
	known  uint64 // highest seq known to exist (for gap detection)
	// stableHint is the highest StableSeq the sender announced (clamped to
	// delivered), stableD the highest seq every member has delivered, and
	// stableR the highest seq every member has received.
	stableHint, stableD, stableR uint64
	gcSeq                        uint64 // held entries up to gcSeq are gone
	sequenced                    uint64 // sequencer: seqs up to this one are ordered or need no order
	nak                          nakTimer
}

// report is the latest stability gossip from one member, merged with max
// (every field only grows, so a late, reordered gossip changes nothing).
type report struct {
	received, delivered []uint64
	ordered             uint64
}

// nakTimer tracks one gap: its age in ticks without progress, the
// contiguous point at the last check, and how many NAKs it has cost.
type nakTimer struct {
	ageTicks int
	mark     uint64
	attempts int
}

// plants are deliberate bugs that tests switch on to show that their
// checkers catch them. They are never set outside tests.
type plants struct {
	skipCausalWait     bool // deliver causal messages without waiting for dependencies
	skipSafeWait       bool // deliver safe messages before they are stable
	sequencerReorder   bool // sequencer swaps adjacent entries in batches to odd ranks
	duplicateDelivery  bool // hand seq 2 of every sender out twice
	corruptPayload     bool // hand seq 3 of every sender out with a changed payload
	swapFIFO           bool // hand seqs 2 and 3 of every sender out in the wrong order
	ignoreNaks         bool // never answer a NAK
	flushSkipRemainder bool // FinishFlush forgets the unordered remainder
}

// Instance is the ordering core of one member in one view. It is not safe
// for concurrent use; see the package comment for the caller's contract.
type Instance struct {
	cfg     Config
	view    uint64
	members []peer.ID // by rank
	rankOf  map[peer.ID]int
	self    int // own rank
	now     uint64

	senders   []sender
	delivered vclock.Clock // by rank: the highest seq delivered from each sender
	reports   []report     // by rank; reports[self] is unused
	// reported is what this member's last stability report said (nil
	// vectors before the first): the base of ReportEveryMessages.
	reported report

	// The global order. orders holds the entries with global numbers in
	// (gcGlobal, ...]; orderOf is its inverse.
	orders       map[uint64]ref
	orderOf      map[ref]uint64
	contigGlobal uint64 // every global up to this one is held or gone
	knownGlobal  uint64 // highest global known to exist
	deliveredG   uint64 // highest global delivered (or skipped in a flush)
	stableGlobal uint64 // every member holds the entries up to this one
	gcGlobal     uint64
	orderNak     nakTimer
	// The sequencer's batch: entries numbered after pendingFirst-1, not
	// yet sent.
	pending      []ref
	pendingFirst uint64

	paused   bool
	flushing bool   // inside FinishFlush
	finished bool   // FinishFlush done: nothing more is delivered
	cut      Digest // valid while flushing

	out        []Message
	deliveries []Delivery
	stash      *Delivery // plant.swapFIFO
	plant      plants
}

// New returns the instance of member self in view (id view) whose members,
// in rank order, are members. Rank 0 is the sequencer.
func New(cfg Config, view uint64, members []peer.ID, self peer.ID) (*Instance, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := len(members)
	if n < 1 || n > MembersMax {
		return nil, fmt.Errorf("%w: %d members, want 1 to %d", ErrConfig, n, MembersMax)
	}
	if n*cfg.SendWindowMax > orderEntriesPerViewMax {
		return nil, fmt.Errorf("%w: %d members × window %d over %d", ErrConfig, n, cfg.SendWindowMax, orderEntriesPerViewMax)
	}
	e := &Instance{
		cfg:       cfg,
		view:      view,
		members:   append([]peer.ID(nil), members...),
		rankOf:    make(map[peer.ID]int, n),
		senders:   make([]sender, n),
		delivered: vclock.New(n),
		reports:   make([]report, n),
		orders:    make(map[uint64]ref),
		orderOf:   make(map[ref]uint64),
	}
	for r, id := range members {
		if id == peer.None {
			return nil, fmt.Errorf("%w: member id 0 at rank %d", ErrConfig, r)
		}
		if _, dup := e.rankOf[id]; dup {
			return nil, fmt.Errorf("%w: member %s twice", ErrConfig, id)
		}
		e.rankOf[id] = r
		e.senders[r].held = make(map[uint64]Message)
		e.reports[r] = report{received: make([]uint64, n), delivered: make([]uint64, n)}
	}
	r, ok := e.rankOf[self]
	if !ok {
		return nil, fmt.Errorf("%w: self %s not in the view", ErrConfig, self)
	}
	e.self = r
	return e, nil
}

// View is the view id.
func (e *Instance) View() uint64 { return e.view }

// Members returns the view's members in rank order.
func (e *Instance) Members() []peer.ID { return append([]peer.ID(nil), e.members...) }

func (e *Instance) n() int              { return len(e.members) }
func (e *Instance) window() uint64      { return uint64(e.cfg.SendWindowMax) }
func (e *Instance) isSequencer() bool   { return e.self == 0 }
func (e *Instance) orderWindow() uint64 { return uint64(e.n()) * e.window() }

// orderEntriesMax bounds the ordering entries a member keeps: those not yet
// known to be held by everyone and those not yet delivered here. Each
// refers to a message that some member has not delivered, so it lies in its
// sender's window: at most members × window of each kind.
func (e *Instance) orderEntriesMax() int { return 2 * e.n() * e.cfg.SendWindowMax }

// Send multicasts payload to the view with the given order and returns its
// sequence number. It emits one MsgData per other member and delivers to
// self through the same path as everyone else. Send keeps payload: the
// caller must not modify it afterwards.
func (e *Instance) Send(payload []byte, o Order) (uint64, error) {
	switch {
	case e.finished:
		return 0, ErrFinished
	case e.paused:
		return 0, ErrPaused
	case !o.valid():
		return 0, fmt.Errorf("%w: %d", ErrInvalidOrder, o)
	case len(payload) > e.cfg.PayloadBytesMax:
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, len(payload), e.cfg.PayloadBytesMax)
	}
	s := &e.senders[e.self]
	if s.contig-s.stableD >= e.window() {
		return 0, fmt.Errorf("%w: %d unstable messages", ErrWindowFull, s.contig-s.stableD)
	}
	seq := s.contig + 1
	m := Message{
		Type: MsgData, View: e.view, From: e.members[e.self],
		Sender: e.members[e.self], Seq: seq, StableSeq: s.stableD, Order: o, Payload: payload,
	}
	if o == Causal {
		// Everything delivered here happened before this send; the own
		// entry is the message's own seq (vclock package comment).
		m.Clock = e.delivered.Clone()
		m.Clock[e.self] = seq
	}
	e.store(e.self, m)
	for r, id := range e.members {
		if r != e.self {
			out := m
			out.To = id
			e.out = append(e.out, out)
		}
	}
	e.progress()
	return seq, nil
}

// Step handles a message from another member. Stale input (another view, a
// seq already held) is dropped first, with ErrWrongView or silently; a
// message that breaks the protocol's rules is dropped with an error wrapping
// ErrMalformed or ErrUnknownMember. No input makes Step panic.
func (e *Instance) Step(m Message) error {
	if m.View != e.view {
		return fmt.Errorf("%w: view %d, this is view %d", ErrWrongView, m.View, e.view)
	}
	if e.finished {
		return ErrFinished
	}
	from, ok := e.rankOf[m.From]
	if !ok || from == e.self {
		return fmt.Errorf("%w: from %s", ErrUnknownMember, m.From)
	}
	if m.To != e.members[e.self] {
		return fmt.Errorf("%w: addressed to %s", ErrMalformed, m.To)
	}
	var err error
	switch m.Type {
	case MsgData:
		err = e.stepData(m)
	case MsgNak:
		err = e.stepNak(from, m)
	case MsgOrder:
		err = e.stepOrder(m)
	case MsgOrderNak:
		err = e.stepOrderNak(from, m)
	case MsgStable:
		err = e.stepStable(from, m)
	default:
		err = fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	e.progress()
	return err
}

// stepData validates and stores a data message.
func (e *Instance) stepData(m Message) error {
	r, ok := e.rankOf[m.Sender]
	if !ok {
		return fmt.Errorf("%w: sender %s", ErrUnknownMember, m.Sender)
	}
	switch {
	case m.Seq == 0 || m.StableSeq >= m.Seq || m.Seq-m.StableSeq > e.window():
		return fmt.Errorf("%w: seq %d with stable seq %d and window %d", ErrMalformed, m.Seq, m.StableSeq, e.window())
	case !m.Order.valid():
		return fmt.Errorf("%w: order %d", ErrMalformed, m.Order)
	case (m.Order == Causal) != (m.Clock != nil) || (m.Clock != nil && len(m.Clock) != e.n()):
		return fmt.Errorf("%w: %s message with a clock of %d entries", ErrMalformed, m.Order, len(m.Clock))
	case m.Order == Causal && m.Clock[r] != m.Seq:
		return fmt.Errorf("%w: causal %s.%d stamped %d for its sender", ErrMalformed, m.Sender, m.Seq, m.Clock[r])
	case len(m.Payload) > e.cfg.PayloadBytesMax:
		return fmt.Errorf("%w: payload of %d bytes", ErrMalformed, len(m.Payload))
	}
	s := &e.senders[r]
	// The sender's stability hint can only be believed up to what this
	// member delivered (everyone includes us); an honest one never goes
	// beyond.
	if h := min(m.StableSeq, e.delivered[r]); h > s.stableHint {
		s.stableHint = h
		if h > s.stableD {
			s.stableD = h
			e.gc() // make room before storing
		}
	}
	if m.Seq <= s.contig || e.holds(r, m.Seq) {
		return nil // duplicate
	}
	if m.Seq > s.stableD+e.window() {
		// Only a sender that lied about StableSeq gets here.
		return fmt.Errorf("%w: %s.%d beyond the window above %d", ErrMalformed, m.Sender, m.Seq, s.stableD)
	}
	m.From, m.To = peer.None, peer.None
	e.store(r, m)
	return nil
}

func (e *Instance) holds(r int, seq uint64) bool {
	_, ok := e.senders[r].held[seq]
	return ok
}

// store keeps a data message that is new and within the window.
func (e *Instance) store(r int, m Message) {
	s := &e.senders[r]
	invariant.Check(m.Seq > s.contig && m.Seq > s.gcSeq && m.Seq <= s.stableD+e.window(),
		"order: store %d.%d outside (%d, %d+%d]", r, m.Seq, s.contig, s.stableD, e.window())
	s.held[m.Seq] = m
	s.known = max(s.known, m.Seq)
	for e.holds(r, s.contig+1) {
		s.contig++
	}
	invariant.Check(len(s.held) <= e.cfg.SendWindowMax, "order: %d messages held for rank %d, window %d", len(s.held), r, e.cfg.SendWindowMax)
}

// Tick advances time by one tick: stability gossip when due, NAKs for gaps
// that have lasted NakTicks.
func (e *Instance) Tick() {
	if e.finished {
		return
	}
	e.now++
	if e.now%uint64(e.cfg.StabilityTicks) == 0 {
		e.gossip()
	}
	e.nakGaps()
	e.nakOrders()
}

// progress runs the sequencer and delivery to a fixed point, then drops
// what has become stable.
func (e *Instance) progress() {
	for {
		e.computeStable()
		assigned := e.assignOrders()
		delivered := e.deliverAll()
		if !assigned && !delivered {
			break
		}
	}
	e.gc()
	if e.reportDue() {
		e.gossip()
	}
	invariant.Check(len(e.orders) <= e.orderEntriesMax(), "order: %d ordering entries, limit %d", len(e.orders), e.orderEntriesMax())
}

// HasReady reports whether Ready has anything to hand out.
func (e *Instance) HasReady() bool {
	return len(e.out) > 0 || len(e.deliveries) > 0 || len(e.pending) > 0
}

// Ready returns the output accumulated since the last Advance: messages to
// send and messages to deliver, each in order. It first seals the
// sequencer's pending ordering entries into batches, so everything the
// sequencer ordered between two Ready calls travels in as few MsgOrder
// messages as BatchEntriesMax allows. The slices are the caller's until
// Advance; the instance never modifies them before, and reuses their
// arrays after.
func (e *Instance) Ready() Ready {
	e.sealBatch()
	return Ready{Messages: e.out[:len(e.out):len(e.out)], Deliveries: e.deliveries[:len(e.deliveries):len(e.deliveries)]}
}

// Ready is the output of an instance. See the package comment for what the
// caller must do with it.
type Ready struct {
	// Messages must be sent, each to its To, in any order and best effort:
	// the protocol recovers from loss, duplication and reordering.
	Messages []Message
	// Deliveries must be applied in order.
	Deliveries []Delivery
}

// Advance acknowledges rd, the value of the last Ready call: its messages
// were handed to the transport and its deliveries applied. Output produced
// since that Ready is kept for the next one.
func (e *Instance) Advance(rd Ready) {
	invariant.Check(len(rd.Messages) <= len(e.out) && len(rd.Deliveries) <= len(e.deliveries),
		"order: Advance with %d messages and %d deliveries, %d and %d pending",
		len(rd.Messages), len(rd.Deliveries), len(e.out), len(e.deliveries))
	// Output produced after Ready stays (resliced, not copied down). When
	// everything was taken, which is the usual case, the arrays are
	// reused from the start, so a busy member does not regrow them for
	// every Ready: rd is the caller's only until Advance (see Ready). The
	// old elements are cleared so that they keep no payload alive.
	e.out = reuse(e.out, len(rd.Messages))
	e.deliveries = reuse(e.deliveries, len(rd.Deliveries))
}

// reuseCapMax bounds the capacity Advance keeps for reuse: a burst that
// grew a slice beyond it gives the array back to the garbage collector.
const reuseCapMax = 4096

// reuse drops the first taken elements of s, reusing its array when
// nothing is left.
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

func (e *Instance) send(to int, m Message) {
	m.View, m.From, m.To = e.view, e.members[e.self], e.members[to]
	e.out = append(e.out, m)
}
