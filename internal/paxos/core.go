package paxos

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/quorum"
)

// Core is one member's Multi-Paxos state machine. It is not safe for
// concurrent use: the shell calls it from one goroutine.
type Core struct {
	cfg Config
	id  peer.ID

	// Durable: the promise and commit (HardState) and the log.
	promised Ballot
	commit   uint64
	log      accLog

	// Membership in force: the latest config entry in the log, else the
	// snapshot's, else the bootstrap one.
	members    peer.Set
	qs         quorum.System // zero when members is empty
	configSlot uint64        // slot of the latest config entry in the log, 0 if none

	role   Role
	leader peer.ID // the leader this member follows (itself when leading)
	// roundSeen is the highest round seen in any ballot, so a new campaign
	// picks a ballot above all of them.
	roundSeen uint64

	electionElapsed  int
	heartbeatElapsed int
	electionTimeout  int // randomized, in [ElectionTicks, 2*ElectionTicks)

	// Follower: the highest slot known equal to the current leader's log.
	leaderMatch uint64
	// Follower: the snapshot being received in chunks, nil if none. Only
	// its position and running checksum are kept; the bytes go to the
	// shell in Ready.SnapshotChunks. It is not durable: after a crash the
	// transfer starts again from offset 0.
	recv *snapRecv

	// Pre-candidate and candidate.
	campaignBallot Ballot
	votes          map[peer.ID]bool
	promises       map[peer.ID][]Entry

	// Leader.
	ballot       Ballot // == promised while leading
	progress     map[peer.ID]*progress
	ownFirstSlot uint64 // slot of the leader's own no-op; committing it unlocks reads and config changes
	// uncommittedBytes is, on a leader, the sizeBytes of its entries above
	// commit (its log is append-only under its ballot, so only proposals add
	// to it and only commits take from it).
	uncommittedBytes int
	flushPending     bool // proposals appended since the last Ready, to send
	reads            []readRequest
	readsWaiting     []readRequest // arrived before ownFirstSlot committed

	// Applying and handing out.
	applied        uint64 // last slot handed out in Committed and advanced
	msgs           []Message
	readStates     []ReadState
	snapshotToSave *SnapshotMeta
	chunksToSave   []SnapshotChunk
	persistedHS    HardState
	handed         *handedOut

	// lastCommit is the commit at the previous invariant check.
	lastCommit uint64
}

// snapRecv is a follower's chunked snapshot transfer in progress: from the
// leader of ballot, the snapshot meta/info, next the next offset it wants and
// crc the CRC32C of the bytes 0..next.
type snapRecv struct {
	ballot Ballot
	meta   SnapshotMeta
	info   SnapshotInfo
	next   uint64
	crc    uint32
}

type readRequest struct {
	ctx   []byte
	index uint64
	acks  map[peer.ID]bool
}

// handedOut records what the last Ready handed out, so Advance knows what is
// now durable and applied.
type handedOut struct {
	hs            *HardState
	logChanged    bool
	logLast       uint64
	committedLast uint64
	snapshot      *SnapshotMeta
}

// New returns a core for cfg, starting from what the shell restored from
// disk. A member of a new cluster passes an empty Restored and a bootstrap
// cfg.Members; a member joining one passes empty Members.
func New(cfg Config, r Restored) (*Core, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := validateRestored(r); err != nil {
		return nil, err
	}
	c := &Core{
		cfg:         cfg,
		id:          cfg.ID,
		promised:    r.HardState.Promised,
		commit:      r.HardState.Commit,
		log:         newLog(r.Snapshot, cloneEntries(r.Entries)),
		persistedHS: r.HardState,
		applied:     r.Snapshot.Slot,
		roundSeen:   r.HardState.Promised.Round,
		lastCommit:  r.HardState.Commit,
	}
	if c.commit > c.log.last() {
		return nil, fmt.Errorf("%w: restored commit %d beyond the last restored slot %d", ErrInvalidConfig, c.commit, c.log.last())
	}
	if c.commit < r.Snapshot.Slot {
		// The snapshot holds committed slots only; a commit below it was
		// persisted before the snapshot was taken.
		c.commit = r.Snapshot.Slot
	}
	if err := c.refreshConfig(); err != nil {
		return nil, err
	}
	c.leaderMatch = c.commit
	c.becomeFollower(peer.None)
	c.assertInvariants()
	return c, nil
}

