package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/transport"
	"github.com/chorus-project/chorus/internal/vfs"
	"github.com/chorus-project/chorus/internal/wal"
	"github.com/chorus-project/chorus/internal/wire"
)

// Errors of the shell; test with errors.Is.
var (
	// ErrShellConfig: a ShellConfig that cannot run; the message says which
	// field to fix.
	ErrShellConfig = errors.New("node: invalid shell config")
	// ErrStopped: the shell was closed, or stopped after a disk error (the
	// error then also wraps the disk's error).
	ErrStopped = errors.New("node: member stopped")
	// ErrBusy: a bounded queue between callers and the shell's goroutine is
	// full. Retry later.
	ErrBusy = errors.New("node: member busy")
	// ErrReadTimeout: the leader did not confirm a read within
	// ReadTimeoutTicks (it stepped down or lost its quorum, and the core
	// dropped the read). Nothing was read; retry, perhaps elsewhere.
	ErrReadTimeout = errors.New("node: read not confirmed in time")
)

// ShellApp is the state machine a Shell drives. Every method is called on
// the shell's goroutine, one call at a time, so an implementation needs no
// locking against the shell (it does against its own other users).
type ShellApp interface {
	// Applier receives committed entries in slot order and snapshots to
	// install (from a leader, or the local one at start-up).
	Applier
	// Snapshot writes the state as of the last applied entry. The shell
	// calls it every ShellConfig.SnapshotEntries applied entries and then
	// compacts the log up to that entry.
	Snapshot(w io.Writer) error
}

// ShellConfig configures a Shell.
type ShellConfig struct {
	// ClusterID names the cluster: it is checked against the data
	// directory's identity and exchanged in every transport hello.
	ClusterID uint64
	// Core configures the paxos core; Core.ID is this member. The shell sets
	// Core.Snapshots (its Disk) and, when nil, Core.Rand (seeded from the
	// runtime's random source).
	Core paxos.Config
	// ListenAddr is the TCP address this member accepts peers on.
	ListenAddr string
	// Peers maps the other members to their addresses, for the transport.
	// More are added later with SetPeer.
	Peers map[peer.ID]string
	// FS and Dir hold the member's durable state (see OpenDisk).
	FS  vfs.FS
	Dir string
	// WAL tunes the write-ahead log.
	WAL wal.Options
	// TickInterval is the wall-clock length of one core tick.
	TickInterval time.Duration
	// SnapshotEntries: after this many entries applied since the last
	// snapshot, the shell snapshots the app and compacts the log. 0 never
	// snapshots (the log grows without bound).
	SnapshotEntries uint64
	// RequestQueueMax bounds the proposals and reads that callers have
	// handed to the shell's goroutine and it has not yet taken; a caller
	// beyond it gets ErrBusy.
	RequestQueueMax int
	// InboxMessagesMax bounds the decoded peer messages waiting for the
	// shell's goroutine; when full, the transport's handler waits, which
	// pushes back on the sender through TCP flow control.
	InboxMessagesMax int
	// InputBatchMax bounds how many queued inputs (messages, proposals,
	// reads) the shell takes between two Readys: more inputs per Ready
	// means fewer fsyncs, fewer means lower latency for the first.
	InputBatchMax int
	// InputBytesMax bounds the entry bytes (proposals, and entries carried
	// by peers' messages) taken between two Readys, once the first input is
	// taken: a Ready's entries are written with one WAL append, which must
	// stay within the WAL's BatchBytesMax.
	InputBytesMax int
	// ReadTimeoutTicks bounds how long a read waits for the leader's quorum
	// round; 0 means 2*Core.ElectionTicks (by then a leader that lost its
	// quorum has stepped down, and the core dropped the read).
	ReadTimeoutTicks int
	// Logger receives the shell's events; nil discards them.
	Logger *slog.Logger
	// NewTransport, if not nil, replaces the TCP transport (tests use
	// transport.MemNetwork). It must deliver to h.
	NewTransport func(h transport.Handler) (transport.Transport, error)
}

