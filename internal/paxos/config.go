package paxos

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/quorum"
)

// Errors of the core. Each is wrapped with detail; test with errors.Is.
var (
	// ErrInvalidConfig: a Config or Restored state that cannot be run.
	ErrInvalidConfig = errors.New("paxos: invalid config")
	// ErrNotLeader: a proposal or read reached a member that does not lead.
	// The error is a *NotLeaderError naming the leader this member knows.
	ErrNotLeader = errors.New("paxos: not the leader")
	// ErrProposalDropped: back-pressure; too many uncommitted proposals or
	// waiting reads. Retry later.
	ErrProposalDropped = errors.New("paxos: proposal dropped")
	// ErrProposalTooLarge: a command or read context over the size limits
	// peers decode with.
	ErrProposalTooLarge = errors.New("paxos: proposal too large")
	// ErrConfigChangePending: another membership change is not yet committed.
	ErrConfigChangePending = errors.New("paxos: a membership change is pending")
	// ErrLeaderNotReady: a new leader has not yet committed an entry of its
	// own ballot, so it may not change the membership.
	ErrLeaderNotReady = errors.New("paxos: leader has not committed an entry of its ballot")
	// ErrFlexibleMembership: membership change under flexible quorums (see
	// the package documentation for why it is unsafe).
	ErrFlexibleMembership = errors.New("paxos: membership change refused under flexible quorums")
	// ErrBadConfChange: adding a member twice, removing a non-member or the
	// last member.
	ErrBadConfChange = errors.New("paxos: invalid membership change")
	// ErrInvalidMessage: a message that is well encoded but breaks the
	// protocol's rules (wrong recipient, entries out of order, ...). It is
	// dropped; the error says why.
	ErrInvalidMessage = errors.New("paxos: invalid message")
	// ErrCompaction: Compact at a slot not yet applied or already compacted.
	ErrCompaction = errors.New("paxos: invalid compaction")
)

// NotLeaderError is returned for proposals and reads made on a member that
// does not lead. Leader is the leader it last heard from, or peer.None.
type NotLeaderError struct {
	Leader peer.ID
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("paxos: not the leader (leader hint: %s)", e.Leader)
}

// Unwrap makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// PlantedBugs are deliberate bugs, for tests only: they show that the
// checkers catch what they claim to catch. Production configs leave them off.
type PlantedBugs struct {
	// CommitOneShort makes the leader commit with one acknowledgement fewer
	// than a Q2 quorum.
	CommitOneShort bool
	// ReadWithoutQuorumRound makes the leader release a read at once, without
	// confirming with a Q2 quorum that it still leads.
	ReadWithoutQuorumRound bool
}

// SnapshotSource gives the core read-only access to the snapshots the shell
// took, so that a leader can send one, chunk by chunk, to a member that needs
// compacted slots. The core never holds application state itself, nor a
// whole snapshot. It is called from within the core's methods, on the
// caller's goroutine.
type SnapshotSource interface {
	// SnapshotInfo describes the application bytes of the snapshot at slot:
	// the slot last passed to Compact or restored (a source may also keep
	// older ones). An error makes the leader try again at a later heartbeat.
	SnapshotInfo(slot uint64) (SnapshotInfo, error)
	// SnapshotChunk returns the n bytes at offset of the snapshot at slot
	// (offset+n never passes its size). An error, or fewer bytes, makes the
	// leader start the transfer again later.
	SnapshotChunk(slot, offset uint64, n int) ([]byte, error)
}