func validateRestored(r Restored) error {
	next := r.Snapshot.Slot + 1
	for i, e := range r.Entries {
		if e.Slot != next+uint64(i) {
			return fmt.Errorf("%w: restored entry %d has slot %d, want %d", ErrInvalidConfig, i, e.Slot, next+uint64(i))
		}
		if !e.Type.valid() {
			return fmt.Errorf("%w: restored entry at slot %d has type %d", ErrInvalidConfig, e.Slot, e.Type)
		}
		if e.Type == EntryConfig {
			if _, err := DecodeMembers(e.Data); err != nil {
				return fmt.Errorf("%w: restored config entry at slot %d: %w", ErrInvalidConfig, e.Slot, err)
			}
		}
	}
	return nil
}

func cloneEntries(es []Entry) []Entry {
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = e
		out[i].Data = bytes.Clone(e.Data)
	}
	return out
}

// refreshConfig recomputes the membership in force from the log. The
// latest config entry wins; entries are validated when they enter the log,
// so a decode error here is an internal bug.
func (c *Core) refreshConfig() error {
	members := c.cfg.Members
	c.configSlot = 0
	if c.log.snap.Members.Len() > 0 {
		members = c.log.snap.Members
	}
	for s := c.log.last(); s >= c.log.first() && s > 0; s-- {
		e := c.log.at(s)
		if e.Type != EntryConfig {
			continue
		}
		m, err := DecodeMembers(e.Data)
		if err != nil {
			return fmt.Errorf("%w: config entry at slot %d: %w", ErrInvalidConfig, s, err)
		}
		members, c.configSlot = m, s
		break
	}
	c.members = members
	c.qs = quorum.System{}
	if members.Len() > 0 {
		qs, err := quorum.New(members, c.cfg.Q1, c.cfg.Q2)
		if err != nil {
			return fmt.Errorf("%w: membership %v: %w", ErrInvalidConfig, members, err)
		}
		c.qs = qs
	}
	if c.role == Leader {
		c.syncProgress()
	}
	return nil
}

func (c *Core) mustRefreshConfig() {
	err := c.refreshConfig()
	invariant.Check(err == nil, "membership from validated entries: %v", err)
}

// putEntry writes e into the log, keeping the membership current.
func (c *Core) putEntry(e Entry) {
	refresh := e.Type == EntryConfig || (c.configSlot != 0 && e.Slot <= c.configSlot)
	c.log.put(e)
	if refresh {
		c.mustRefreshConfig()
	}
}

func (c *Core) truncateFrom(slot uint64) {
	invariant.Check(slot > c.commit, "truncating committed slot %d (commit %d)", slot, c.commit)
	refresh := c.configSlot != 0 && slot <= c.configSlot
	c.log.truncateFrom(slot)
	if refresh {
		c.mustRefreshConfig()
	}
}

func (c *Core) promotable() bool { return c.members.Contains(c.id) }

// inLease reports whether this member heard from a live leader within an
// election timeout: then it ignores candidates (leader stickiness).
func (c *Core) inLease() bool {
	return c.leader != peer.None && c.electionElapsed < c.cfg.ElectionTicks
}

func (c *Core) send(m Message) {
	m.From = c.id
	c.msgs = append(c.msgs, m)
}

func (c *Core) seeRound(b Ballot) { c.roundSeen = max(c.roundSeen, b.Round) }

func (c *Core) resetElectionTimer() {
	c.electionElapsed = 0
	c.electionTimeout = c.cfg.ElectionTicks + c.cfg.Rand.IntN(c.cfg.ElectionTicks)
}

// ---- role changes ----

