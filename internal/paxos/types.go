package paxos

import (
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/chorus-project/chorus/internal/peer"
)

// Ballot orders leaderships: (Round, Leader), compared lexicographically. The
// Leader part makes every ballot belong to exactly one member, so two
// candidates never run the same ballot. The zero Ballot is below every ballot
// a member can run (rounds start at 1).
type Ballot struct {
	Round  uint64
	Leader peer.ID
}

// Compare returns -1, 0 or +1 as b is below, equal to or above o.
func (b Ballot) Compare(o Ballot) int {
	switch {
	case b.Round < o.Round:
		return -1
	case b.Round > o.Round:
		return 1
	case b.Leader < o.Leader:
		return -1
	case b.Leader > o.Leader:
		return 1
	}
	return 0
}

// Less reports b < o.
func (b Ballot) Less(o Ballot) bool { return b.Compare(o) < 0 }

// IsZero reports whether b is the zero ballot (nothing promised).
func (b Ballot) IsZero() bool { return b == Ballot{} }

func (b Ballot) String() string { return fmt.Sprintf("%d.%d", b.Round, uint64(b.Leader)) }

// EntryType says what a log entry carries.
type EntryType uint8

const (
	// EntryNormal carries an application command in Data.
	EntryNormal EntryType = iota + 1
	// EntryNoop carries nothing: a leader writes one when it takes over (so it
	// can commit an entry of its own ballot) and to fill slots that no
	// phase-1 reply knew a value for.
	EntryNoop
	// EntryConfig carries the complete new member set (EncodeMembers) and is
	// effective as soon as it is in the log.
	EntryConfig
)

func (t EntryType) valid() bool { return t >= EntryNormal && t <= EntryConfig }

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryNoop:
		return "noop"
	case EntryConfig:
		return "config"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one accepted slot: the value Data of type Type, accepted under
// Ballot. Slots start at 1.
type Entry struct {
	Slot   uint64
	Ballot Ballot
	Type   EntryType
	Data   []byte
}

// entryOverheadBytes is what an entry costs besides its data when counting
// batch and window bytes: slot, ballot and type, roughly as encoded. It keeps
// empty entries (no-ops) from being free, so byte limits still bound counts.
const entryOverheadBytes = 16

func (e Entry) sizeBytes() int { return len(e.Data) + entryOverheadBytes }

func (e Entry) String() string {
	switch e.Type {
	case EntryNormal:
		return fmt.Sprintf("%d@%s %q", e.Slot, e.Ballot, e.Data)
	case EntryConfig:
		m, err := DecodeMembers(e.Data)
		if err != nil {
			return fmt.Sprintf("%d@%s config(corrupt)", e.Slot, e.Ballot)
		}
		return fmt.Sprintf("%d@%s config%v", e.Slot, e.Ballot, m)
	}
	return fmt.Sprintf("%d@%s %s", e.Slot, e.Ballot, e.Type)
}

func entriesString(es []Entry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// HardState is what a member must find on disk after a crash, besides its
// log: the highest ballot it promised (a promise forgotten is a promise
// broken) and the highest slot it knows committed.
type HardState struct {
	Promised Ballot
	Commit   uint64
}

func (h HardState) String() string { return fmt.Sprintf("promised=%s commit=%d", h.Promised, h.Commit) }

// SnapshotMeta describes a state machine snapshot: it holds the effect of
// every slot up to and including Slot, whose entry was accepted under Ballot,
// and Members is the configuration in force at Slot.
type SnapshotMeta struct {
	Slot    uint64
	Ballot  Ballot
	Members peer.Set
}

func (m SnapshotMeta) String() string {
	return fmt.Sprintf("slot=%d ballot=%s members=%v", m.Slot, m.Ballot, m.Members)
}

// Snapshot is a snapshot's metadata and the application's bytes, held in
// memory: what tests and small tools use. The core itself never holds a
// whole snapshot; it ships one in SnapshotChunks.
type Snapshot struct {
	Meta SnapshotMeta
	Data []byte
}

// SnapshotInfo describes the application bytes of a stored snapshot: their
// length and their CRC32C (Castagnoli), which a receiver checks before it
// installs the snapshot.
type SnapshotInfo struct {
	TotalBytes uint64
	Checksum   uint32
}

// SnapshotChunk is one piece of a snapshot on its way to a follower: the
// bytes Offset..Offset+len(Data) of the snapshot described by Meta and
// Info. In a message, DataChecksum is the CRC32C of Data, so a damaged chunk
// is refused on its own; in a Ready, it is what the shell appends to the
// snapshot being received (Offset 0 starts a new one).
type SnapshotChunk struct {
	Meta         SnapshotMeta
	Info         SnapshotInfo
	Offset       uint64
	Data         []byte
	DataChecksum uint32
}

// castagnoli is the CRC32C table of snapshot checksums (as the WAL's).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ChecksumBytes returns the CRC32C of p, the checksum SnapshotInfo and
// SnapshotChunk carry.
func ChecksumBytes(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// UpdateChecksum extends the running CRC32C crc with p.
func UpdateChecksum(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// ReadState releases a linearizable read: the leader confirmed with a Q2
// quorum that it still led after the read arrived, so once the caller has
// applied every slot up to Index, reading its state machine is linearizable.
// Ctx is the caller's request token, returned unchanged.
type ReadState struct {
	Index uint64
	Ctx   []byte
}

// Role is what a member currently does.
type Role uint8

const (
	// Follower accepts what the leader sends and waits for its election timeout.
	Follower Role = iota + 1
	// PreCandidate asks whether it could win before it raises any ballot.
	PreCandidate
	// Candidate runs phase 1 under its own ballot.
	Candidate
	// Leader completed phase 1 and runs phase 2 for every new slot.
	Leader
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}