// DefaultShellQueues fills the queue limits of cfg that are zero, each with
// its reason:
//
//   - RequestQueueMax 4096: several times the core's ProposalQueueMax, so
//     callers are refused by the core's back-pressure (which knows how much
//     is uncommitted), not by a channel.
//   - InboxMessagesMax 4096: a few Readys' worth of traffic from every peer
//     while the shell waits on an fsync.
//   - InputBatchMax 1024: one Ready (one fsync) carries up to a full
//     proposal queue, which is where group commit pays.
//   - InputBytesMax 1 MiB: with one more input of at most an Accept batch
//     (Core.BatchBytesMax) or one entry, a Ready stays well inside the
//     WAL's default 4 MiB batch.
//   - ReadTimeoutTicks 2*Core.ElectionTicks: see the field.
func DefaultShellQueues(cfg *ShellConfig) {
	if cfg.RequestQueueMax == 0 {
		cfg.RequestQueueMax = 4096
	}
	if cfg.InboxMessagesMax == 0 {
		cfg.InboxMessagesMax = 4096
	}
	if cfg.InputBatchMax == 0 {
		cfg.InputBatchMax = 1024
	}
	if cfg.InputBytesMax == 0 {
		cfg.InputBytesMax = 1 << 20
	}
	if cfg.ReadTimeoutTicks == 0 {
		cfg.ReadTimeoutTicks = 2 * cfg.Core.ElectionTicks
	}
}

func (cfg *ShellConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrShellConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.ClusterID == 0:
		return bad("ClusterID is 0 (what an unset field looks like); pick a cluster id")
	case cfg.Core.ID == peer.None:
		return bad("Core.ID is 0, which is reserved")
	case cfg.FS == nil || cfg.Dir == "":
		return bad("FS and Dir are required")
	case cfg.TickInterval <= 0:
		return bad("TickInterval %v must be positive", cfg.TickInterval)
	case cfg.RequestQueueMax < 1 || cfg.InboxMessagesMax < 1 || cfg.InputBatchMax < 1 || cfg.ReadTimeoutTicks < 1 ||
		cfg.InputBytesMax < 1:
		return bad("RequestQueueMax %d, InboxMessagesMax %d, InputBatchMax %d, InputBytesMax %d and ReadTimeoutTicks %d must be positive",
			cfg.RequestQueueMax, cfg.InboxMessagesMax, cfg.InputBatchMax, cfg.InputBytesMax, cfg.ReadTimeoutTicks)
	case cfg.NewTransport == nil && cfg.Core.Limits.SnapshotChunkBytesMax > transport.DefaultLimits().FrameBytesMax-snapshotFrameOverheadBytes:
		// A snapshot chunk the transport refuses to send would strand every
		// member that needs it.
		return bad("Core.Limits.SnapshotChunkBytesMax %d does not fit in a transport frame of %d bytes with %d bytes of headers",
			cfg.Core.Limits.SnapshotChunkBytesMax, transport.DefaultLimits().FrameBytesMax, snapshotFrameOverheadBytes)
	case cfg.NewTransport == nil && cfg.ListenAddr == "":
		return bad("ListenAddr is required")
	}
	for id := range cfg.Peers {
		if id == peer.None || id == cfg.Core.ID {
			return bad("Peers holds member %s (0 is reserved; this member is not its own peer)", id)
		}
	}
	return nil
}

// errAppSnapshot marks a snapshot that failed while the app wrote it (or
// the file under it refused a write): the file is discarded and the member
// goes on with its log uncompacted.
var errAppSnapshot = errors.New("node: app snapshot failed")

// snapshotFrameOverheadBytes bounds what a MsgSnapshot adds to its chunk's
// bytes in a transport frame: the envelope, the message header,
// the snapshot's metadata with up to Limits.MembersMax member ids.
const snapshotFrameOverheadBytes = 64 << 10