func (c *Core) becomeFollower(leader peer.ID) {
	// What matched the previous leader (or the same member under an older
	// ballot) says nothing about the next one.
	c.leaderMatch = c.commit
	c.role = Follower
	c.leader = leader
	c.resetElectionTimer()
	c.heartbeatElapsed = 0
	c.campaignBallot = Ballot{}
	c.votes, c.promises = nil, nil
	c.ballot = Ballot{}
	c.progress = nil
	c.ownFirstSlot = 0
	c.flushPending = false
	c.reads, c.readsWaiting = nil, nil
	// A transfer belongs to one leadership; a new one starts again.
	c.recv = nil
}

// campaign starts a pre-vote for the next ballot.
func (c *Core) campaign() {
	c.becomeFollower(peer.None)
	c.role = PreCandidate
	c.campaignBallot = Ballot{Round: max(c.roundSeen, c.promised.Round) + 1, Leader: c.id}
	c.votes = map[peer.ID]bool{c.id: true}
	for id := range c.members.All() {
		if id != c.id {
			c.send(Message{Type: MsgPrePrepare, To: id, Ballot: c.campaignBallot, Commit: c.commit})
		}
	}
	c.tallyPreVotes()
}

func (c *Core) tallyPreVotes() {
	switch c.qs.Phase1(c.voteOf) {
	case quorum.VoteWon:
		c.becomeCandidate()
	case quorum.VoteLost:
		c.becomeFollower(peer.None)
	}
}

func (c *Core) voteOf(id peer.ID) (yes, answered bool) {
	v, ok := c.votes[id]
	return v, ok
}

func (c *Core) becomeCandidate() {
	b := c.campaignBallot
	invariant.Check(c.promised.Less(b), "candidate ballot %s not above promise %s", b, c.promised)
	c.becomeFollower(peer.None)
	c.role = Candidate
	c.campaignBallot = b
	c.promised = b
	c.seeRound(b)
	c.votes = map[peer.ID]bool{c.id: true}
	c.promises = map[peer.ID][]Entry{}
	for id := range c.members.All() {
		if id != c.id {
			c.send(Message{Type: MsgPrepare, To: id, Ballot: b, Commit: c.commit})
		}
	}
	c.tallyPromises()
}

func (c *Core) tallyPromises() {
	switch c.qs.Phase1(c.voteOf) {
	case quorum.VoteWon:
		c.becomeLeader()
	case quorum.VoteLost:
		c.becomeFollower(peer.None)
	}
}

// becomeLeader adopts, for every slot above the commit index, the value of
// the highest ballot among the promises (its own log included), fills gaps
// with no-ops, adds its own no-op and re-proposes all of them under its
// ballot (see the package documentation for why this is safe).
func (c *Core) becomeLeader() {
	b := c.campaignBallot
	c0 := c.commit
	top := c.log.last()
	for _, es := range c.promises {
		if n := len(es); n > 0 {
			top = max(top, es[n-1].Slot)
		}
	}
	recovered := make([]Entry, 0, top-c0+1)
	for s := c0 + 1; s <= top; s++ {
		best := Entry{Slot: s, Type: EntryNoop}
		found := false
		consider := func(e Entry) {
			if !found || best.Ballot.Less(e.Ballot) {
				best, found = e, true
			}
		}
		if c.log.has(s) {
			consider(c.log.at(s))
		}
		// Visit promisers in ID order: ties have equal ballots, hence equal
		// values, but the transcript must not depend on map order anyway.
		for id := range c.members.All() {
			es := c.promises[id]
			if len(es) > 0 && s >= es[0].Slot && s <= es[len(es)-1].Slot {
				consider(es[s-es[0].Slot])
			}
		}
		recovered = append(recovered, Entry{Slot: s, Ballot: b, Type: best.Type, Data: best.Data})
	}
	own := Entry{Slot: top + 1, Ballot: b, Type: EntryNoop}
	if top == 0 {
		// The first entry of every log records the bootstrap membership, so
		// a member that joins later (and has no bootstrap membership) learns
		// the configuration of every slot from the log or a snapshot. By
		// induction slot 1 always holds it: only a leader that found nothing
		// at all writes slot 1, and later leaders recover it.
		own = Entry{Slot: 1, Ballot: b, Type: EntryConfig, Data: EncodeMembers(c.members)}
	}
	recovered = append(recovered, own)

	c.becomeFollower(c.id)
	c.role = Leader
	c.ballot = b
	c.campaignBallot = b
	c.progress = map[peer.ID]*progress{}
	c.truncateFrom(c0 + 1)
	for _, e := range recovered {
		c.putEntry(e)
	}
	c.ownFirstSlot = top + 1
	c.uncommittedBytes = 0
	for _, e := range recovered {
		c.uncommittedBytes += e.sizeBytes()
	}
	c.syncProgress()
	for _, pr := range c.progress {
		pr.next = c0 + 1
	}
	c.bcastAccept()
	c.maybeCommit()
}

