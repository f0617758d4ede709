package group

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/wire"
)

// The group layer's own envelope kinds (internal/wire reserves
// 0x0240-0x024f for it); vsync.WireKind carries the protocol itself.
const (
	// kindAddrs carries address records: who listens where.
	kindAddrs wire.Kind = 0x0240
	// kindReply carries one member's reply to a query.
	kindReply wire.Kind = 0x0241
)

// Limits of the group layer's own messages.
const (
	// addrBytesMax bounds one address ("host:port").
	addrBytesMax = 255
	// addrsPerMessageMax bounds the records of one addrs message.
	addrsPerMessageMax = 256
)

// Every payload multicast through vsync starts with one byte that says
// what it is, so that a query and a plain message share the order.
const (
	payloadMessage byte = 0
	payloadQuery   byte = 1
	// payloadPacked holds several messages of one sender and order that
	// waited together in its send queue: one multicast, delivered as
	// consecutive Messages (Part 0, 1, ...). Format after the tag: count
	// uvarint (at least 2), then per message a uvarint length and its bytes.
	payloadPacked byte = 2
)

// addrRecord says that member ID listens at Addr.
type addrRecord struct {
	ID   MemberID
	Addr string
}

// appendAddrs encodes: count uvarint, then per record id uvarint and addr
// bytes (uvarint length, at most addrBytesMax).
func appendAddrs(dst []byte, recs []addrRecord) []byte {
	w := wire.NewBuffer(dst)
	w.Uvarint(uint64(len(recs)))
	for _, r := range recs {
		w.Uvarint(uint64(r.ID))
		w.String(r.Addr)
	}
	return w.Bytes()
}

func decodeAddrs(p []byte) ([]addrRecord, error) {
	r := wire.NewReader(p)
	n := r.Count(addrsPerMessageMax, 2)
	recs := make([]addrRecord, 0, n)
	for range n {
		id := MemberID(r.Uvarint())
		addr := r.String(addrBytesMax)
		if r.Err() == nil && (id == 0 || addr == "") {
			return nil, fmt.Errorf("group: addrs: empty id or address")
		}
		recs = append(recs, addrRecord{ID: id, Addr: addr})
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("group: addrs: %w", err)
	}
	return recs, nil
}

// queryID names a query: the view it was sent in and the sender's seq in
// that view's order instance.
type queryID struct {
	View, Seq uint64
}

// appendReply encodes: view uvarint, seq uvarint, reply bytes.
func appendReply(dst []byte, q queryID, reply []byte) []byte {
	w := wire.NewBuffer(dst)
	w.Uvarint(q.View)
	w.Uvarint(q.Seq)
	w.LenBytes(reply)
	return w.Bytes()
}

func decodeReply(p []byte, replyBytesMax int) (queryID, []byte, error) {
	r := wire.NewReader(p)
	q := queryID{View: r.Uvarint(), Seq: r.Uvarint()}
	reply := r.LenBytes(replyBytesMax)
	if err := r.Done(); err != nil {
		return queryID{}, nil, fmt.Errorf("group: reply: %w", err)
	}
	return q, reply, nil
}

// packedBytes is the encoded size of a packed payload of parts.
func packedBytes(parts [][]byte) int {
	n := 1 + wire.UvarintLen(uint64(len(parts)))
	for _, p := range parts {
		n += wire.UvarintLen(uint64(len(p))) + len(p)
	}
	return n
}

func appendPacked(dst []byte, parts [][]byte) []byte {
	w := wire.NewBuffer(dst)
	w.Uint8(payloadPacked)
	w.Uvarint(uint64(len(parts)))
	for _, p := range parts {
		w.LenBytes(p)
	}
	return w.Bytes()
}

// decodePacked splits a packed payload (after its tag). The parts alias p.
func decodePacked(p []byte, partBytesMax int) ([][]byte, error) {
	r := wire.NewReader(p)
	n := r.Count(len(p), 1)
	if r.Err() == nil && n < 2 {
		return nil, fmt.Errorf("group: packed payload of %d messages", n)
	}
	parts := make([][]byte, 0, n)
	for range n {
		parts = append(parts, r.LenBytes(partBytesMax))
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("group: packed payload: %w", err)
	}
	return parts, nil
}
