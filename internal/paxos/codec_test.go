package paxos

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

func sampleMessages() []Message {
	b := Ballot{Round: 3, Leader: 2}
	return []Message{
		{Type: MsgPrePrepare, From: 1, To: 2, Ballot: b, Commit: 7},
		{Type: MsgPrePromise, From: 2, To: 1, Ballot: b, Reject: true},
		{Type: MsgPrepare, From: 2, To: 3, Ballot: b, Commit: 9},
		{Type: MsgPromise, From: 3, To: 2, Ballot: b, Commit: 4, Entries: []Entry{
			{Slot: 5, Ballot: Ballot{1, 1}, Type: EntryNormal, Data: []byte("x")},
			{Slot: 6, Ballot: Ballot{2, 3}, Type: EntryNoop},
			{Slot: 7, Ballot: Ballot{2, 3}, Type: EntryConfig, Data: EncodeMembers(peer.MustSet(1, 2, 3, 4))},
		}},
		{Type: MsgAccept, From: 2, To: 1, Ballot: b, PrevSlot: 4, Commit: 4, LastSlot: 5, Entries: []Entry{
			{Slot: 5, Ballot: b, Type: EntryNormal, Data: bytes.Repeat([]byte{0xfe}, 300)},
		}},
		{Type: MsgAccepted, From: 1, To: 2, Ballot: b, LastSlot: 5},
		{Type: MsgAccepted, From: 1, To: 2, Ballot: Ballot{9, 9}, Reject: true, Hint: 3},
		{Type: MsgHeartbeat, From: 2, To: 1, Ballot: b, Commit: 5, LastSlot: 6, Ctx: []byte("read-1")},
		{Type: MsgHeartbeatAck, From: 1, To: 2, Ballot: b, Ctx: []byte("read-1")},
		{Type: MsgSnapshot, From: 2, To: 4, Ballot: b, Commit: 10, LastSlot: 12, Chunk: &SnapshotChunk{
			Meta:   SnapshotMeta{Slot: 10, Ballot: Ballot{2, 2}, Members: peer.MustSet(1, 2, 4)},
			Info:   SnapshotInfo{TotalBytes: 1 << 40, Checksum: 0xdeadbeef},
			Offset: 1 << 33, Data: []byte("state"), DataChecksum: ChecksumBytes([]byte("state")),
		}},
		{Type: MsgSnapshot, From: 2, To: 4, Ballot: b, Chunk: &SnapshotChunk{}},
		{Type: MsgSnapshotAck, From: 4, To: 2, Ballot: b, PrevSlot: 10, Hint: 1 << 20},
		{Type: MsgAccept, From: math.MaxUint64, To: 1, Ballot: Ballot{math.MaxUint64, math.MaxUint64}, PrevSlot: math.MaxUint64},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		enc := EncodeMessage(m)
		got, err := DecodeMessage(enc, DefaultLimits)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("round trip\n in %+v\nout %+v", m, got)
		}
		if again := EncodeMessage(got); !bytes.Equal(again, enc) {
			t.Fatalf("re-encoding of %v differs", m)
		}
	}
}

// normalize makes the zero-length byte slices of a hand-written message
// comparable with the nil ones the decoder returns.
func normalize(m Message) Message {
	if len(m.Ctx) == 0 {
		m.Ctx = nil
	}
	if len(m.Entries) == 0 {
		m.Entries = nil
	}
	if m.Chunk != nil {
		s := *m.Chunk
		if len(s.Data) == 0 {
			s.Data = nil
		}
		s.Meta.Members = peer.MustSet(s.Meta.Members.IDs()...)
		m.Chunk = &s
	}
	return m
}