// syncProgress gives every member but the leader a progress entry and drops
// the entries of former members.
func (c *Core) syncProgress() {
	for id := range c.members.All() {
		if id != c.id && c.progress[id] == nil {
			c.progress[id] = &progress{next: 1, state: stateProbe}
		}
	}
	for id := range c.progress {
		if !c.members.Contains(id) {
			delete(c.progress, id)
		}
	}
}

func (c *Core) stepDown(reason Ballot) {
	c.seeRound(reason)
	c.becomeFollower(peer.None)
}

// ---- ticks ----

// Tick advances the core's clock by one tick.
func (c *Core) Tick() {
	defer c.assertInvariants()
	if c.role == Leader {
		c.tickLeader()
		return
	}
	c.electionElapsed++
	if c.promotable() && c.electionElapsed >= c.electionTimeout {
		c.campaign()
	}
}

func (c *Core) tickLeader() {
	c.heartbeatElapsed++
	c.electionElapsed++
	for _, id := range c.followers() {
		pr := c.progress[id]
		if pr.state == stateSnapshot {
			pr.snapshotTicks++
			if pr.snapshotTicks >= c.cfg.ElectionTicks {
				// Chunks or their answers were lost: resend from what the
				// follower acknowledged.
				pr.snapshotTicks = 0
				pr.snapRewind(pr.snapAcked)
				pr.snapResent = false
				c.sendChunks(id, pr)
			}
		}
	}
	if c.electionElapsed >= c.cfg.ElectionTicks {
		c.electionElapsed = 0
		if !c.checkQuorum() {
			c.becomeFollower(peer.None)
			return
		}
	}
	if c.heartbeatElapsed >= c.cfg.HeartbeatTicks {
		c.heartbeatElapsed = 0
		c.bcastHeartbeat()
	}
}

// checkQuorum reports whether a Q2 quorum answered during the last election
// timeout, and starts a new window.
func (c *Core) checkQuorum() bool {
	res := c.qs.Phase2(func(id peer.ID) (bool, bool) {
		if id == c.id {
			return true, true
		}
		pr := c.progress[id]
		return pr != nil && pr.recentActive, true
	})
	for _, pr := range c.progress {
		pr.recentActive = false
	}
	return res == quorum.VoteWon
}

