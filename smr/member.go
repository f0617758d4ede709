package smr

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"

	"github.com/chorus-project/chorus/internal/node"
	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/transport"
	"github.com/chorus-project/chorus/internal/vfs"
	"github.com/chorus-project/chorus/internal/wal"
)

// NotLeaderError is returned by a member that does not lead; it wraps
// ErrNotLeader. Leader is the leader that member knows (0 if none yet) and
// Addr its address, where the caller should retry.
type NotLeaderError struct {
	Leader MemberID
	Addr   string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "smr: not the leader (no leader known yet)"
	}
	return fmt.Sprintf("smr: not the leader; leader is %d at %s", e.Leader, e.Addr)
}

// Unwrap makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// Member is one member of a replicated state machine. Its methods are safe
// for concurrent use.
type Member struct {
	cfg   Config
	shell *node.Shell
	app   *applier
}

// Start opens cfg.DataDir (creating it for a new member), recovers the
// member's state from it, restores sm from the latest local snapshot,
// starts listening on this member's address and runs the member until
// Close. It refuses, with an error saying what to fix: an invalid Config
// (ErrInvalidConfig), a DataDir of another cluster or member (ErrIdentity),
// and an empty DataDir without Bootstrap or Join (ErrNoData).
func Start(ctx context.Context, cfg Config, sm StateMachine) (*Member, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	self, members, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	fsys := cfg.fs
	if fsys == nil {
		fsys = vfs.OS
	}
	if empty, err := dirEmpty(fsys, cfg.DataDir); err != nil {
		return nil, err
	} else if empty && !cfg.Bootstrap && !cfg.Join {
		return nil, fmt.Errorf("%w: %s; set Bootstrap for a new cluster, Join for a member added with AddMember, or point DataDir at this member's data",
			ErrNoData, cfg.DataDir)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	core := paxos.DefaultConfig(peer.ID(cfg.ID), members, nil)
	if cfg.Join {
		core.Members = peer.Set{}
	}
	core.Q1, core.Q2 = cfg.Q1, cfg.Q2
	// An entry must fit in one WAL record (with its slot, ballot and type);
	// a snapshot travels in chunks of paxos.DefaultLimits.SnapshotChunkBytesMax.
	core.Limits.EntryBytesMax = wal.DefaultRecordBytesMax - entryRecordOverheadBytes
	core.Limits.SnapshotBytesMax = snapshotBytesMax
	core.ElectionTicks, core.HeartbeatTicks = cfg.ElectionTicks, cfg.HeartbeatTicks
	peers := make(map[peer.ID]string)
	for _, p := range cfg.Members {
		if p.ID != cfg.ID {
			peers[peer.ID(p.ID)] = p.Addr
		}
	}
	app := newApplier(sm, cfg.SessionsMax, peer.ID(cfg.ID), cfg.Members, core.Members)
	app.plantNoDedup = cfg.plantNoDedup
	scfg := node.ShellConfig{
		ClusterID:       cfg.ClusterID,
		Core:            core,
		ListenAddr:      self,
		Peers:           peers,
		FS:              fsys,
		Dir:             cfg.DataDir,
		TickInterval:    cfg.TickInterval,
		SnapshotEntries: cfg.SnapshotEntries,
		Logger:          logger,
	}
	if cfg.newTransport != nil {
		scfg.NewTransport = func(h transport.Handler) (transport.Transport, error) { return cfg.newTransport(cfg.ID, h) }
	}
	shell, err := node.StartShell(scfg, app)
	switch {
	case errors.Is(err, node.ErrIdentity):
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	case errors.Is(err, node.ErrShellConfig), errors.Is(err, paxos.ErrInvalidConfig):
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	case err != nil:
		return nil, fmt.Errorf("smr: start member %d: %w", cfg.ID, err)
	}
	app.setShell(shell)
	return &Member{cfg: cfg, shell: shell, app: app}, nil
}

// dirEmpty reports whether dir is missing or holds nothing.
func dirEmpty(fsys vfs.FS, dir string) (bool, error) {
	names, err := fsys.List(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("smr: read data directory %s: %w", dir, err)
	}
	return len(names) == 0, nil
}

// NewRequestID returns a RequestID for a new client: a random client id and
// sequence number 1. Keep it to retry the request; number the client's next
// requests 2, 3, ...
func NewRequestID() RequestID { return RequestID{Client: rand.Uint64(), Seq: 1} }

// Propose replicates cmd and returns the result of StateMachine.Apply on
// this member once the command is applied here. It runs under a fresh
// RequestID, so it cannot be retried with deduplication: use ProposeRequest
// for that. On a follower it fails with a *NotLeaderError.
func (m *Member) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	return m.ProposeRequest(ctx, NewRequestID(), cmd)
}

// ProposeRequest is Propose under the caller's RequestID. Retrying the same
// id and command (on this member or another, after any error) applies the
// command at most once and returns the original result; see the package
// comment for the limits of that guarantee.
func (m *Member) ProposeRequest(ctx context.Context, id RequestID, cmd []byte) ([]byte, error) {
	data := encodeUserCommand(id, cmd)
	w := &waiter{typ: paxos.EntryNormal, data: data, ch: make(chan outcome, 1)}
	return m.propose(ctx, w, func(onLog func(uint64)) error { return m.shell.Propose(ctx, data, onLog) })
}

