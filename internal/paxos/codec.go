package paxos

import (
	"errors"
	"fmt"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// ErrCorrupt is returned (wrapped, together with the wire error that caused
// it, if any) when an encoded message or member set cannot be decoded.
var ErrCorrupt = errors.New("paxos: corrupt encoding")

// Limits bound what DecodeMessage accepts from a peer, so that a corrupt or
// hostile message is refused before anything is allocated for it.
type Limits struct {
	EntriesMax    int // entries in one message
	EntryBytesMax int // data bytes of one entry
	CtxBytesMax   int // bytes of a read context
	// SnapshotBytesMax bounds a whole snapshot's application bytes: a member
	// refuses to receive a larger one (it travels in chunks, never whole).
	SnapshotBytesMax int
	// SnapshotChunkBytesMax bounds the data of one snapshot chunk, the
	// largest snapshot payload of one message.
	SnapshotChunkBytesMax int
	MembersMax            int // members in one configuration
}

// DefaultLimits are generous bounds for a LAN cluster: a leader never sends
// more than Config.BatchEntriesMax entries or a phase-1 reply more than
// Config.PhaseOneEntriesMax, and both default well below EntriesMax.
var DefaultLimits = Limits{
	EntriesMax:    4096,
	EntryBytesMax: 1 << 20,
	CtxBytesMax:   1 << 10,
	// 4 GiB: snapshots are written to and read from files in chunks, so this
	// bounds disk, not memory.
	SnapshotBytesMax:      4 << 30,
	SnapshotChunkBytesMax: 1 << 20,
	MembersMax:            64,
}

// Encoded form of a Message (every integer a canonical uvarint unless a width
// is given; "bytes" is a uvarint length followed by that many bytes):
//
//	field            size      notes
//	type             1         MessageType, 1..10
//	from, to         uvarint   peer.ID
//	ballot.round     uvarint
//	ballot.leader    uvarint   peer.ID
//	commit           uvarint
//	prev slot        uvarint
//	last slot        uvarint
//	hint             uvarint
//	flags            1         bit 0 reject, bit 1 a snapshot chunk follows; other bits 0
//	ctx              bytes     at most Limits.CtxBytesMax
//	entry count      uvarint   at most Limits.EntriesMax
//	entries          count x { slot uvarint, round uvarint, leader uvarint,
//	                           type 1 byte (1 normal, 2 noop, 3 config),
//	                           data bytes (at most Limits.EntryBytesMax) }
//	snapshot chunk   if flag bit 1: slot uvarint, round uvarint, leader uvarint,
//	                 members (see EncodeMembers, inline), total bytes uvarint,
//	                 checksum 4 (CRC32C of the whole snapshot), offset uvarint,
//	                 data checksum 4 (CRC32C of data), data bytes (at most
//	                 Limits.SnapshotChunkBytesMax)
//
// Nothing may follow. The encoding is canonical: decoding accepts exactly one
// byte string per message (no unknown flag bits, no non-canonical varint,
// members strictly ascending), so decode then encode returns the input.
const (
	flagReject   = 1 << 0
	flagSnapshot = 1 << 1
	flagsKnown   = flagReject | flagSnapshot

	// entryBytesMin is the smallest encoded entry: three one-byte varints,
	// the type and a zero length.
	entryBytesMin = 5
)

// AppendMessage appends the encoding of m to dst.
func AppendMessage(dst []byte, m Message) []byte {
	w := wire.NewBuffer(dst)
	w.Uint8(uint8(m.Type))
	w.Uvarint(uint64(m.From))
	w.Uvarint(uint64(m.To))
	putBallot(w, m.Ballot)
	w.Uvarint(m.Commit)
	w.Uvarint(m.PrevSlot)
	w.Uvarint(m.LastSlot)
	w.Uvarint(m.Hint)
	var flags uint8
	if m.Reject {
		flags |= flagReject
	}
	if m.Chunk != nil {
		flags |= flagSnapshot
	}
	w.Uint8(flags)
	w.LenBytes(m.Ctx)
	w.Uvarint(uint64(len(m.Entries)))
	for _, e := range m.Entries {
		w.Uvarint(e.Slot)
		putBallot(w, e.Ballot)
		w.Uint8(uint8(e.Type))
		w.LenBytes(e.Data)
	}
	if ch := m.Chunk; ch != nil {
		w.Uvarint(ch.Meta.Slot)
		putBallot(w, ch.Meta.Ballot)
		putMembers(w, ch.Meta.Members)
		w.Uvarint(ch.Info.TotalBytes)
		w.Uint32(ch.Info.Checksum)
		w.Uvarint(ch.Offset)
		w.Uint32(ch.DataChecksum)
		w.LenBytes(ch.Data)
	}
	return w.Bytes()
}

// EncodeMessage returns the encoding of m.
func EncodeMessage(m Message) []byte { return AppendMessage(nil, m) }

// DecodeMessage decodes one message that fills p exactly, refusing anything
// over lim. Byte fields of the result alias p. Every failure wraps ErrCorrupt
// and, where the wire layer found it, the wire error (wire.ErrTruncated,
// wire.ErrTooLarge, ...).
func DecodeMessage(p []byte, lim Limits) (Message, error) {
	r := wire.NewReader(p)
	m := Message{
		Type:     MessageType(r.Uint8()),
		From:     peer.ID(r.Uvarint()),
		To:       peer.ID(r.Uvarint()),
		Ballot:   getBallot(r),
		Commit:   r.Uvarint(),
		PrevSlot: r.Uvarint(),
		LastSlot: r.Uvarint(),
		Hint:     r.Uvarint(),
	}
	flags := r.Uint8()
	if r.Err() == nil && (m.Type < MsgPrePrepare || m.Type > msgTypeMax) {
		return Message{}, fmt.Errorf("%w: message type %d", ErrCorrupt, uint8(m.Type))
	}
	if flags&^flagsKnown != 0 {
		return Message{}, fmt.Errorf("%w: unknown flag bits %#x", ErrCorrupt, flags)
	}
	m.Reject = flags&flagReject != 0
	if ctx := r.LenBytes(lim.CtxBytesMax); len(ctx) > 0 {
		m.Ctx = ctx
	}
	if n := r.Count(lim.EntriesMax, entryBytesMin); n > 0 {
		m.Entries = make([]Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Slot = r.Uvarint()
			e.Ballot = getBallot(r)
			e.Type = EntryType(r.Uint8())
			if data := r.LenBytes(lim.EntryBytesMax); len(data) > 0 {
				e.Data = data
			}
			if r.Err() != nil {
				break
			}
			if err := checkEntryEncoding(*e, lim); err != nil {
				return Message{}, fmt.Errorf("decode %s entry %d: %w", m.Type, i, err)
			}
		}
	}
	if flags&flagSnapshot != 0 {
		ch := &SnapshotChunk{}
		ch.Meta.Slot = r.Uvarint()
		ch.Meta.Ballot = getBallot(r)
		members, err := getMembers(r, lim.MembersMax)
		if err != nil {
			return Message{}, fmt.Errorf("decode %s snapshot chunk: %w", m.Type, err)
		}
		ch.Meta.Members = members
		ch.Info.TotalBytes = r.Uvarint()
		ch.Info.Checksum = r.Uint32()
		ch.Offset = r.Uvarint()
		ch.DataChecksum = r.Uint32()
		if data := r.LenBytes(lim.SnapshotChunkBytesMax); len(data) > 0 {
			ch.Data = data
		}
		m.Chunk = ch
	}
	if err := r.Done(); err != nil {
		return Message{}, fmt.Errorf("%w: decode %s: %w", ErrCorrupt, m.Type, err)
	}
	return m, nil
}

func checkEntryEncoding(e Entry, lim Limits) error {
	if !e.Type.valid() {
		return fmt.Errorf("%w: entry type %d", ErrCorrupt, uint8(e.Type))
	}
	if e.Type == EntryNoop && len(e.Data) != 0 {
		return fmt.Errorf("%w: no-op with %d data bytes", ErrCorrupt, len(e.Data))
	}
	if e.Type == EntryConfig {
		r := wire.NewReader(e.Data)
		if _, err := getMembers(r, lim.MembersMax); err != nil {
			return err
		}
		if err := r.Done(); err != nil {
			return fmt.Errorf("%w: config entry: %w", ErrCorrupt, err)
		}
	}
	return nil
}

func putBallot(w *wire.Buffer, b Ballot) {
	w.Uvarint(b.Round)
	w.Uvarint(uint64(b.Leader))
}

func getBallot(r *wire.Reader) Ballot {
	return Ballot{Round: r.Uvarint(), Leader: peer.ID(r.Uvarint())}
}

// EncodeMembers encodes a member set, the data of an EntryConfig:
//
//	count   uvarint
//	ids     count x uvarint, strictly ascending, none zero
func EncodeMembers(s peer.Set) []byte {
	w := wire.NewBuffer(nil)
	putMembers(w, s)
	return w.Bytes()
}

// DecodeMembers decodes what EncodeMembers wrote, refusing more than
// DefaultLimits.MembersMax members, unsorted or duplicate ids and trailing
// bytes.
func DecodeMembers(p []byte) (peer.Set, error) {
	r := wire.NewReader(p)
	s, err := getMembers(r, DefaultLimits.MembersMax)
	if err != nil {
		return peer.Set{}, err
	}
	if err := r.Done(); err != nil {
		return peer.Set{}, fmt.Errorf("%w: member set: %w", ErrCorrupt, err)
	}
	return s, nil
}

func putMembers(w *wire.Buffer, s peer.Set) {
	w.Uvarint(uint64(s.Len()))
	for id := range s.All() {
		w.Uvarint(uint64(id))
	}
}

func getMembers(r *wire.Reader, membersMax int) (peer.Set, error) {
	n := r.Count(membersMax, 1)
	ids := make([]peer.ID, 0, n)
	for range n {
		id := peer.ID(r.Uvarint())
		if r.Err() != nil {
			break
		}
		if id == peer.None || (len(ids) > 0 && id <= ids[len(ids)-1]) {
			return peer.Set{}, fmt.Errorf("%w: member ids must be ascending and non-zero, got %d after %v", ErrCorrupt, id, ids)
		}
		ids = append(ids, id)
	}
	if err := r.Err(); err != nil {
		return peer.Set{}, fmt.Errorf("%w: member set: %w", ErrCorrupt, err)
	}
	if len(ids) == 0 {
		return peer.Set{}, nil
	}
	s, err := peer.NewSet(ids...)
	if err != nil {
		return peer.Set{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return s, nil
}
