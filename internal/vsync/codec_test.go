package vsync

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/chorus-project/chorus/internal/liveness"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

func sampleMessages() []Message {
	v := &Value{
		Next:        View{ID: 3, Members: []peer.Member{{ID: 1}, {ID: 4, Incarnation: 2}}},
		Cut:         order.Digest{Received: []uint64{3, 0, 9}, Ordered: 7},
		Holders:     []peer.ID{1, 1, 4},
		OrderHolder: 4,
	}
	b := Ballot{Round: 5, Proposer: 2}
	data := order.Message{Type: order.MsgData, View: 2, Sender: 1, Seq: 4, StableSeq: 1, Order: order.Total, Payload: []byte("p")}
	return []Message{
		{Type: MsgOrder, View: 2, Order: data},
		{Type: MsgLiveness, View: 2, Live: liveness.Message{Type: liveness.PingReq, Subject: 3}},
		{Type: MsgPrepare, View: 2, Ballot: b},
		{Type: MsgPromise, View: 2, Ballot: b, Digest: order.Digest{Received: []uint64{1, 2, 3}, Ordered: 2}, Restored: true},
		{Type: MsgPromise, View: 2, Ballot: b, Digest: order.Digest{Received: []uint64{1, 2, 3}}, AcceptedBallot: Ballot{Round: 4, Proposer: 1}, Value: v},
		{Type: MsgReject, View: 2, Ballot: b},
		{Type: MsgAccept, View: 2, Ballot: b, Value: v},
		{Type: MsgAccepted, View: 2, Ballot: b},
		{Type: MsgDecide, View: 2, Value: v},
		{Type: MsgFetch, View: 2, Refs: []order.Ref{{Sender: 1, Seq: 2}}, Ranges: []order.Range{{First: 3, Last: 5}}},
		{Type: MsgForward, View: 2, Forwards: []order.Message{data, {Type: order.MsgOrder, View: 2, Global: 1, Entries: []order.Ref{{Sender: 1, Seq: 4}}}}},
		{Type: MsgJoin, Member: peer.Member{ID: 9, Incarnation: 1}},
		{Type: MsgLeave, View: 2, Member: peer.Member{ID: 3}},
		{Type: MsgNotice, View: 3, Next: v.Next},
		{Type: MsgTransferRequest, View: 3, Transfer: 2},
		{Type: MsgChunk, View: 3, Transfer: 2, Index: 0, Data: []byte("state"), PosView: 4, Position: []order.Ref{{Sender: 1, Seq: 3}}},
		{Type: MsgChunk, View: 3, Transfer: 2, Index: 7, Last: true, Data: []byte("end")},
		{Type: MsgChunkAck, View: 3, Transfer: 2, Index: 8},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	lim := testConfig().Limits()
	for _, m := range sampleMessages() {
		enc := AppendMessage(nil, m)
		got, err := DecodeMessage(enc, lim)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %s:\n got %#v\nwant %#v", m, got, m)
		}
		if again := AppendMessage(nil, got); string(again) != string(enc) {
			t.Errorf("%s: re-encoding differs", m)
		}
		// Every strict prefix is refused, and so is a trailing byte.
		for i := range enc {
			if _, err := DecodeMessage(enc[:i], lim); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: prefix of %d bytes: %v", m, i, err)
			}
		}
		if _, err := DecodeMessage(append(enc, 0), lim); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: trailing byte accepted: %v", m, err)
		}
	}
}

func TestDecodeRefusesOverLimits(t *testing.T) {
	lim := testConfig().Limits()
	big := Message{Type: MsgChunk, View: 1, Transfer: 1, Index: 1, Data: make([]byte, lim.ChunkBytesMax+1)}
	if _, err := DecodeMessage(AppendMessage(nil, big), lim); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized chunk: %v", err)
	}
	members := make([]peer.Member, lim.MembersMax+1)
	for i := range members {
		members[i] = peer.Member{ID: peer.ID(i + 1)}
	}
	if _, err := DecodeMessage(AppendMessage(nil, Message{Type: MsgNotice, View: 2, Next: View{ID: 2, Members: members}}), lim); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized view: %v", err)
	}
	dup := &Value{Next: View{ID: 2, Members: []peer.Member{{ID: 1}, {ID: 1}}}, Cut: order.Digest{Received: []uint64{0}}, Holders: []peer.ID{1}, OrderHolder: 1}
	if _, err := DecodeMessage(AppendMessage(nil, Message{Type: MsgDecide, View: 1, Value: dup}), lim); !errors.Is(err, ErrMalformed) {
		t.Errorf("duplicate member: %v", err)
	}
	for _, p := range [][]byte{nil, {0, 1}, {byte(msgTypeMax) + 1, 1}, {byte(MsgChunk), 1, 1, 1, 2, 0}} {
		if _, err := DecodeMessage(p, lim); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", p, err)
		}
	}
}

// FuzzDecodeAndStep decodes arbitrary bytes and, when they decode, steps
// the message into a member in the middle of a view change: neither may
// panic, and whatever decodes re-encodes to the same bytes.
func FuzzDecodeAndStep(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(AppendMessage(nil, m), uint8(2))
	}
	f.Add([]byte{byte(MsgPrepare), 1, 9, 2}, uint8(2))
	f.Add([]byte{byte(MsgDecide), 1, 2, 1, 1, 0, 0, 1, 0, 1, 1}, uint8(3))
	lim := testConfig().Limits()
	f.Fuzz(func(t *testing.T, p []byte, from uint8) {
		m, err := DecodeMessage(p, lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := AppendMessage(nil, m); string(again) != string(p) {
			t.Fatalf("re-encoding of %s differs", m)
		}
		h, err := newHarness(testConfig(), 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Member 1 starts a change (member 3 leaves), so that every
		// handler has state to work on.
		_ = h.nodes[3].n.Leave()
		h.collect(h.nodes[3])
		h.deliver(h.queue[len(h.queue)-1])
		m.From, m.To = peer.ID(from%5), 1
		for _, id := range []peer.ID{1, 2} {
			m.To = id
			_ = h.nodes[id].n.Step(m)
			h.collect(h.nodes[id])
		}
	})
}

// TestOrderEncodingInPlace: the in-place length prefix of an order message
// is byte for byte wire.Buffer.LenBytes's, behind a prefix already in dst
// and for bodies whose length needs one, two or three varint bytes.
func TestOrderEncodingInPlace(t *testing.T) {
	for _, size := range []int{0, 1, 100, 127, 128, 300, 20000} {
		om := order.Message{Type: order.MsgData, View: 3, Sender: 2, Seq: 9, StableSeq: 4, Order: order.Total, Payload: make([]byte, size)}
		m := Message{Type: MsgOrder, View: 3, Order: om}
		w := wire.NewBuffer([]byte("prefix"))
		w.Uint8(uint8(MsgOrder))
		w.Uvarint(3)
		w.LenBytes(order.AppendMessage(nil, om))
		if got, want := AppendMessage([]byte("prefix"), m), w.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("payload of %d bytes: got %x, want %x", size, got, want)
		}
	}
}