// propose hands a proposal to the shell and waits for its slot's outcome.
func (m *Member) propose(ctx context.Context, w *waiter, submit func(onLog func(uint64)) error) ([]byte, error) {
	// slot is set on the shell's goroutine; submit may return (its ctx
	// done) while that goroutine still runs the proposal.
	var slotAtomic atomic.Uint64
	err := submit(func(s uint64) {
		slotAtomic.Store(s)
		m.app.wait(s, w)
	})
	slot := slotAtomic.Load()
	if err != nil {
		if slot != 0 {
			m.app.forget(slot, w)
		}
		return nil, m.mapErr(err)
	}
	select {
	case out := <-w.ch:
		return out.result, out.err
	case <-ctx.Done():
		m.app.forget(slot, w)
		return nil, ctx.Err()
	case <-m.shell.Done():
		m.app.forget(slot, w)
		return nil, m.mapErr(node.ErrStopped)
	}
}

// Read runs StateMachine.Query(q) at a linearizable point: the leader
// confirms with a quorum that it still leads, and the query runs once this
// member applied everything committed before the call. Only the leader
// serves reads; elsewhere it fails with a *NotLeaderError.
func (m *Member) Read(ctx context.Context, q []byte) ([]byte, error) {
	var res []byte
	if err := m.shell.Read(ctx, func() { res = m.app.sm.Query(q) }); err != nil {
		return nil, m.mapErr(err)
	}
	return res, nil
}

// AddMember adds member id, listening at addr, to the cluster: first the
// address goes through the log (so every member can reach it), then the
// membership change. Start the new member with Join. Call it on the leader.
func (m *Member) AddMember(ctx context.Context, id MemberID, addr string) error {
	if id == 0 || addr == "" || len(addr) > addrBytesMax {
		return fmt.Errorf("%w: member %d at %q", ErrInvalidConfig, id, addr)
	}
	data := encodeAddressCommand(id, addr)
	w := &waiter{typ: paxos.EntryNormal, data: data, ch: make(chan outcome, 1)}
	if _, err := m.propose(ctx, w, func(onLog func(uint64)) error { return m.shell.Propose(ctx, data, onLog) }); err != nil {
		return err
	}
	return m.confChange(ctx, paxos.ConfChange{Op: paxos.AddMember, ID: peer.ID(id)})
}

// RemoveMember removes member id from the cluster. Call it on the leader.
// A removed leader steps down once the change is committed.
func (m *Member) RemoveMember(ctx context.Context, id MemberID) error {
	return m.confChange(ctx, paxos.ConfChange{Op: paxos.RemoveMember, ID: peer.ID(id)})
}

func (m *Member) confChange(ctx context.Context, cc paxos.ConfChange) error {
	w := &waiter{typ: paxos.EntryConfig, cc: cc, ch: make(chan outcome, 1)}
	_, err := m.propose(ctx, w, func(onLog func(uint64)) error { return m.shell.ProposeConfChange(ctx, cc, onLog) })
	return err
}

// mapErr turns the layers' errors into this package's.
func (m *Member) mapErr(err error) error {
	var nl *paxos.NotLeaderError
	switch {
	case errors.As(err, &nl):
		id := MemberID(nl.Leader)
		return &NotLeaderError{Leader: id, Addr: m.app.address(id)}
	case errors.Is(err, paxos.ErrProposalDropped), errors.Is(err, node.ErrBusy):
		return fmt.Errorf("%w: %w", ErrBusy, err)
	case errors.Is(err, node.ErrReadTimeout):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, paxos.ErrProposalTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, paxos.ErrConfigChangePending), errors.Is(err, paxos.ErrLeaderNotReady),
		errors.Is(err, paxos.ErrFlexibleMembership), errors.Is(err, paxos.ErrBadConfChange):
		return fmt.Errorf("%w: %w", ErrMembership, err)
	case errors.Is(err, node.ErrStopped):
		if cause := m.shell.Err(); cause != nil {
			return fmt.Errorf("%w: %w", ErrStopped, cause)
		}
		return ErrStopped
	}
	return err
}

// Status describes a member, for operators and tests.
type Status struct {
	ID MemberID
	// Role is "follower", "pre-candidate", "candidate" or "leader".
	Role string
	// Leader is the leader this member knows (0 if none), LeaderAddr its
	// address.
	Leader     MemberID
	LeaderAddr string
	// Commit, Applied and LastSlot are log positions: the highest slot known
	// committed, applied to the state machine, and held in the log.
	Commit, Applied, LastSlot uint64
	// SnapshotSlot is the slot of the latest snapshot (0 if none).
	SnapshotSlot uint64
	// Members is the membership in force, in ID order.
	Members []MemberID
	Q1, Q2  int
}

// Status returns the member's state as of its last step.
func (m *Member) Status() Status {
	st := m.shell.Status()
	s := Status{
		ID: m.cfg.ID, Role: st.Role.String(), Leader: MemberID(st.Leader),
		Commit: st.Commit, Applied: st.Applied, LastSlot: st.LastSlot, SnapshotSlot: st.SnapshotSlot,
		Q1: st.Q1, Q2: st.Q2,
	}
	if s.Leader != 0 {
		s.LeaderAddr = m.app.address(s.Leader)
	}
	for id := range st.Members.All() {
		s.Members = append(s.Members, MemberID(id))
	}
	return s
}

// Close stops the member and releases its address and data directory. Calls
// in progress fail with ErrStopped. It returns the disk error that stopped
// the member earlier, if one did.
func (m *Member) Close() error {
	return m.shell.Close()
}