func TestDecodeMessageRejectsCorruptInput(t *testing.T) {
	good := EncodeMessage(sampleMessages()[3]) // a Promise with three entries
	lim := DefaultLimits
	mutate := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(good)) }
	// Offsets: type(1) from(1) to(1) round(1) leader(1) commit(1) prev(1)
	// last(1) hint(1) flags(1) ctx len(1) entry count(1) then entries.
	const flagsAt, countAt, firstEntryTypeAt = 9, 11, 15
	for _, tc := range []struct {
		name string
		in   []byte
		lim  Limits
		want error
	}{
		{"empty", nil, lim, wire.ErrTruncated},
		{"type 0", mutate(func(p []byte) []byte { p[0] = 0; return p }), lim, ErrCorrupt},
		{"type 11", mutate(func(p []byte) []byte { p[0] = 11; return p }), lim, ErrCorrupt},
		{"unknown flag", mutate(func(p []byte) []byte { p[flagsAt] = 0x80; return p }), lim, ErrCorrupt},
		{"truncated", good[:len(good)-1], lim, wire.ErrTruncated},
		{"trailing", append(bytes.Clone(good), 0), lim, wire.ErrTrailing},
		{"count lies", mutate(func(p []byte) []byte { p[countAt] = 100; return p }), lim, wire.ErrTruncated},
		{"too many entries", good, Limits{EntriesMax: 2, EntryBytesMax: 10, MembersMax: 8}, wire.ErrTooLarge},
		{"entry too big", good, Limits{EntriesMax: 8, EntryBytesMax: 0, MembersMax: 8}, wire.ErrTooLarge},
		{"bad entry type", mutate(func(p []byte) []byte { p[firstEntryTypeAt] = 7; return p }), lim, ErrCorrupt},
		{"noop with data", EncodeMessage(Message{Type: MsgAccept, Entries: []Entry{{Slot: 1, Type: EntryNoop, Data: []byte("z")}}}), lim, ErrCorrupt},
		{"config not a member set", EncodeMessage(Message{Type: MsgAccept, Entries: []Entry{{Slot: 1, Type: EntryConfig, Data: []byte{2, 5, 3}}}}), lim, ErrCorrupt},
		{"snapshot member 0", func() []byte {
			p := EncodeMessage(Message{Type: MsgSnapshot, Chunk: &SnapshotChunk{Meta: SnapshotMeta{Members: peer.MustSet(1)}}})
			p[16] = 0 // the one member id, after 12 header bytes, slot, round, leader and count
			return p
		}(), lim, ErrCorrupt},
		{"chunk too big", func() []byte {
			for _, m := range sampleMessages() {
				if m.Chunk != nil && len(m.Chunk.Data) > 0 {
					return EncodeMessage(m)
				}
			}
			panic("no sample chunk")
		}(), Limits{EntriesMax: 8, CtxBytesMax: 8, MembersMax: 8, SnapshotChunkBytesMax: 4}, wire.ErrTooLarge},
		{"non-canonical varint", append([]byte{byte(MsgAccept), 0x81, 0x00}, make([]byte, 12)...), lim, wire.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMessage(tc.in, tc.lim)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v does not wrap ErrCorrupt", err)
			}
		})
	}
}

func TestMembersEncoding(t *testing.T) {
	s := peer.MustSet(1, 5, 300)
	got, err := DecodeMembers(EncodeMembers(s))
	if err != nil || !got.Equal(s) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range [][]byte{
		{2, 5, 3},    // descending
		{2, 3, 3},    // duplicate
		{1, 0},       // member 0
		{2, 1},       // truncated
		{1, 1, 0},    // trailing
		{200, 1, 1},  // count over the limit
		{0x80, 0x00}, // non-canonical count
	} {
		if _, err := DecodeMembers(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeMembers(%v) = %v, want ErrCorrupt", bad, err)
		}
	}
}

// FuzzDecodeMessage: arbitrary bytes never panic the decoder, never produce
// a message over the limits, and whatever is accepted re-encodes to exactly
// the input (the encoding is canonical).
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(EncodeMessage(m))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(MsgAccept), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	lim := Limits{EntriesMax: 64, EntryBytesMax: 256, CtxBytesMax: 32, SnapshotBytesMax: 1 << 20, SnapshotChunkBytesMax: 1024, MembersMax: 16}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessage(in, lim)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(m.Entries) > lim.EntriesMax || len(m.Ctx) > lim.CtxBytesMax {
			t.Fatalf("over limits: %d entries, %d ctx bytes", len(m.Entries), len(m.Ctx))
		}
		for _, e := range m.Entries {
			if len(e.Data) > lim.EntryBytesMax || !e.Type.valid() {
				t.Fatalf("bad entry accepted: %v", e)
			}
		}
		if out := EncodeMessage(m); !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
		_ = m.String()
	})
}

func BenchmarkEncodeAccept64(b *testing.B) {
	m := Message{Type: MsgAccept, From: 1, To: 2, Ballot: Ballot{7, 1}, PrevSlot: 1000, Commit: 990, LastSlot: 1064}
	for i := range 64 {
		m.Entries = append(m.Entries, Entry{Slot: 1001 + uint64(i), Ballot: m.Ballot, Type: EntryNormal, Data: make([]byte, 128)})
	}
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(EncodeMessage(m))))
	for b.Loop() {
		buf = AppendMessage(buf[:0], m)
	}
}

func BenchmarkDecodeAccept64(b *testing.B) {
	m := Message{Type: MsgAccept, From: 1, To: 2, Ballot: Ballot{7, 1}, PrevSlot: 1000, Commit: 990, LastSlot: 1064}
	for i := range 64 {
		m.Entries = append(m.Entries, Entry{Slot: 1001 + uint64(i), Ballot: m.Ballot, Type: EntryNormal, Data: make([]byte, 128)})
	}
	enc := EncodeMessage(m)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := DecodeMessage(enc, DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
