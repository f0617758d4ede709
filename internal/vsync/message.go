package vsync

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chorus-project/chorus/internal/liveness"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// WireKind is the envelope kind of every vsync message, embedded order and
// liveness messages included (0x0231-0x023f are reserved for vsync).
const WireKind wire.Kind = 0x0230

// View is one membership of the group: its id and its members in join
// order. A member's rank is its index; rank 0 is the coordinator (and the
// sequencer of the view's order instance).
type View struct {
	ID      uint64
	Members []peer.Member
}

// Rank returns the rank of id in v, or -1.
func (v View) Rank(id peer.ID) int {
	for i, m := range v.Members {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// Member returns the member with id in v.
func (v View) Member(id peer.ID) (peer.Member, bool) {
	if r := v.Rank(id); r >= 0 {
		return v.Members[r], true
	}
	return peer.Member{}, false
}

// Contains reports whether m (this incarnation) is a member of v.
func (v View) Contains(m peer.Member) bool { return slices.Contains(v.Members, m) }

// IDs returns the member ids in rank order.
func (v View) IDs() []peer.ID {
	ids := make([]peer.ID, len(v.Members))
	for i, m := range v.Members {
		ids[i] = m.ID
	}
	return ids
}

// Equal reports whether both views have the same id and members.
func (v View) Equal(o View) bool { return v.ID == o.ID && slices.Equal(v.Members, o.Members) }

func (v View) String() string {
	s := make([]string, len(v.Members))
	for i, m := range v.Members {
		s[i] = m.String()
	}
	return fmt.Sprintf("v%d[%s]", v.ID, strings.Join(s, " "))
}

// validate checks a view from a peer: members without None or duplicate
// ids, at most membersMax of them.
func (v View) validate(membersMax int) error {
	if len(v.Members) == 0 || len(v.Members) > membersMax {
		return fmt.Errorf("%w: view of %d members", ErrMalformed, len(v.Members))
	}
	for i, m := range v.Members {
		if m.ID == peer.None {
			return fmt.Errorf("%w: member id 0 in view %d", ErrMalformed, v.ID)
		}
		for _, o := range v.Members[:i] {
			if o.ID == m.ID {
				return fmt.Errorf("%w: member %s twice in view %d", ErrMalformed, m.ID, v.ID)
			}
		}
	}
	return nil
}

// Ballot numbers the rounds of one view change's consensus: (Round,
// Proposer) compared lexicographically, so every ballot belongs to one
// member and two proposers never share one.
type Ballot struct {
	Round    uint64
	Proposer peer.ID
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool {
	return b.Round < o.Round || (b.Round == o.Round && b.Proposer < o.Proposer)
}

// IsZero reports whether b is the zero ballot (nothing promised or
// accepted).
func (b Ballot) IsZero() bool { return b == Ballot{} }

func (b Ballot) String() string { return fmt.Sprintf("(%d,%s)", b.Round, b.Proposer) }

// Value is what the consensus of a view change decides: the next view and
// the cut of the old view's messages every survivor delivers before
// installing it.
type Value struct {
	// Next is the next view (id = old id + 1).
	Next View
	// Cut is order.MaxDigest of the digests of the members the proposer
	// heard from: every message one of them held.
	Cut order.Digest
	// Holders[r] is a member whose digest reached Cut.Received[r], and
	// OrderHolder one whose digest reached Cut.Ordered: the first place
	// to fetch a missing message from.
	Holders     []peer.ID
	OrderHolder peer.ID
}

func (v Value) String() string {
	return fmt.Sprintf("%s cut=%s holders=%v/%s", v.Next, v.Cut, v.Holders, v.OrderHolder)
}

// MsgType says what a Message carries.
type MsgType uint8

// The message types. View is the id of the view the message belongs to:
// the view whose change it negotiates, or whose order instance, or the
// joiner's join view for state transfer.
const (
	// MsgOrder carries an order message of View (Order).
	MsgOrder MsgType = 1 + iota
	// MsgLiveness carries a liveness message (Live).
	MsgLiveness
	// MsgPrepare is phase 1 of the change of View with Ballot; it also
	// starts the flush: the receiver pauses its order instance.
	MsgPrepare
	// MsgPromise answers a Prepare: Digest (what the member holds),
	// Restored (whether it holds the application state: a joiner does
	// not until its transfer is done), and the value it accepted last
	// (AcceptedBallot, Value), if any.
	MsgPromise
	// MsgReject answers a Prepare or Accept of a ballot below the one
	// promised (Ballot is the promised one).
	MsgReject
	// MsgAccept is phase 2: accept Value with Ballot.
	MsgAccept
	// MsgAccepted answers an Accept: the member accepted Ballot's value
	// and holds the whole cut.
	MsgAccepted
	// MsgDecide announces that Value was chosen for the change of View.
	MsgDecide
	// MsgFetch asks for the messages Refs and ordering entries Ranges of
	// View's cut.
	MsgFetch
	// MsgForward carries order messages of View (Forwards) answering a
	// fetch.
	MsgForward
	// MsgJoin asks for Member to be added (sent by the joiner, forwarded
	// to the acting proposer).
	MsgJoin
	// MsgLeave asks for Member to be removed.
	MsgLeave
	// MsgNotice tells a process that is not in the sender's view (Next)
	// what that view is, so that an excluded member learns it.
	MsgNotice
	// MsgTransferRequest asks an old member to stream its state to the
	// joiner (From) of view View; Transfer numbers the attempt.
	MsgTransferRequest
	// MsgChunk is chunk Index of attempt Transfer. Chunk 0 also carries
	// the donor's position (PosView, Position). Last marks the end.
	MsgChunk
	// MsgChunkAck acknowledges every chunk below Index of attempt
	// Transfer.
	MsgChunkAck
)

const msgTypeMax = MsgChunkAck

var msgTypeNames = [...]string{"", "order", "liveness", "prepare", "promise", "reject", "accept", "accepted",
	"decide", "fetch", "forward", "join", "leave", "notice", "transfer-request", "chunk", "chunk-ack"}

func (t MsgType) String() string {
	if t >= 1 && t <= msgTypeMax {
		return msgTypeNames[t]
	}
	return "MsgType(" + strconv.Itoa(int(t)) + ")"
}

// Message is one vsync message. Only the fields of its Type are meaningful
// (see MsgType); the codec writes only those. From and To travel in the
// envelope.
type Message struct {
	Type     MsgType
	From, To peer.ID
	View     uint64

	Order order.Message    // MsgOrder (its From, To mirror the envelope)
	Live  liveness.Message // MsgLiveness (likewise)

	Ballot         Ballot       // prepare, promise, reject, accept, accepted
	Digest         order.Digest // promise
	Restored       bool         // promise: the member holds the application state
	AcceptedBallot Ballot       // promise
	Value          *Value       // promise (if accepted), accept, decide

	Refs   []order.Ref   // fetch
	Ranges []order.Range // fetch

	Forwards []order.Message // forward

	Member peer.Member // join, leave
	Next   View        // notice

	Transfer uint64      // transfer-request, chunk, chunk-ack
	Index    uint64      // chunk, chunk-ack
	Last     bool        // chunk
	Data     []byte      // chunk
	PosView  uint64      // chunk 0
	Position []order.Ref // chunk 0: per sender of PosView, the highest seq delivered
}

func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s v%d", m.From, m.To, m.Type, m.View)
	switch m.Type {
	case MsgOrder:
		fmt.Fprintf(&b, " {%s}", m.Order)
	case MsgLiveness:
		fmt.Fprintf(&b, " {%s}", m.Live)
	case MsgPrepare, MsgReject, MsgAccepted:
		fmt.Fprintf(&b, " %s", m.Ballot)
	case MsgPromise:
		fmt.Fprintf(&b, " %s %s", m.Ballot, m.Digest)
		if m.Value != nil {
			fmt.Fprintf(&b, " accepted %s %s", m.AcceptedBallot, *m.Value)
		}
	case MsgAccept:
		fmt.Fprintf(&b, " %s %s", m.Ballot, *m.Value)
	case MsgDecide:
		fmt.Fprintf(&b, " %s", *m.Value)
	case MsgFetch:
		fmt.Fprintf(&b, " %v %v", m.Refs, m.Ranges)
	case MsgForward:
		fmt.Fprintf(&b, " %d messages", len(m.Forwards))
	case MsgJoin, MsgLeave:
		fmt.Fprintf(&b, " %s", m.Member)
	case MsgNotice:
		fmt.Fprintf(&b, " %s", m.Next)
	case MsgTransferRequest:
		fmt.Fprintf(&b, " t%d", m.Transfer)
	case MsgChunk:
		fmt.Fprintf(&b, " t%d #%d %d bytes", m.Transfer, m.Index, len(m.Data))
		if m.Last {
			b.WriteString(" last")
		}
		if m.Index == 0 {
			fmt.Fprintf(&b, " pos=v%d%v", m.PosView, m.Position)
		}
	case MsgChunkAck:
		fmt.Fprintf(&b, " t%d <%d", m.Transfer, m.Index)
	}
	return b.String()
}