// followers returns the members the leader sends to, in ID order.
func (c *Core) followers() []peer.ID {
	ids := make([]peer.ID, 0, len(c.progress))
	for id := range c.members.All() {
		if id != c.id && c.progress[id] != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func (c *Core) bcastHeartbeat() {
	var ctx []byte
	if n := len(c.reads); n > 0 {
		ctx = c.reads[n-1].ctx
	}
	for _, id := range c.followers() {
		pr := c.progress[id]
		c.send(Message{Type: MsgHeartbeat, To: id, Ballot: c.ballot, Commit: min(c.commit, pr.match), LastSlot: c.log.last(), Ctx: ctx})
	}
}

// ---- local inputs ----

// Campaign starts an election now (a pre-vote, then phase 1), as if the
// election timeout had passed. Members of other members' leases ignore it.
func (c *Core) Campaign() error {
	defer c.assertInvariants()
	if !c.promotable() {
		return fmt.Errorf("%w: member %s is not in the membership %v", ErrBadConfChange, c.id, c.members)
	}
	if c.role == Leader {
		return nil
	}
	c.campaign()
	return nil
}

func (c *Core) notLeader() error { return &NotLeaderError{Leader: c.leader} }

// Propose appends a command to the leader's log. It fails with a
// NotLeaderError on other members, and with ErrProposalDropped when
// ProposalQueueMax entries are already uncommitted.
func (c *Core) Propose(data []byte) error {
	defer c.assertInvariants()
	return c.propose(EntryNormal, data)
}

func (c *Core) propose(t EntryType, data []byte) error {
	if c.role != Leader {
		return c.notLeader()
	}
	if len(data) > c.cfg.Limits.EntryBytesMax {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrProposalTooLarge, len(data), c.cfg.Limits.EntryBytesMax)
	}
	if c.log.last()-c.commit >= uint64(c.cfg.ProposalQueueMax) {
		return fmt.Errorf("%w: %d entries uncommitted, limit %d", ErrProposalDropped, c.log.last()-c.commit, c.cfg.ProposalQueueMax)
	}
	e := Entry{Slot: c.log.last() + 1, Ballot: c.ballot, Type: t, Data: bytes.Clone(data)}
	if c.uncommittedBytes > 0 && c.uncommittedBytes+e.sizeBytes() > c.cfg.ProposalQueueBytesMax {
		return fmt.Errorf("%w: %d bytes uncommitted, limit %d", ErrProposalDropped, c.uncommittedBytes, c.cfg.ProposalQueueBytesMax)
	}
	c.uncommittedBytes += e.sizeBytes()
	c.putEntry(e)
	c.flushPending = true
	c.maybeCommit() // a single member commits on its own once durable
	return nil
}

// ConfChangeOp says whether a ConfChange adds or removes a member.
type ConfChangeOp uint8

const (
	// AddMember adds ID to the membership.
	AddMember ConfChangeOp = iota + 1
	// RemoveMember removes ID from the membership.
	RemoveMember
)

// ConfChange is a change of one member.
type ConfChange struct {
	Op ConfChangeOp
	ID peer.ID
}

// ProposeConfChange appends a membership change to the leader's log; it is
// in force on each member as soon as that member appends it. See the package
// documentation for the rules it enforces.
func (c *Core) ProposeConfChange(cc ConfChange) error {
	defer c.assertInvariants()
	if c.role != Leader {
		return c.notLeader()
	}
	if c.qs.Flexible() {
		return fmt.Errorf("%w: Q1=%d Q2=%d", ErrFlexibleMembership, c.qs.Q1(), c.qs.Q2())
	}
	if c.commit < c.ownFirstSlot {
		return fmt.Errorf("%w: commit %d, own first slot %d", ErrLeaderNotReady, c.commit, c.ownFirstSlot)
	}
	if c.configSlot > c.commit {
		return fmt.Errorf("%w: config entry at slot %d, commit %d", ErrConfigChangePending, c.configSlot, c.commit)
	}
	var next peer.Set
	switch cc.Op {
	case AddMember:
		if cc.ID == peer.None || c.members.Contains(cc.ID) {
			return fmt.Errorf("%w: cannot add %s to %v", ErrBadConfChange, cc.ID, c.members)
		}
		if c.members.Len() >= c.cfg.Limits.MembersMax {
			return fmt.Errorf("%w: %d members already, limit %d", ErrBadConfChange, c.members.Len(), c.cfg.Limits.MembersMax)
		}
		next = c.members.Add(cc.ID)
	case RemoveMember:
		if !c.members.Contains(cc.ID) || c.members.Len() == 1 {
			return fmt.Errorf("%w: cannot remove %s from %v", ErrBadConfChange, cc.ID, c.members)
		}
		next = c.members.Remove(cc.ID)
	default:
		return fmt.Errorf("%w: op %d", ErrBadConfChange, cc.Op)
	}
	return c.propose(EntryConfig, EncodeMembers(next))
}

// ReadIndex asks for a linearizable read; ctx (unique per request, at most
// Limits.CtxBytesMax bytes) comes back in a ReadState once the leader has
// confirmed its leadership with a Q2 quorum. Only the leader serves reads.
func (c *Core) ReadIndex(ctx []byte) error {
	defer c.assertInvariants()
	if c.role != Leader {
		return c.notLeader()
	}
	if len(ctx) > c.cfg.Limits.CtxBytesMax {
		return fmt.Errorf("%w: read context of %d bytes, limit %d", ErrProposalTooLarge, len(ctx), c.cfg.Limits.CtxBytesMax)
	}
	if len(c.reads)+len(c.readsWaiting) >= c.cfg.ReadQueueMax {
		return fmt.Errorf("%w: %d reads waiting, limit %d", ErrProposalDropped, len(c.reads)+len(c.readsWaiting), c.cfg.ReadQueueMax)
	}
	rr := readRequest{ctx: bytes.Clone(ctx)}
	if c.commit < c.ownFirstSlot && !c.cfg.Bugs.ReadWithoutQuorumRound {
		// The commit index of a fresh leader may lag what its predecessors
		// committed: wait until an entry of its own ballot commits.
		c.readsWaiting = append(c.readsWaiting, rr)
		return nil
	}
	c.startRead(rr)
	return nil
}

func (c *Core) startRead(rr readRequest) {
	rr.index = c.commit
	rr.acks = map[peer.ID]bool{c.id: true}
	if c.cfg.Bugs.ReadWithoutQuorumRound {
		c.readStates = append(c.readStates, ReadState{Index: rr.index, Ctx: rr.ctx})
		return
	}
	c.reads = append(c.reads, rr)
	c.bcastHeartbeat()
	c.releaseReads()
}

// releaseReads releases every read up to the newest one a Q2 quorum has
// confirmed: a confirmation of a later read's heartbeat also proves the
// leader still led after every earlier read arrived.
func (c *Core) releaseReads() {
	for i := len(c.reads) - 1; i >= 0; i-- {
		acks := c.reads[i].acks
		res := c.qs.Phase2(func(id peer.ID) (bool, bool) { return acks[id], acks[id] })
		if res != quorum.VoteWon {
			continue
		}
		for _, rr := range c.reads[:i+1] {
			c.readStates = append(c.readStates, ReadState{Index: rr.index, Ctx: rr.ctx})
		}
		c.reads = append(c.reads[:0], c.reads[i+1:]...)
		return
	}
}

// Compact drops the log up to slot, after the shell persisted a snapshot of
// its state machine there. slot must be applied and above the current
// snapshot.
func (c *Core) Compact(slot uint64) error {
	defer c.assertInvariants()
	if slot <= c.log.snap.Slot || slot > c.applied {
		return fmt.Errorf("%w: slot %d, snapshot at %d, applied %d", ErrCompaction, slot, c.log.snap.Slot, c.applied)
	}
	invariant.Check(slot <= c.log.stableLast(), "compacting slot %d not yet durable (stable %d)", slot, c.log.stableLast())
	meta := SnapshotMeta{Slot: slot, Ballot: c.log.at(slot).Ballot, Members: c.membersAt(slot)}
	c.log.compact(meta)
	if c.configSlot <= slot {
		c.configSlot = 0
	}
	return nil
}

// membersAt is the membership in force at slot (held or the snapshot's).
func (c *Core) membersAt(slot uint64) peer.Set {
	for s := slot; s >= c.log.first() && s > 0; s-- {
		if e := c.log.at(s); e.Type == EntryConfig {
			m, err := DecodeMembers(e.Data)
			invariant.Check(err == nil, "config entry at %d: %v", s, err)
			return m
		}
	}
	if c.log.snap.Members.Len() > 0 {
		return c.log.snap.Members
	}
	return c.cfg.Members
}

// ---- commit ----

// maybeCommit advances the leader's commit index to the highest slot a Q2
// quorum holds durably under its ballot.
func (c *Core) maybeCommit() {
	if c.role != Leader {
		return
	}
	q := c.qs.Q2()
	if c.cfg.Bugs.CommitOneShort && q > 1 {
		q--
	}
	ci := quorum.CommittedIndex(c.members, q, func(id peer.ID) uint64 {
		if id == c.id {
			return c.log.stableLast()
		}
		return c.progress[id].match
	})
	if ci <= c.commit {
		return
	}
	if b, _ := c.log.ballotAt(ci); b != c.ballot {
		// Only entries of the leader's own ballot are committed by counting
		// (all slots above the old commit carry it; this guards the rule).
		return
	}
	c.setCommit(ci)
	c.onLeaderCommit()
}

func (c *Core) setCommit(ci uint64) {
	invariant.Check(ci >= c.commit, "commit going back from %d to %d", c.commit, ci)
	invariant.Check(ci <= c.log.last(), "commit %d beyond last slot %d", ci, c.log.last())
	if c.role == Leader {
		for s := c.commit + 1; s <= ci; s++ {
			c.uncommittedBytes -= c.log.at(s).sizeBytes()
		}
		invariant.Check(c.uncommittedBytes >= 0, "uncommitted bytes %d after commit %d", c.uncommittedBytes, ci)
	}
	c.commit = ci
}

func (c *Core) onLeaderCommit() {
	if c.commit >= c.ownFirstSlot && len(c.readsWaiting) > 0 {
		waiting := c.readsWaiting
		c.readsWaiting = nil
		for _, rr := range waiting {
			c.startRead(rr)
		}
	}
	if !c.members.Contains(c.id) && c.configSlot != 0 && c.commit >= c.configSlot {
		// This leader's removal is committed: hand over by stepping down.
		// Tell followers the final commit index first.
		c.bcastAccept()
		c.becomeFollower(peer.None)
		return
	}
	c.flushPending = true // carry the new commit index to followers
}

// ---- sending ----

// bcastAccept sends to every follower what it is due.
func (c *Core) bcastAccept() {
	for _, id := range c.followers() {
		c.sendAccepts(id, true)
	}
}

// sendAccepts sends as many batches to id as its state and window allow. With
// allowEmpty, a follower that is due nothing still gets an empty Accept,
// which carries the commit index.
func (c *Core) sendAccepts(id peer.ID, allowEmpty bool) {
	for c.sendAccept(id, allowEmpty) {
		allowEmpty = false
	}
}

// sendAccept sends one Accept (or a snapshot) to id; it reports whether
// another one may follow.
func (c *Core) sendAccept(id peer.ID, allowEmpty bool) bool {
	pr := c.progress[id]
	switch {
	case pr.state == stateSnapshot:
		return false
	case pr.state == stateProbe && pr.probeSent:
		return false
	case pr.next <= c.log.snap.Slot:
		c.sendSnapshot(id, pr)
		return false
	}
	entriesRoom, bytesRoom := c.cfg.BatchEntriesMax, c.cfg.BatchBytesMax
	if pr.state == stateReplicate {
		inflight := int(pr.next - 1 - pr.match)
		entriesRoom = min(entriesRoom, c.cfg.InflightEntriesMax-inflight)
		bytesRoom = min(bytesRoom, c.cfg.InflightBytesMax-pr.inflightBytes)
		if entriesRoom <= 0 || (bytesRoom <= 0 && inflight > 0) {
			return false
		}
	}
	var batch []Entry
	var batchBytes int
	for s := pr.next; s <= c.log.last() && len(batch) < entriesRoom; s++ {
		e := c.log.at(s)
		if len(batch) > 0 && batchBytes+e.sizeBytes() > bytesRoom {
			break
		}
		batch = c.log.slice(pr.next, s)
		batchBytes += e.sizeBytes()
	}
	if len(batch) == 0 && !allowEmpty {
		return false
	}
	// The message gets its own copy of the entry headers: the log may be
	// rewritten in place before the caller takes the message.
	c.send(Message{Type: MsgAccept, To: id, Ballot: c.ballot, PrevSlot: pr.next - 1,
		Entries: slices.Clone(batch), Commit: c.commit, LastSlot: c.log.last()})
	if pr.state == stateProbe {
		pr.probeSent = true
		return false
	}
	if len(batch) == 0 {
		return false
	}
	last := batch[len(batch)-1].Slot
	pr.next = last + 1
	pr.inflight = append(pr.inflight, inflightBatch{last: last, bytes: batchBytes})
	pr.inflightBytes += batchBytes
	return pr.next <= c.log.last()
}

// sendSnapshot starts a chunked transfer of the leader's snapshot to id.
func (c *Core) sendSnapshot(id peer.ID, pr *progress) {
	meta := c.log.snap
	info, err := c.cfg.Snapshots.SnapshotInfo(meta.Slot)
	if err != nil || info.TotalBytes > uint64(c.cfg.Limits.SnapshotBytesMax) {
		// Not available now (or larger than peers accept): the next
		// heartbeat answer tries again.
		pr.probeSent = true
		return
	}
	pr.resetInflight()
	pr.state = stateSnapshot
	pr.pendingSnapshot = meta.Slot
	pr.snapMeta, pr.snapInfo = meta, info
	pr.snapSent, pr.snapAcked = 0, 0
	pr.snapStarted, pr.snapResent = false, false
	pr.snapshotTicks = 0
	c.sendChunks(id, pr)
}

// sendChunks sends the chunks of the transfer to id from snapSent on, as
// far as the window of SnapshotInflightChunksMax chunks allows.
func (c *Core) sendChunks(id peer.ID, pr *progress) {
	chunk := uint64(c.cfg.SnapshotChunkBytes)
	window := uint64(c.cfg.SnapshotInflightChunksMax) * chunk
	total := pr.snapInfo.TotalBytes
	for (pr.snapSent < total || !pr.snapStarted) && pr.snapSent-pr.snapAcked < window {
		n := min(chunk, total-pr.snapSent)
		data, err := c.cfg.Snapshots.SnapshotChunk(pr.snapMeta.Slot, pr.snapSent, int(n))
		if err != nil || uint64(len(data)) != n {
			// The snapshot is gone (replaced by a newer one): start over
			// with whatever is current at the next heartbeat answer.
			pr.becomeProbe()
			pr.probeSent = true
			return
		}
		c.send(Message{Type: MsgSnapshot, To: id, Ballot: c.ballot, Commit: c.commit, LastSlot: c.log.last(),
			Chunk: &SnapshotChunk{Meta: pr.snapMeta, Info: pr.snapInfo, Offset: pr.snapSent, Data: data,
				DataChecksum: ChecksumBytes(data)}})
		pr.snapSent += n
		pr.snapStarted = true
	}
}

func (c *Core) assertInvariants() {
	invariant.Check(c.commit >= c.lastCommit, "member %s: commit decreased from %d to %d", c.id, c.lastCommit, c.commit)
	c.lastCommit = c.commit
	invariant.Check(c.commit <= c.log.last(), "member %s: commit %d beyond last slot %d", c.id, c.commit, c.log.last())
	invariant.Check(c.log.snap.Slot <= c.commit, "member %s: snapshot %d beyond commit %d", c.id, c.log.snap.Slot, c.commit)
	invariant.Check(c.applied <= c.commit, "member %s: applied %d beyond commit %d", c.id, c.applied, c.commit)
	if c.role == Leader {
		invariant.Check(c.ballot == c.promised, "member %s: leading %s but promised %s", c.id, c.ballot, c.promised)
		invariant.Check(c.ballot.Leader == c.id, "member %s: leading another member's ballot %s", c.id, c.ballot)
		invariant.Check(c.leader == c.id, "member %s: leader field %s while leading", c.id, c.leader)
	}
	if n := len(c.log.entries); n > 0 {
		invariant.Check(c.log.entries[0].Slot == c.log.first() && c.log.entries[n-1].Slot == c.log.last(),
			"member %s: log slots %d..%d, want %d..%d", c.id, c.log.entries[0].Slot, c.log.entries[n-1].Slot, c.log.first(), c.log.last())
	}
}
