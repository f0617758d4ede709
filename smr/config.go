package smr

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/quorum"
	"github.com/chorus-project/chorus/internal/transport"
	"github.com/chorus-project/chorus/internal/vfs"
)

// Errors of this package, wrapped with detail; test with errors.Is.
var (
	// ErrInvalidConfig: Start refused the Config; the message says which
	// field to fix.
	ErrInvalidConfig = errors.New("smr: invalid config")
	// ErrIdentity: the data directory belongs to another cluster or member
	// (it also wraps the storage layer's own identity error).
	ErrIdentity = errors.New("smr: data directory belongs to another cluster or member")
	// ErrNoData: the data directory is empty but the Config neither
	// bootstraps a new cluster nor joins an existing one. A member that lost
	// its disk must not come back as if it had never promised anything: add
	// it again as a new member (RemoveMember, then AddMember and Join) or
	// point DataDir at its data.
	ErrNoData = errors.New("smr: empty data directory and neither Bootstrap nor Join")
	// ErrNotLeader: this member does not lead. The error is a
	// *NotLeaderError naming the leader it knows, to retry there.
	ErrNotLeader = errors.New("smr: not the leader")
	// ErrProposalLost: the proposal was in this member's log, but the slot
	// was decided otherwise (a leader change) or skipped by a snapshot. It
	// may or may not have been applied: retry with the same RequestID, which
	// the session table deduplicates.
	ErrProposalLost = errors.New("smr: proposal lost; retry with the same RequestID")
	// ErrStaleRequest: a request whose Seq is below the last one applied for
	// its client; it was not applied.
	ErrStaleRequest = errors.New("smr: request older than its client's last applied request")
	// ErrBusy: back-pressure (too many uncommitted proposals or waiting
	// reads); retry later.
	ErrBusy = errors.New("smr: member busy")
	// ErrTooLarge: a command, query or address over the limits.
	ErrTooLarge = errors.New("smr: request too large")
	// ErrMembership: a membership change the cluster refused (one is already
	// pending, the id is already a member or not one, flexible quorums).
	ErrMembership = errors.New("smr: membership change refused")
	// ErrTimeout: the leader did not confirm a read in time (it stepped down
	// or lost its quorum). Nothing was read; retry.
	ErrTimeout = errors.New("smr: read not confirmed in time")
	// ErrStopped: the member was closed, or stopped after a disk error
	// (which the error then also wraps).
	ErrStopped = errors.New("smr: member stopped")
)

// MemberID names a member; 0 is reserved.
type MemberID uint64

// Peer is a member and the TCP address it listens on.
type Peer struct {
	ID   MemberID
	Addr string
}

// Limits of this package.
const (
	// addrBytesMax bounds an address in an address command.
	addrBytesMax = 255
	// sessionsLimit bounds SessionsMax: every session is in every snapshot.
	sessionsLimit = 1 << 20
	// entryRecordOverheadBytes is what a log entry's WAL record adds to its
	// data (slot, ballot, type and length varints), rounded up.
	entryRecordOverheadBytes = 64
	// snapshotBytesMax bounds a snapshot (session table, address book and
	// the state machine's bytes). It is written to a file and sent to
	// followers in chunks (paxos DefaultConfig: 1 MiB each, 4 in flight), so
	// it bounds disk use and transfer time, not memory.
	snapshotBytesMax = 4 << 30
)

// Config configures a Member. DefaultConfig fills the tuning fields.
type Config struct {
	// ClusterID names the cluster; it is written in the data directory and
	// checked in every connection's hello. 0 is refused.
	ClusterID uint64
	// ID is this member.
	ID MemberID
	// Members lists every member known at start, this one included (its Addr
	// is where it listens). With Bootstrap it is the initial membership;
	// a member that bootstrapped must restart with the same list (the
	// membership changes since are in its log). With Join it is where to
	// reach the existing members; the membership is learnt from the log.
	Members []Peer
	// DataDir holds the member's WAL and snapshots.
	DataDir string
	// Bootstrap starts a new cluster from an empty DataDir.
	Bootstrap bool
	// Join starts a member that an existing cluster's leader adds with
	// AddMember; it waits for the leader to bring it up to date.
	Join bool

	// TickInterval is the length of one protocol tick.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks: a follower campaigns after
	// ElectionTicks to 2*ElectionTicks-1 ticks without a leader; a leader
	// heartbeats every HeartbeatTicks.
	ElectionTicks  int
	HeartbeatTicks int
	// Q1 and Q2 are the phase-1 and phase-2 quorum sizes (0 = majority);
	// Q1 + Q2 must exceed the number of members. Membership changes are
	// refused under flexible quorums.
	Q1, Q2 int
	// SnapshotEntries: snapshot the state machine and compact the log every
	// this many applied entries (0 never compacts).
	SnapshotEntries uint64
	// SessionsMax bounds the deduplication table (clients remembered).
	SessionsMax int
	// Logger receives the member's events; nil discards them.
	Logger *slog.Logger

	// For tests in this package: a file system, a transport factory and a
	// planted bug (see applier.plantNoDedup).
	fs           vfs.FS
	newTransport func(id MemberID, h transport.Handler) (transport.Transport, error)
	plantNoDedup bool
}