// Config configures one member's core.
type Config struct {
	// ID is this member; never peer.None.
	ID peer.ID
	// Members is the bootstrap membership, used when neither the restored
	// log nor the restored snapshot names one. A member that joins an
	// existing cluster starts with none and learns it from the leader.
	Members peer.Set
	// Q1 and Q2 are the phase-1 and phase-2 quorum sizes; 0 means a majority.
	Q1, Q2 int
	// ElectionTicks is the base election timeout; the actual timeout is drawn
	// from [ElectionTicks, 2*ElectionTicks). It is also the window for
	// CheckQuorum and for leader stickiness.
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval, < ElectionTicks.
	HeartbeatTicks int
	// Rand is the only source of randomness (election timeouts).
	Rand *rand.Rand
	// Snapshots serves snapshot bytes for MsgSnapshot.
	Snapshots SnapshotSource
	// SnapshotChunkBytes is the data size of one snapshot chunk (the last
	// may be shorter); at most Limits.SnapshotChunkBytesMax.
	SnapshotChunkBytes int
	// SnapshotInflightChunksMax bounds the chunks a leader has sent to one
	// follower and not yet seen acknowledged.
	SnapshotInflightChunksMax int

	// BatchEntriesMax and BatchBytesMax bound one Accept (it always carries
	// at least one entry when one is due, whatever its size).
	BatchEntriesMax int
	BatchBytesMax   int
	// InflightEntriesMax and InflightBytesMax bound what a leader has sent to
	// one follower and not yet seen acknowledged (the bandwidth-delay product).
	InflightEntriesMax int
	InflightBytesMax   int
	// ProposalQueueMax and ProposalQueueBytesMax bound the leader's entries
	// above its commit index, in count and in bytes (one entry is always
	// accepted into an empty queue, whatever its size).
	ProposalQueueMax      int
	ProposalQueueBytesMax int
	// ReadQueueMax bounds the reads waiting for a quorum round or for the
	// leader's first commit.
	ReadQueueMax int
	// PhaseOneEntriesMax and PhaseOneBytesMax bound the entries in one
	// Promise; an acceptor with more above the candidate's commit refuses.
	PhaseOneEntriesMax int
	PhaseOneBytesMax   int
	// Limits are the decoding limits of the cluster's codec: the core never
	// builds a message a peer would refuse.
	Limits Limits

	// Bugs switches on planted bugs; tests only.
	Bugs PlantedBugs
}

// DefaultConfig returns a config for a LAN cluster with a reason for each
// value. The caller sets Snapshots.
func DefaultConfig(id peer.ID, members peer.Set, rng *rand.Rand) Config {
	return Config{
		ID:      id,
		Members: members,
		Rand:    rng,
		// With a 100 ms tick: elections after 1-2 s of silence, heartbeats
		// every 100 ms, as etcd's defaults.
		ElectionTicks:  10,
		HeartbeatTicks: 1,
		// 64 entries or 1 MiB per Accept keeps one message well under the
		// transport's frame limit and amortizes per-message costs.
		BatchEntriesMax: 64,
		BatchBytesMax:   1 << 20,
		// A shallow pipeline leaves room for batching (hashicorp/raft PR
		// #541); 4 MiB bounds memory per slow follower.
		InflightEntriesMax: 256,
		InflightBytesMax:   4 << 20,
		// Bounds the uncommitted suffix, hence phase-1 replies.
		ProposalQueueMax: 1024,
		// 8 MiB of uncommitted commands: a phase-1 reply carrying all of
		// them, plus one maximal entry, still fits PhaseOneBytesMax.
		ProposalQueueBytesMax: 8 << 20,
		ReadQueueMax:          1024,
		// 1 MiB chunks, 4 in flight: a chunk is one modest transport frame,
		// and 4 MiB per catching-up follower keeps a LAN link busy.
		SnapshotChunkBytes:        1 << 20,
		SnapshotInflightChunksMax: 4,
		// Room for a full proposal queue plus the no-ops a few failed
		// leaderships add. 12 MiB keeps a Promise within one 16 MiB
		// transport frame.
		PhaseOneEntriesMax: 1024 + 64,
		PhaseOneBytesMax:   12 << 20,
		Limits:             DefaultLimits,
	}
}