// Shell runs one paxos member: a goroutine that owns the core (which is not
// safe for concurrent use) and feeds it ticks, peer messages and callers'
// requests, and after each batch of inputs carries out every Ready with
// HandleReady: persist (one fsync), send, apply, advance. Its methods are
// safe for concurrent use.
//
// A disk error stops the member: every call in progress and every later
// call fails with an error wrapping ErrStopped and the disk's error. The
// process must restart the member from its directory (see package wal on why
// a failed fsync cannot be retried in place).
type Shell struct {
	cfg  ShellConfig
	log  *slog.Logger
	app  ShellApp
	core *paxos.Core
	disk *Disk
	tr   transport.Transport
	rec  Recovered

	inbox    chan paxos.Message
	requests chan request

	stop     chan struct{} // closed by Close
	done     chan struct{} // closed when the loop has exited
	released chan struct{} // closed when the transport and disk are closed
	stopOnce sync.Once
	err      error // why the loop exited; read after done

	status atomic.Pointer[paxos.Status]
	// dropped counts peer messages dropped undecoded or refused by the core.
	dropped atomic.Uint64

	// Owned by the loop goroutine.
	applied        uint64
	appliedBallot  paxos.Ballot
	appliedMembers peer.Set
	snapSlot       uint64
	ticks          uint64
	readSeq        uint64
	readsPending   map[uint64]*readReq // waiting for their ReadState, by token
	readsApplying  []*readReq          // released, waiting for applied >= index
}

// request is a caller's input for the loop goroutine.
type request struct {
	ctx   context.Context
	kind  requestKind
	data  []byte
	cc    paxos.ConfChange
	onLog func(slot uint64) // proposals: called on the loop goroutine once appended
	read  func()            // reads: run on the loop goroutine at the read point
	reply chan error
}

type requestKind uint8

const (
	reqPropose requestKind = iota + 1
	reqConfChange
	reqRead
)

type readReq struct {
	ctx       context.Context
	startTick uint64
	index     uint64
	fn        func()
	reply     chan error
}

// StartShell opens the data directory, rebuilds the core from it, installs
// the local snapshot into app, starts the transport and the loop.
// Shell.Recovered then says what the disk held (Fresh for a new directory).
func StartShell(cfg ShellConfig, app ShellApp) (*Shell, error) {
	DefaultShellQueues(&cfg)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("member", cfg.Core.ID)
	disk, rec, err := OpenDisk(DiskOptions{
		FS: cfg.FS, Dir: cfg.Dir, WAL: cfg.WAL, Logger: logger,
		SnapshotBytesMax: uint64(max(cfg.Core.Limits.SnapshotBytesMax, 0)),
		Identity:         Identity{ClusterID: cfg.ClusterID, MemberID: cfg.Core.ID},
	})
	if err != nil {
		return nil, err
	}
	s := &Shell{
		cfg: cfg, log: logger, app: app, disk: disk, rec: rec,
		inbox:        make(chan paxos.Message, cfg.InboxMessagesMax),
		requests:     make(chan request, cfg.RequestQueueMax),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		released:     make(chan struct{}),
		readsPending: make(map[uint64]*readReq),
	}
	if err := s.init(); err != nil {
		disk.Close()
		return nil, err
	}
	go s.run()
	return s, nil
}