// DefaultConfig returns a Config with LAN settings, each with its reason:
//
//   - TickInterval 100 ms, ElectionTicks 10, HeartbeatTicks 1: a leader is
//     replaced after 1-2 s of silence; heartbeats every 100 ms (etcd's
//     defaults).
//   - SnapshotEntries 10000: a restarted or slow member replays at most
//     that many entries; a snapshot every 10000 commands costs little.
//   - SessionsMax 4096: retries from the 4096 most recently active clients
//     are deduplicated; the table costs 4096 results in every snapshot.
func DefaultConfig(clusterID uint64, id MemberID, members []Peer, dataDir string) Config {
	return Config{
		ClusterID:       clusterID,
		ID:              id,
		Members:         members,
		DataDir:         dataDir,
		TickInterval:    100 * time.Millisecond,
		ElectionTicks:   10,
		HeartbeatTicks:  1,
		SnapshotEntries: 10000,
		SessionsMax:     4096,
	}
}

// validate checks cfg and returns this member's address and the members
// as a set.
func (cfg *Config) validate() (self string, members peer.Set, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.ClusterID == 0:
		return "", members, bad("ClusterID is 0; every member of a cluster needs the same non-zero ClusterID")
	case cfg.ID == 0:
		return "", members, bad("ID is 0, which is reserved")
	case cfg.DataDir == "":
		return "", members, bad("DataDir is empty")
	case cfg.Bootstrap && cfg.Join:
		return "", members, bad("Bootstrap and Join are both set; a member starts a new cluster or joins one")
	case cfg.TickInterval <= 0:
		return "", members, bad("TickInterval %v must be positive", cfg.TickInterval)
	case cfg.ElectionTicks < 2:
		return "", members, bad("ElectionTicks %d must be at least 2", cfg.ElectionTicks)
	case cfg.HeartbeatTicks < 1 || cfg.HeartbeatTicks >= cfg.ElectionTicks:
		return "", members, bad("HeartbeatTicks %d must lie in 1..ElectionTicks-1 (%d)", cfg.HeartbeatTicks, cfg.ElectionTicks-1)
	case cfg.SessionsMax < 1 || cfg.SessionsMax > sessionsLimit:
		return "", members, bad("SessionsMax %d must lie in 1..%d", cfg.SessionsMax, sessionsLimit)
	}
	ids := make([]peer.ID, 0, len(cfg.Members))
	seenID := make(map[MemberID]bool)
	seenAddr := make(map[string]MemberID)
	for _, p := range cfg.Members {
		switch {
		case p.ID == 0:
			return "", members, bad("Members holds id 0, which is reserved")
		case seenID[p.ID]:
			return "", members, bad("Members lists id %d twice", p.ID)
		case p.Addr == "" || len(p.Addr) > addrBytesMax:
			return "", members, bad("member %d has address %q; want a host:port of 1..%d bytes", p.ID, p.Addr, addrBytesMax)
		}
		if other, ok := seenAddr[p.Addr]; ok {
			return "", members, bad("members %d and %d share address %s", other, p.ID, p.Addr)
		}
		seenID[p.ID], seenAddr[p.Addr] = true, p.ID
		ids = append(ids, peer.ID(p.ID))
		if p.ID == cfg.ID {
			self = p.Addr
		}
	}
	if self == "" {
		return "", members, bad("Members does not list this member (ID %d) with its address", cfg.ID)
	}
	members, err = peer.NewSet(ids...)
	if err != nil {
		return "", members, bad("%v", err)
	}
	if cfg.Join {
		if cfg.Q1 != 0 || cfg.Q2 != 0 {
			return "", members, bad("Q1/Q2 with Join: flexible quorums forbid membership changes")
		}
		return self, members, nil
	}
	if _, err := quorum.New(members, cfg.Q1, cfg.Q2); err != nil {
		return "", members, fmt.Errorf("%w: Q1=%d Q2=%d with %d members (need Q1+Q2 > N, each in 1..N): %w",
			ErrInvalidConfig, cfg.Q1, cfg.Q2, members.Len(), err)
	}
	return self, members, nil
}

// StateMachine is the application a Member replicates.
//
// Threading contract: the member calls every method from its one goroutine,
// one call at a time, never concurrently with each other, so an
// implementation needs no locks against the member. While a method runs,
// the member does nothing else (no messages, no fsyncs): keep them short.
// They must not call the Member's methods (that would deadlock).
//
// Determinism: Apply must give the same result and state change on every
// member for the same command and state: no clock, randomness, map order or
// I/O that differs between members. Query must not change the state.
type StateMachine interface {
	// Apply executes a committed command, in log order, and returns its
	// result (handed to the Propose that proposed it, if it was on this
	// member). Deduplicated retries are not applied again.
	Apply(cmd []byte) []byte
	// Query answers a read-only query against the current state.
	Query(q []byte) []byte
	// Snapshot writes the whole state. It is called every
	// Config.SnapshotEntries applied commands.
	Snapshot(w io.Writer) error
	// Restore replaces the whole state with what Snapshot wrote (at start-up
	// from the local snapshot, or from a leader's). An error stops the
	// member.
	Restore(r io.Reader) error
}
