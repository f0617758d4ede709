package order

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vclock"
	"github.com/chorus-project/chorus/internal/wire"
)

// WireKind is the envelope kind under which a shell sends an encoded
// Message (the 0x02xx range belongs to group communication; see wire.Kind).
const WireKind wire.Kind = 0x0210

// Order is the delivery guarantee a message asks for.
type Order uint8

const (
	// FIFO delivers each sender's messages in the order it sent them.
	FIFO Order = 1 + iota
	// Causal also waits for every message the sender had delivered when
	// it sent (vector timestamps).
	Causal
	// Total delivers in the one global order the sequencer (rank 0)
	// stamps, the same at every member.
	Total
	// Safe is Total, and delivered only once every member of the view has
	// received the message (uniform delivery).
	Safe
)

func (o Order) valid() bool { return o >= FIFO && o <= Safe }

// sequenced reports whether the sequencer orders messages of this kind.
func (o Order) sequenced() bool { return o == Total || o == Safe }

func (o Order) String() string {
	switch o {
	case FIFO:
		return "fifo"
	case Causal:
		return "causal"
	case Total:
		return "total"
	case Safe:
		return "safe"
	}
	return "Order(" + strconv.Itoa(int(o)) + ")"
}

// ParseOrder is the inverse of Order.String.
func ParseOrder(s string) (Order, error) {
	for o := FIFO; o <= Safe; o++ {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("order: unknown order %q", s)
}

// MessageType says what a Message carries.
type MessageType uint8

const (
	// MsgData carries one multicast message: Sender, Seq, StableSeq,
	// Order, Clock (Causal only) and Payload. The original sender sends
	// it to every member; any holder retransmits it on a NAK.
	MsgData MessageType = 1 + iota
	// MsgNak asks To to retransmit Sender's messages whose seqs lie in
	// Ranges.
	MsgNak
	// MsgOrder is a sequencer batch: Entries[i] has global sequence
	// number Global+i. The sequencer sends it; any holder retransmits.
	MsgOrder
	// MsgOrderNak asks To for the ordering entries of the globals in
	// Ranges.
	MsgOrderNak
	// MsgStable is the stability gossip: From's Received and Delivered
	// vectors (by rank) and Ordered, its highest contiguous global.
	MsgStable
)

const msgTypeMax = MsgStable

func (t MessageType) String() string {
	switch t {
	case MsgData:
		return "data"
	case MsgNak:
		return "nak"
	case MsgOrder:
		return "order"
	case MsgOrderNak:
		return "order-nak"
	case MsgStable:
		return "stable"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// Ref names one message of the view: its original sender and the sender's
// sequence number.
type Ref struct {
	Sender peer.ID
	Seq    uint64
}

func (r Ref) String() string { return fmt.Sprintf("%s.%d", r.Sender, r.Seq) }

// Range is the inclusive range of sequence numbers [First, Last].
type Range struct {
	First, Last uint64
}

func (r Range) String() string {
	if r.First == r.Last {
		return strconv.FormatUint(r.First, 10)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Message is one message between two members of a view. Only the fields of
// its Type are meaningful (see MessageType); the codec writes only those.
// From and To travel in the envelope, not in the encoded message.
type Message struct {
	Type     MessageType
	View     uint64
	From, To peer.ID

	// MsgData and MsgNak.
	Sender peer.ID
	// MsgData.
	Seq uint64
	// StableSeq is the highest of Sender's seqs that the sender knew every
	// member had delivered when it sent the message. A sender never has
	// more than SendWindowMax messages above it (Seq-StableSeq <=
	// SendWindowMax), which bounds every receiver's buffer for it.
	StableSeq uint64
	Order     Order
	Clock     vclock.Clock // Causal only
	Payload   []byte

	// MsgNak and MsgOrderNak: ascending, disjoint.
	Ranges []Range

	// MsgOrder.
	Global  uint64
	Entries []Ref

	// MsgStable.
	Received  []uint64
	Delivered []uint64
	Ordered   uint64
}

func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s v%d", m.From, m.To, m.Type, m.View)
	switch m.Type {
	case MsgData:
		fmt.Fprintf(&b, " %s.%d %s", m.Sender, m.Seq, m.Order)
		if m.Order == Causal {
			fmt.Fprintf(&b, " %s", m.Clock)
		}
		fmt.Fprintf(&b, " stable=%d %q", m.StableSeq, m.Payload)
	case MsgNak:
		fmt.Fprintf(&b, " %s %v", m.Sender, m.Ranges)
	case MsgOrder:
		fmt.Fprintf(&b, " g%d %v", m.Global, m.Entries)
	case MsgOrderNak:
		fmt.Fprintf(&b, " %v", m.Ranges)
	case MsgStable:
		fmt.Fprintf(&b, " recv=%v deliv=%v ord=%d", m.Received, m.Delivered, m.Ordered)
	}
	return b.String()
}

// Delivery is one message handed to the application.
type Delivery struct {
	Sender peer.ID
	Seq    uint64
	Order  Order
	// Global is the sequencer's global sequence number of a Total or Safe
	// message, and 0 for FIFO and Causal messages and for a Total or Safe
	// message that FinishFlush delivered without one (its ordering died
	// with the sequencer).
	Global  uint64
	Clock   vclock.Clock // Causal only
	Payload []byte
}

func (d Delivery) String() string {
	s := fmt.Sprintf("%s.%d %s", d.Sender, d.Seq, d.Order)
	if d.Global != 0 {
		s += " g" + strconv.FormatUint(d.Global, 10)
	}
	return s + " " + strconv.Quote(string(d.Payload))
}

// Digest is what a member holds, for the flush: Received[r] is the highest
// seq of the member of rank r such that this member holds (or has delivered)
// every message up to it, and Ordered the highest global sequence number up
// to which it holds every ordering entry. A cut has the same shape: the
// survivors' agreed set of messages (see MaxDigest).
type Digest struct {
	Received []uint64
	Ordered  uint64
}

func (d Digest) String() string { return fmt.Sprintf("recv=%v ord=%d", d.Received, d.Ordered) }

// MaxDigest returns the element-wise maximum of digests of one view: the
// cut that contains every message some survivor holds contiguously. It
// reports ErrMalformed if the digests differ in length (one came from
// another view or a corrupt peer).
func MaxDigest(ds ...Digest) (Digest, error) {
	if len(ds) == 0 {
		return Digest{}, fmt.Errorf("%w: no digests", ErrMalformed)
	}
	out := Digest{Received: make([]uint64, len(ds[0].Received))}
	for _, d := range ds {
		if len(d.Received) != len(out.Received) {
			return Digest{}, fmt.Errorf("%w: digests of %d and %d members", ErrMalformed, len(d.Received), len(out.Received))
		}
		for i, v := range d.Received {
			out.Received[i] = max(out.Received[i], v)
		}
		out.Ordered = max(out.Ordered, d.Ordered)
	}
	return out, nil
}

// Missing is what a member lacks of a cut: the data messages, and the
// ranges of globals whose ordering entries it does not hold.
type Missing struct {
	Data   []Ref
	Orders []Range
}

// Empty reports whether nothing is missing.
func (m Missing) Empty() bool { return len(m.Data) == 0 && len(m.Orders) == 0 }
