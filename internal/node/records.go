package node

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// Record payloads in the member's WAL. The WAL frames and checksums each
// record; these are the payloads, in the wire codec (canonical varints):
//
//	entry:      slot uvarint | ballot round uvarint | ballot leader uvarint |
//	            type u8 | data (uvarint length, bytes)
//	hard state: promised round uvarint | promised leader uvarint | commit uvarint
//	snapshot:   slot uvarint | ballot round uvarint | ballot leader uvarint |
//	            member count uvarint | member ids, uvarint each
//	truncate:   slot, 8 bytes big-endian

// recordDataBytesMax bounds an entry's data when decoding; the WAL's own
// record limit is lower in practice.
const recordDataBytesMax = 1 << 30

// membersMax bounds the member list of a snapshot record.
const membersMax = 1 << 10

func appendBallot(w *wire.Buffer, b paxos.Ballot) {
	w.Uvarint(b.Round)
	w.Uvarint(uint64(b.Leader))
}

func readBallot(r *wire.Reader) paxos.Ballot {
	return paxos.Ballot{Round: r.Uvarint(), Leader: peer.ID(r.Uvarint())}
}

func encodeEntry(e paxos.Entry) []byte {
	w := wire.NewBuffer(make([]byte, 0, 24+len(e.Data)))
	w.Uvarint(e.Slot)
	appendBallot(w, e.Ballot)
	w.Uint8(uint8(e.Type))
	w.LenBytes(e.Data)
	return w.Bytes()
}

func decodeEntry(p []byte) (paxos.Entry, error) {
	r := wire.NewReader(p)
	e := paxos.Entry{Slot: r.Uvarint(), Ballot: readBallot(r), Type: paxos.EntryType(r.Uint8())}
	data := r.LenBytes(recordDataBytesMax)
	if err := r.Done(); err != nil {
		return paxos.Entry{}, fmt.Errorf("entry record: %w", err)
	}
	if e.Slot == 0 || e.Type < paxos.EntryNormal || e.Type > paxos.EntryConfig {
		return paxos.Entry{}, fmt.Errorf("entry record: slot %d type %d", e.Slot, e.Type)
	}
	// The WAL hands out a fresh buffer per record, but the core keeps the
	// data: own it.
	e.Data = append([]byte(nil), data...)
	return e, nil
}

func encodeHardState(hs paxos.HardState) []byte {
	w := wire.NewBuffer(nil)
	appendBallot(w, hs.Promised)
	w.Uvarint(hs.Commit)
	return w.Bytes()
}

func decodeHardState(p []byte) (paxos.HardState, error) {
	r := wire.NewReader(p)
	hs := paxos.HardState{Promised: readBallot(r), Commit: r.Uvarint()}
	if err := r.Done(); err != nil {
		return paxos.HardState{}, fmt.Errorf("hard state record: %w", err)
	}
	return hs, nil
}

func encodeSnapshotMeta(m paxos.SnapshotMeta) []byte {
	w := wire.NewBuffer(nil)
	w.Uvarint(m.Slot)
	appendBallot(w, m.Ballot)
	w.Uvarint(uint64(m.Members.Len()))
	for id := range m.Members.All() {
		w.Uvarint(uint64(id))
	}
	return w.Bytes()
}

func decodeSnapshotMeta(p []byte) (paxos.SnapshotMeta, error) {
	r := wire.NewReader(p)
	m := paxos.SnapshotMeta{Slot: r.Uvarint(), Ballot: readBallot(r)}
	n := r.Count(membersMax, 1)
	ids := make([]peer.ID, 0, n)
	for range n {
		ids = append(ids, peer.ID(r.Uvarint()))
	}
	if err := r.Done(); err != nil {
		return paxos.SnapshotMeta{}, fmt.Errorf("snapshot record: %w", err)
	}
	members, err := peer.NewSet(ids...)
	if err != nil {
		return paxos.SnapshotMeta{}, fmt.Errorf("snapshot record: %w", err)
	}
	m.Members = members
	return m, nil
}