// init builds the core, restores the app and starts the transport.
func (s *Shell) init() error {
	cc := s.cfg.Core
	cc.Snapshots = s.disk
	if cc.Rand == nil {
		cc.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	core, err := paxos.New(cc, s.rec.Restored)
	if err != nil {
		return err
	}
	s.core = core
	snap := s.rec.Restored.Snapshot
	s.applied, s.appliedBallot, s.snapSlot = snap.Slot, snap.Ballot, snap.Slot
	s.appliedMembers = cc.Members
	if snap.Members.Len() > 0 {
		s.appliedMembers = snap.Members
	}
	if err := s.disk.ReadSnapshot(s.app.Restore); err != nil {
		return fmt.Errorf("node: restore local snapshot at slot %d: %w", snap.Slot, err)
	}
	if s.cfg.NewTransport != nil {
		s.tr, err = s.cfg.NewTransport(s.handle)
	} else {
		tc := transport.DefaultConfig(cc.ID, s.cfg.ClusterID, s.cfg.ListenAddr)
		tc.Logger = s.log
		s.tr, err = transport.NewTCP(tc, s.handle)
	}
	if err != nil {
		return err
	}
	for id, addr := range s.cfg.Peers {
		s.tr.SetPeer(id, addr)
	}
	st := core.Status()
	s.status.Store(&st)
	return nil
}

// Recovered reports what StartShell found on disk.
func (s *Shell) Recovered() Recovered { return s.rec }

// handle is the transport's Handler: it decodes on the sender's goroutine,
// so the loop only steps decoded messages, and drops what is not for us.
func (s *Shell) handle(env wire.Envelope) {
	m, err := s.decode(env)
	if err != nil {
		// A peer's bad message costs that message, never the member.
		s.dropped.Add(1)
		s.log.Warn("dropping message", "from", env.From, "err", err)
		return
	}
	select {
	case s.inbox <- m:
	case <-s.done:
	}
}

func (s *Shell) decode(env wire.Envelope) (paxos.Message, error) {
	if env.Kind != paxos.WireKind || env.To != s.cfg.Core.ID {
		return paxos.Message{}, fmt.Errorf("envelope kind %#x to %s, want kind %#x to %s",
			uint16(env.Kind), env.To, uint16(paxos.WireKind), s.cfg.Core.ID)
	}
	m, err := paxos.DecodeMessage(env.Payload, s.cfg.Core.Limits)
	if err != nil {
		return paxos.Message{}, err
	}
	if m.From != env.From || m.To != env.To {
		return paxos.Message{}, fmt.Errorf("message %s->%s in an envelope %s->%s", m.From, m.To, env.From, env.To)
	}
	return m, nil
}

// send puts one envelope per message on the transport. A refused send is a
// lost message, which the protocol retransmits.
func (s *Shell) send(msgs []paxos.Message) {
	for _, m := range msgs {
		s.tr.Send(wire.Envelope{Kind: paxos.WireKind, From: m.From, To: m.To, Payload: paxos.EncodeMessage(m)})
	}
}

// run is the loop goroutine.
func (s *Shell) run() {
	err := s.loop()
	s.err = err
	if err != nil {
		s.log.Error("member stopped", "err", err)
	}
	close(s.done)
	for _, rr := range s.readsPending {
		rr.reply <- s.stoppedErr()
	}
	for _, rr := range s.readsApplying {
		rr.reply <- s.stoppedErr()
	}
	s.drainRequests()
	if err := s.tr.Close(); err != nil {
		s.log.Warn("closing transport", "err", err)
	}
	if err := s.disk.Close(); err != nil {
		s.log.Warn("closing disk", "err", err)
	}
	close(s.released)
}

// drainRequests answers the requests still queued after the loop exited.
func (s *Shell) drainRequests() {
	for {
		select {
		case r := <-s.requests:
			r.reply <- s.stoppedErr()
		default:
			return
		}
	}
}

func (s *Shell) stoppedErr() error {
	if s.err != nil {
		return fmt.Errorf("%w: %w", ErrStopped, s.err)
	}
	return ErrStopped
}

func (s *Shell) loop() error {
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	ctx := context.Background()
	for {
		// Handle whatever the core has to hand out before waiting: after a
		// restart it may have committed entries to re-apply.
		if err := s.handleReadys(ctx); err != nil {
			return err
		}
		select {
		case <-s.stop:
			return nil
		case <-ticker.C:
			s.ticks++
			s.core.Tick()
			s.expireReads()
		case m := <-s.inbox:
			s.step(m)
			s.takeMore(messageBytes(m))
		case r := <-s.requests:
			s.serve(r)
			s.takeMore(len(r.data))
		}
	}
}

// takeMore takes the inputs already queued, up to InputBatchMax inputs and
// InputBytesMax entry bytes in all, so that they share the next Ready and
// its fsync.
func (s *Shell) takeMore(bytes int) {
	for range s.cfg.InputBatchMax - 1 {
		if bytes >= s.cfg.InputBytesMax {
			return
		}
		select {
		case m := <-s.inbox:
			s.step(m)
			bytes += messageBytes(m)
		case r := <-s.requests:
			s.serve(r)
			bytes += len(r.data)
		default:
			return
		}
	}
}

// messageBytes is the entry and snapshot data m may add to a Ready.
func messageBytes(m paxos.Message) int {
	n := 0
	for _, e := range m.Entries {
		n += len(e.Data)
	}
	if m.Chunk != nil {
		n += len(m.Chunk.Data)
	}
	return n
}

func (s *Shell) step(m paxos.Message) {
	if err := s.core.Step(m); err != nil {
		s.dropped.Add(1)
		s.log.Debug("core refused message", "msg", m.String(), "err", err)
	}
}

// serve hands one caller's request to the core.
func (s *Shell) serve(r request) {
	if r.ctx.Err() != nil {
		r.reply <- r.ctx.Err()
		return
	}
	switch r.kind {
	case reqPropose, reqConfChange:
		var err error
		if r.kind == reqPropose {
			err = s.core.Propose(r.data)
		} else {
			err = s.core.ProposeConfChange(r.cc)
		}
		if err == nil && r.onLog != nil {
			// The core appended the entry at its last slot.
			r.onLog(s.core.Status().LastSlot)
		}
		r.reply <- err
	case reqRead:
		s.readSeq++
		token := binary.BigEndian.AppendUint64(nil, s.readSeq)
		if err := s.core.ReadIndex(token); err != nil {
			r.reply <- err
			return
		}
		s.readsPending[s.readSeq] = &readReq{ctx: r.ctx, startTick: s.ticks, fn: r.read, reply: r.reply}
	}
}

// handleReadys carries out every Ready the core has, then serves the reads
// whose index is applied and snapshots when due.
func (s *Shell) handleReadys(ctx context.Context) error {
	for s.core.HasReady() {
		rd := s.core.Ready()
		rss, err := HandleReady(ctx, s.core, rd, s.disk, s.send, (*shellApplier)(s), ReadyBugs{})
		if err != nil {
			return err
		}
		for _, rs := range rss {
			s.releaseRead(rs)
		}
		s.serveReads()
		if err := s.maybeSnapshot(ctx); err != nil {
			return err
		}
	}
	st := s.core.Status()
	s.status.Store(&st)
	return nil
}

func (s *Shell) releaseRead(rs paxos.ReadState) {
	if len(rs.Ctx) != 8 {
		return
	}
	token := binary.BigEndian.Uint64(rs.Ctx)
	rr, ok := s.readsPending[token]
	if !ok {
		return // expired
	}
	delete(s.readsPending, token)
	rr.index = rs.Index
	s.readsApplying = append(s.readsApplying, rr)
}

// serveReads runs every released read whose index is applied.
func (s *Shell) serveReads() {
	keep := s.readsApplying[:0]
	for _, rr := range s.readsApplying {
		switch {
		case rr.index > s.applied:
			keep = append(keep, rr)
		case rr.ctx.Err() != nil:
			rr.reply <- rr.ctx.Err()
		default:
			rr.fn()
			rr.reply <- nil
		}
	}
	clear(s.readsApplying[len(keep):])
	s.readsApplying = keep
}

// expireReads fails the reads whose caller gave up or that waited
// ReadTimeoutTicks: the core drops the reads of a leader that steps down
// without saying so, and this keeps readsPending bounded.
func (s *Shell) expireReads() {
	for token, rr := range s.readsPending {
		switch {
		case rr.ctx.Err() != nil:
			rr.reply <- rr.ctx.Err()
		case s.ticks-rr.startTick >= uint64(s.cfg.ReadTimeoutTicks):
			rr.reply <- fmt.Errorf("%w: %d ticks", ErrReadTimeout, s.cfg.ReadTimeoutTicks)
		default:
			continue
		}
		delete(s.readsPending, token)
	}
}

// maybeSnapshot snapshots the app and compacts the log once SnapshotEntries
// entries were applied since the last snapshot.
func (s *Shell) maybeSnapshot(ctx context.Context) error {
	if s.cfg.SnapshotEntries == 0 || s.applied-s.snapSlot < s.cfg.SnapshotEntries {
		return nil
	}
	meta := paxos.SnapshotMeta{Slot: s.applied, Ballot: s.appliedBallot, Members: s.appliedMembers}
	// Streamed into the file: the snapshot is never held in memory whole.
	write := func(w io.Writer) error {
		if err := s.app.Snapshot(w); err != nil {
			return fmt.Errorf("%w: %w", errAppSnapshot, err)
		}
		return nil
	}
	if err := s.disk.Compact(ctx, meta, write); err != nil {
		if errors.Is(err, ErrSnapshotTooLarge) || errors.Is(err, errAppSnapshot) {
			// Nothing was kept; the log keeps growing until a snapshot fits.
			s.log.Error("snapshot failed; log not compacted", "slot", s.applied, "err", err)
			s.snapSlot = s.applied
			return nil
		}
		return err
	}
	if err := s.core.Compact(meta.Slot); err != nil {
		return fmt.Errorf("node: compact core at slot %d: %w", meta.Slot, err)
	}
	s.snapSlot = meta.Slot
	s.log.Debug("snapshot taken", "slot", meta.Slot)
	return nil
}

// shellApplier tracks the applied slot, its ballot and the membership in
// force there (a snapshot's metadata) and forwards to the app.
type shellApplier Shell

func (a *shellApplier) Restore(meta paxos.SnapshotMeta, r io.Reader) error {
	if err := a.app.Restore(meta, r); err != nil {
		return err
	}
	a.applied, a.appliedBallot, a.appliedMembers = meta.Slot, meta.Ballot, meta.Members
	a.snapSlot = max(a.snapSlot, meta.Slot)
	return nil
}

func (a *shellApplier) Apply(e paxos.Entry) {
	if e.Type == paxos.EntryConfig {
		if m, err := paxos.DecodeMembers(e.Data); err == nil {
			a.appliedMembers = m
		}
	}
	a.app.Apply(e)
	a.applied, a.appliedBallot = e.Slot, e.Ballot
}

// submit hands r to the loop and waits for its answer.
func (s *Shell) submit(ctx context.Context, r request) error {
	r.ctx = ctx
	r.reply = make(chan error, 1)
	select {
	case <-s.done:
		return s.stoppedErr()
	default:
	}
	select {
	case s.requests <- r:
	default:
		return fmt.Errorf("%w: %d requests queued", ErrBusy, s.cfg.RequestQueueMax)
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		// The loop answers what it held before closing done, but this
		// request may still sit in the channel: drainRequests answers it.
		return s.stoppedErr()
	}
}

// Propose hands data to the core as a new command. On success the command
// is in the leader's log (not yet committed) and onLog, if not nil, was
// called on the loop goroutine with its slot before any entry at that slot
// could be applied. It fails with a *paxos.NotLeaderError on a follower.
func (s *Shell) Propose(ctx context.Context, data []byte, onLog func(slot uint64)) error {
	return s.submit(ctx, request{kind: reqPropose, data: data, onLog: onLog})
}

// ProposeConfChange proposes a membership change; onLog is as for Propose.
func (s *Shell) ProposeConfChange(ctx context.Context, cc paxos.ConfChange, onLog func(slot uint64)) error {
	return s.submit(ctx, request{kind: reqConfChange, cc: cc, onLog: onLog})
}

// Read waits until a read is linearizable here (the leader confirmed its
// leadership with a quorum after the call, and this member applied every
// slot up to the leader's commit index at that time), then runs fn on the
// loop goroutine, where it may read the app's state. Only the leader serves
// reads: elsewhere it fails with a *paxos.NotLeaderError.
func (s *Shell) Read(ctx context.Context, fn func()) error {
	return s.submit(ctx, request{kind: reqRead, read: fn})
}

// Status returns the core's state as of the last Ready the loop handled.
func (s *Shell) Status() paxos.Status { return *s.status.Load() }

// SetPeer adds a peer's address to the transport, or changes it.
func (s *Shell) SetPeer(id peer.ID, addr string) {
	if id != s.cfg.Core.ID && id != peer.None {
		s.tr.SetPeer(id, addr)
	}
}

// RemovePeer removes a peer from the transport.
func (s *Shell) RemovePeer(id peer.ID) {
	if id != s.cfg.Core.ID {
		s.tr.RemovePeer(id)
	}
}

// Done is closed when the member stopped (Close, or a disk error).
func (s *Shell) Done() <-chan struct{} { return s.done }

// Err returns why the member stopped: nil before it stopped and after a
// Close, the disk's error after a disk failure.
func (s *Shell) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// DroppedMessages counts peer messages that did not decode, were
// misaddressed, or that the core refused as invalid.
func (s *Shell) DroppedMessages() uint64 { return s.dropped.Load() }

// TransportStats returns the transport's counters.
func (s *Shell) TransportStats() transport.Stats { return s.tr.Stats() }

// Close stops the loop and releases the transport and the data directory.
// Calls in progress fail with ErrStopped. Close returns the disk error that
// stopped the member, if one did.
func (s *Shell) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.released
	return s.err
}