// validate checks cfg and returns the quorum system of its bootstrap
// membership (zero when Members is empty).
func (cfg *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.ID == peer.None:
		return bad("member id 0 is reserved")
	case cfg.Rand == nil:
		return bad("Rand is nil: the core needs an injected source")
	case cfg.Snapshots == nil:
		return bad("Snapshots is nil")
	case cfg.ElectionTicks < 2:
		return bad("ElectionTicks %d < 2", cfg.ElectionTicks)
	case cfg.HeartbeatTicks < 1 || cfg.HeartbeatTicks >= cfg.ElectionTicks:
		return bad("HeartbeatTicks %d must lie in 1..ElectionTicks-1 (%d)", cfg.HeartbeatTicks, cfg.ElectionTicks-1)
	case cfg.BatchEntriesMax < 1 || cfg.BatchBytesMax < 1:
		return bad("batch limits %d entries, %d bytes must be positive", cfg.BatchEntriesMax, cfg.BatchBytesMax)
	case cfg.InflightEntriesMax < 1 || cfg.InflightBytesMax < 1:
		return bad("in-flight limits %d entries, %d bytes must be positive", cfg.InflightEntriesMax, cfg.InflightBytesMax)
	case cfg.ProposalQueueMax < 1 || cfg.ReadQueueMax < 1:
		return bad("queue limits %d proposals, %d reads must be positive", cfg.ProposalQueueMax, cfg.ReadQueueMax)
	case cfg.PhaseOneEntriesMax <= cfg.ProposalQueueMax:
		// A leader's uncommitted suffix is up to ProposalQueueMax entries plus
		// its no-op; a smaller phase-1 limit could make a whole quorum refuse
		// every candidate after one leader filled its queue.
		return bad("PhaseOneEntriesMax %d must exceed ProposalQueueMax %d", cfg.PhaseOneEntriesMax, cfg.ProposalQueueMax)
	case cfg.ProposalQueueBytesMax < 1 ||
		cfg.PhaseOneBytesMax <= cfg.ProposalQueueBytesMax+2*(cfg.Limits.EntryBytesMax+entryOverheadBytes):
		// The same reasoning in bytes: the uncommitted suffix is at most
		// ProposalQueueBytesMax plus one entry over it and the no-op.
		return bad("PhaseOneBytesMax %d must exceed ProposalQueueBytesMax %d plus two maximal entries of %d bytes",
			cfg.PhaseOneBytesMax, cfg.ProposalQueueBytesMax, cfg.Limits.EntryBytesMax)
	case cfg.Limits.EntriesMax < cfg.BatchEntriesMax || cfg.Limits.EntriesMax < cfg.PhaseOneEntriesMax:
		return bad("codec EntriesMax %d below BatchEntriesMax %d or PhaseOneEntriesMax %d",
			cfg.Limits.EntriesMax, cfg.BatchEntriesMax, cfg.PhaseOneEntriesMax)
	case cfg.SnapshotChunkBytes < 1 || cfg.SnapshotChunkBytes > cfg.Limits.SnapshotChunkBytesMax ||
		cfg.SnapshotInflightChunksMax < 1:
		return bad("SnapshotChunkBytes %d must lie in 1..Limits.SnapshotChunkBytesMax (%d), SnapshotInflightChunksMax %d must be positive",
			cfg.SnapshotChunkBytes, cfg.Limits.SnapshotChunkBytesMax, cfg.SnapshotInflightChunksMax)
	case cfg.Limits.SnapshotBytesMax < 0:
		return bad("Limits.SnapshotBytesMax %d is negative", cfg.Limits.SnapshotBytesMax)
	case cfg.Limits.EntryBytesMax < 1 || cfg.Limits.MembersMax < 1:
		return bad("codec limits must be positive: %+v", cfg.Limits)
	case cfg.Members.Len() > cfg.Limits.MembersMax:
		return bad("%d members over MembersMax %d", cfg.Members.Len(), cfg.Limits.MembersMax)
	}
	if cfg.Members.Len() > 0 {
		if _, err := quorum.New(cfg.Members, cfg.Q1, cfg.Q2); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	} else if cfg.Q1 != 0 || cfg.Q2 != 0 {
		return bad("flexible quorums need a bootstrap membership")
	}
	return nil
}

// Restored is what the shell recovered from disk: the durable HardState, the
// log entries above the snapshot, in slot order, and the snapshot's metadata
// (zero if none).
type Restored struct {
	HardState HardState
	Entries   []Entry
	Snapshot  SnapshotMeta
}
