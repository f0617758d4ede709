package vsync

import (
	"encoding/binary"
	"fmt"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/liveness"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// AppendMessage appends the encoding of m (the format is in the package
// comment) to dst and returns the result. From and To are not encoded.
func AppendMessage(dst []byte, m Message) []byte {
	w := wire.NewBuffer(dst)
	w.Uint8(uint8(m.Type))
	w.Uvarint(m.View)
	switch m.Type {
	case MsgOrder:
		// The hot path: encode the order message in place, then put its
		// length in front (one move of the body instead of a buffer per
		// message).
		return appendLenPrefixed(w.Bytes(), func(b []byte) []byte { return order.AppendMessage(b, m.Order) })
	case MsgLiveness:
		w.LenBytes(liveness.AppendMessage(nil, m.Live))
	case MsgPrepare, MsgReject, MsgAccepted:
		appendBallot(w, m.Ballot)
	case MsgPromise:
		appendBallot(w, m.Ballot)
		appendDigest(w, m.Digest)
		w.Bool(m.Restored)
		w.Bool(m.Value != nil)
		if m.Value != nil {
			appendBallot(w, m.AcceptedBallot)
			appendValue(w, *m.Value)
		}
	case MsgAccept:
		appendBallot(w, m.Ballot)
		appendValue(w, *m.Value)
	case MsgDecide:
		appendValue(w, *m.Value)
	case MsgFetch:
		w.Uvarint(uint64(len(m.Refs)))
		for _, r := range m.Refs {
			w.Uvarint(uint64(r.Sender))
			w.Uvarint(r.Seq)
		}
		w.Uvarint(uint64(len(m.Ranges)))
		for _, r := range m.Ranges {
			w.Uvarint(r.First)
			w.Uvarint(r.Last)
		}
	case MsgForward:
		w.Uvarint(uint64(len(m.Forwards)))
		for _, f := range m.Forwards {
			w.LenBytes(order.AppendMessage(nil, f))
		}
	case MsgJoin, MsgLeave:
		appendMember(w, m.Member)
	case MsgNotice:
		appendView(w, m.Next)
	case MsgTransferRequest:
		w.Uvarint(m.Transfer)
	case MsgChunk:
		w.Uvarint(m.Transfer)
		w.Uvarint(m.Index)
		w.Bool(m.Last)
		w.LenBytes(m.Data)
		if m.Index == 0 {
			w.Uvarint(m.PosView)
			w.Uvarint(uint64(len(m.Position)))
			for _, r := range m.Position {
				w.Uvarint(uint64(r.Sender))
				w.Uvarint(r.Seq)
			}
		}
	case MsgChunkAck:
		w.Uvarint(m.Transfer)
		w.Uvarint(m.Index)
	default:
		invariant.Unreachable("vsync: encode of message type %d", m.Type)
	}
	return w.Bytes()
}

func appendBallot(w *wire.Buffer, b Ballot) {
	w.Uvarint(b.Round)
	w.Uvarint(uint64(b.Proposer))
}

func appendMember(w *wire.Buffer, m peer.Member) {
	w.Uvarint(uint64(m.ID))
	w.Uvarint(uint64(m.Incarnation))
}

func appendView(w *wire.Buffer, v View) {
	w.Uvarint(v.ID)
	w.Uvarint(uint64(len(v.Members)))
	for _, m := range v.Members {
		appendMember(w, m)
	}
}

func appendDigest(w *wire.Buffer, d order.Digest) {
	w.Uvarint(d.Ordered)
	w.Uvarint(uint64(len(d.Received)))
	for _, v := range d.Received {
		w.Uvarint(v)
	}
}

func appendValue(w *wire.Buffer, v Value) {
	invariant.Check(len(v.Holders) == len(v.Cut.Received), "vsync: %d holders for a cut of %d", len(v.Holders), len(v.Cut.Received))
	appendView(w, v.Next)
	appendDigest(w, v.Cut)
	for _, h := range v.Holders {
		w.Uvarint(uint64(h))
	}
	w.Uvarint(uint64(v.OrderHolder))
}

// DecodeMessage decodes a message that fills p exactly, within lim. From
// and To are left zero for the caller to set from the envelope (Step sets
// the embedded order and liveness messages' From and To from them). Every
// slice is copied, so p may be reused. Errors wrap ErrMalformed and, for
// codec failures, the wire error. Only the encoding is checked here; Step
// checks the message against the member's state.
func DecodeMessage(p []byte, lim Limits) (Message, error) {
	r := wire.NewReader(p)
	m := Message{Type: MsgType(r.Uint8()), View: r.Uvarint()}
	if r.Err() == nil && (m.Type < 1 || m.Type > msgTypeMax) {
		return Message{}, fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	var err error
	switch m.Type {
	case MsgOrder:
		if b := r.LenBytes(lim.orderMessageBytesMax()); r.Err() == nil {
			m.Order, err = order.DecodeMessage(b, lim.Order)
		}
	case MsgLiveness:
		if b := r.LenBytes(16); r.Err() == nil {
			m.Live, err = liveness.DecodeMessage(b)
		}
	case MsgPrepare, MsgReject, MsgAccepted:
		m.Ballot = readBallot(r)
	case MsgPromise:
		m.Ballot = readBallot(r)
		m.Digest = readDigest(r, lim.MembersMax)
		m.Restored = r.Bool()
		if r.Bool() {
			m.AcceptedBallot = readBallot(r)
			m.Value = readValue(r, lim.MembersMax)
		}
	case MsgAccept:
		m.Ballot = readBallot(r)
		m.Value = readValue(r, lim.MembersMax)
	case MsgDecide:
		m.Value = readValue(r, lim.MembersMax)
	case MsgFetch:
		m.Refs = readRefs(r, lim.RefsMax)
		if n := r.Count(lim.RefsMax, 2); n > 0 {
			m.Ranges = make([]order.Range, n)
			for i := range m.Ranges {
				m.Ranges[i] = order.Range{First: r.Uvarint(), Last: r.Uvarint()}
			}
		}
	case MsgForward:
		n := r.Count(forwardMessagesMax, 1)
		for range n {
			b := r.LenBytes(lim.orderMessageBytesMax())
			if r.Err() != nil {
				break
			}
			var f order.Message
			if f, err = order.DecodeMessage(b, lim.Order); err != nil {
				break
			}
			m.Forwards = append(m.Forwards, f)
		}
	case MsgJoin, MsgLeave:
		m.Member = readMember(r)
	case MsgNotice:
		m.Next = readView(r, lim.MembersMax)
	case MsgTransferRequest:
		m.Transfer = r.Uvarint()
	case MsgChunk:
		m.Transfer = r.Uvarint()
		m.Index = r.Uvarint()
		m.Last = r.Bool()
		if b := r.LenBytes(lim.ChunkBytesMax); len(b) > 0 {
			m.Data = append([]byte(nil), b...)
		}
		if m.Index == 0 {
			m.PosView = r.Uvarint()
			m.Position = readRefs(r, lim.MembersMax)
		}
	case MsgChunkAck:
		m.Transfer = r.Uvarint()
		m.Index = r.Uvarint()
	}
	if err != nil {
		return Message{}, fmt.Errorf("%w: %s: %w", ErrMalformed, m.Type, err)
	}
	if err := r.Done(); err != nil {
		return Message{}, fmt.Errorf("%w: %s: %w", ErrMalformed, m.Type, err)
	}
	if m.Value != nil {
		if err := m.Value.validate(lim.MembersMax); err != nil {
			return Message{}, err
		}
	}
	return m, nil
}

func readBallot(r *wire.Reader) Ballot {
	return Ballot{Round: r.Uvarint(), Proposer: peer.ID(r.Uvarint())}
}

func readMember(r *wire.Reader) peer.Member {
	return peer.Member{ID: peer.ID(r.Uvarint()), Incarnation: peer.Incarnation(r.Uvarint())}
}

func readView(r *wire.Reader, membersMax int) View {
	v := View{ID: r.Uvarint()}
	if n := r.Count(membersMax, 2); n > 0 {
		v.Members = make([]peer.Member, n)
		for i := range v.Members {
			v.Members[i] = readMember(r)
		}
	}
	return v
}

func readDigest(r *wire.Reader, membersMax int) order.Digest {
	d := order.Digest{Ordered: r.Uvarint()}
	n := r.Count(membersMax, 1)
	d.Received = make([]uint64, n)
	for i := range d.Received {
		d.Received[i] = r.Uvarint()
	}
	return d
}

func readValue(r *wire.Reader, membersMax int) *Value {
	v := &Value{Next: readView(r, membersMax), Cut: readDigest(r, membersMax)}
	v.Holders = make([]peer.ID, len(v.Cut.Received))
	for i := range v.Holders {
		v.Holders[i] = peer.ID(r.Uvarint())
	}
	v.OrderHolder = peer.ID(r.Uvarint())
	return v
}

func readRefs(r *wire.Reader, max int) []order.Ref {
	n := r.Count(max, 2)
	if n == 0 {
		return nil
	}
	refs := make([]order.Ref, n)
	for i := range refs {
		refs[i] = order.Ref{Sender: peer.ID(r.Uvarint()), Seq: r.Uvarint()}
	}
	return refs
}

// validate checks a decoded value on its own: a well-formed next view and
// a cut with at least one old member.
func (v Value) validate(membersMax int) error {
	if err := v.Next.validate(membersMax); err != nil {
		return err
	}
	if v.Next.ID < 2 || len(v.Cut.Received) == 0 {
		return fmt.Errorf("%w: value for view %d with a cut of %d members", ErrMalformed, v.Next.ID, len(v.Cut.Received))
	}
	return nil
}

// appendLenPrefixed appends what body appends to dst, preceded by its
// length as a uvarint: the encoding of wire.Buffer.LenBytes, without a
// temporary buffer.
func appendLenPrefixed(dst []byte, body func([]byte) []byte) []byte {
	start := len(dst)
	dst = body(dst)
	n := len(dst) - start
	var hdr [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(hdr[:], uint64(n))
	dst = append(dst, hdr[:k]...)
	copy(dst[start+k:], dst[start:start+n])
	copy(dst[start:], hdr[:k])
	return dst
}
