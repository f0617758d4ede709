package order

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vclock"
	"github.com/chorus-project/chorus/internal/wire"
)

// AppendMessage appends the encoding of m (the format is in the package
// comment) to dst and returns the result. From and To are not encoded.
func AppendMessage(dst []byte, m Message) []byte {
	w := wire.NewBuffer(dst)
	w.Uint8(uint8(m.Type))
	w.Uvarint(m.View)
	switch m.Type {
	case MsgData:
		w.Uvarint(uint64(m.Sender))
		w.Uvarint(m.Seq)
		w.Uvarint(m.StableSeq)
		w.Uint8(uint8(m.Order))
		if m.Order == Causal {
			vclock.Append(w, m.Clock)
		}
		w.LenBytes(m.Payload)
	case MsgNak:
		w.Uvarint(uint64(m.Sender))
		appendRanges(w, m.Ranges)
	case MsgOrder:
		w.Uvarint(m.Global)
		w.Uvarint(uint64(len(m.Entries)))
		for _, e := range m.Entries {
			w.Uvarint(uint64(e.Sender))
			w.Uvarint(e.Seq)
		}
	case MsgOrderNak:
		appendRanges(w, m.Ranges)
	case MsgStable:
		invariant.Check(len(m.Received) == len(m.Delivered), "order: stable vectors of %d and %d", len(m.Received), len(m.Delivered))
		w.Uvarint(m.Ordered)
		w.Uvarint(uint64(len(m.Received)))
		for _, v := range m.Received {
			w.Uvarint(v)
		}
		for _, v := range m.Delivered {
			w.Uvarint(v)
		}
	default:
		invariant.Unreachable("order: encode of message type %d", m.Type)
	}
	return w.Bytes()
}

func appendRanges(w *wire.Buffer, rs []Range) {
	w.Uvarint(uint64(len(rs)))
	for _, r := range rs {
		w.Uvarint(r.First)
		w.Uvarint(r.Last)
	}
}

// DecodeMessage decodes a message that fills p exactly, within lim. From
// and To are left zero for the caller to set from the envelope. The payload
// and every slice are copied, so p may be reused. Errors wrap ErrMalformed
// (and the wire error, for codec failures). Only the encoding is checked
// here; Step checks the message against the view.
func DecodeMessage(p []byte, lim Limits) (Message, error) {
	r := wire.NewReader(p)
	m := Message{Type: MessageType(r.Uint8()), View: r.Uvarint()}
	if r.Err() == nil && (m.Type < MsgData || m.Type > msgTypeMax) {
		return Message{}, fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	switch m.Type {
	case MsgData:
		m.Sender = peer.ID(r.Uvarint())
		m.Seq = r.Uvarint()
		m.StableSeq = r.Uvarint()
		m.Order = Order(r.Uint8())
		if r.Err() == nil && !m.Order.valid() {
			return Message{}, fmt.Errorf("%w: order %d", ErrMalformed, m.Order)
		}
		if m.Order == Causal {
			m.Clock = vclock.Read(r, lim.MembersMax)
		}
		if b := r.LenBytes(lim.PayloadBytesMax); b != nil {
			m.Payload = append([]byte(nil), b...)
		}
	case MsgNak:
		m.Sender = peer.ID(r.Uvarint())
		m.Ranges = readRanges(r, lim.RangesMax)
	case MsgOrder:
		m.Global = r.Uvarint()
		n := r.Count(lim.EntriesMax, 2)
		if n > 0 {
			m.Entries = make([]Ref, n)
			for i := range m.Entries {
				m.Entries[i] = Ref{Sender: peer.ID(r.Uvarint()), Seq: r.Uvarint()}
			}
		}
	case MsgOrderNak:
		m.Ranges = readRanges(r, lim.RangesMax)
	case MsgStable:
		m.Ordered = r.Uvarint()
		n := r.Count(lim.MembersMax, 2)
		if r.Err() == nil {
			m.Received = make([]uint64, n)
			m.Delivered = make([]uint64, n)
			for i := range m.Received {
				m.Received[i] = r.Uvarint()
			}
			for i := range m.Delivered {
				m.Delivered[i] = r.Uvarint()
			}
		}
	}
	if err := r.Done(); err != nil {
		return Message{}, fmt.Errorf("%w: %s: %w", ErrMalformed, m.Type, err)
	}
	return m, nil
}

func readRanges(r *wire.Reader, max int) []Range {
	n := r.Count(max, 2)
	if n == 0 {
		return nil
	}
	rs := make([]Range, n)
	for i := range rs {
		rs[i] = Range{First: r.Uvarint(), Last: r.Uvarint()}
	}
	return rs
}
