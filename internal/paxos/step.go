package paxos

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
)

// Step hands the core a message from a peer. A message that breaks the
// protocol's rules is refused with an error wrapping ErrInvalidMessage and
// changes nothing; a stale one (an older ballot) is dropped or answered with
// this member's promise. Step copies what it keeps, so the caller may reuse
// the message's buffers.
func (c *Core) Step(m Message) error {
	if err := c.validate(m); err != nil {
		return err
	}
	defer c.assertInvariants()
	switch m.Type {
	case MsgPrePrepare:
		c.handlePrePrepare(m)
	case MsgPrePromise:
		c.handlePrePromise(m)
	case MsgPrepare:
		c.handlePrepare(m)
	case MsgPromise:
		c.handlePromise(m)
	case MsgAccept:
		c.handleAccept(m)
	case MsgAccepted:
		c.handleAccepted(m)
	case MsgHeartbeat:
		c.handleHeartbeat(m)
	case MsgHeartbeatAck:
		c.handleHeartbeatAck(m)
	case MsgSnapshot:
		c.handleSnapshot(m)
	case MsgSnapshotAck:
		c.handleSnapshotAck(m)
	default:
		invariant.Unreachable("message type %s passed validation", m.Type)
	}
	return nil
}

// validate checks what can be checked without the core's state: addressing,
// the ballot's owner for requests, and the shape of entries.
func (c *Core) validate(m Message) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s from %s: %s", ErrInvalidMessage, m.Type, m.From, fmt.Sprintf(format, args...))
	}
	switch {
	case m.To != c.id:
		return bad("addressed to %s, this is %s", m.To, c.id)
	case m.From == peer.None || m.From == c.id:
		return bad("bad sender")
	case m.Type < MsgPrePrepare || m.Type > msgTypeMax:
		return bad("unknown type")
	case m.Ballot.Round == 0:
		return bad("ballot round 0")
	}
	switch m.Type {
	case MsgPrePrepare, MsgPrepare, MsgAccept, MsgHeartbeat, MsgSnapshot:
		if m.Ballot.Leader != m.From {
			return bad("ballot %s belongs to %s", m.Ballot, m.Ballot.Leader)
		}
	}
	if len(m.Entries) > c.cfg.Limits.EntriesMax {
		return bad("%d entries, limit %d", len(m.Entries), c.cfg.Limits.EntriesMax)
	}
	for i, e := range m.Entries {
		if err := checkEntryEncoding(e, c.cfg.Limits); err != nil {
			return bad("entry %d: %v", i, err)
		}
		if len(e.Data) > c.cfg.Limits.EntryBytesMax {
			return bad("entry %d of %d bytes", i, len(e.Data))
		}
		if i > 0 && e.Slot != m.Entries[i-1].Slot+1 {
			return bad("entries not contiguous at %d", i)
		}
		if e.Slot == 0 || m.Ballot.Less(e.Ballot) {
			return bad("entry %d: slot %d ballot %s under message ballot %s", i, e.Slot, e.Ballot, m.Ballot)
		}
	}
	switch m.Type {
	case MsgAccept:
		if len(m.Entries) > 0 && m.Entries[0].Slot != m.PrevSlot+1 {
			return bad("first entry at slot %d after prev %d", m.Entries[0].Slot, m.PrevSlot)
		}
		if m.LastSlot < m.PrevSlot+uint64(len(m.Entries)) || m.Commit > m.LastSlot {
			return bad("last slot %d below the entries sent (prev %d, %d entries) or commit %d", m.LastSlot, m.PrevSlot, len(m.Entries), m.Commit)
		}
	case MsgHeartbeat:
		if m.Commit > m.LastSlot {
			return bad("commit %d beyond last slot %d", m.Commit, m.LastSlot)
		}
	case MsgSnapshot:
		ch := m.Chunk
		if ch == nil || ch.Meta.Slot == 0 || ch.Meta.Members.Len() == 0 {
			return bad("snapshot chunk missing, at slot 0 or without members")
		}
		if ch.Meta.Ballot.Compare(m.Ballot) > 0 || ch.Meta.Slot > m.LastSlot {
			return bad("snapshot %s beyond the leader's ballot %s or last slot %d", ch.Meta, m.Ballot, m.LastSlot)
		}
		if ch.Info.TotalBytes > uint64(c.cfg.Limits.SnapshotBytesMax) || len(ch.Data) > c.cfg.Limits.SnapshotChunkBytesMax {
			return bad("snapshot of %d bytes or chunk of %d bytes over the limits %d, %d", ch.Info.TotalBytes, len(ch.Data),
				c.cfg.Limits.SnapshotBytesMax, c.cfg.Limits.SnapshotChunkBytesMax)
		}
		if ch.Offset > ch.Info.TotalBytes || uint64(len(ch.Data)) > ch.Info.TotalBytes-ch.Offset {
			return bad("chunk at %d of %d bytes beyond the snapshot's %d bytes", ch.Offset, len(ch.Data), ch.Info.TotalBytes)
		}
	case MsgPromise:
		if m.Reject && len(m.Entries) > 0 {
			return bad("rejection with entries")
		}
	}
	if m.Type != MsgSnapshot && m.Chunk != nil {
		return bad("unexpected snapshot chunk")
	}
	return nil
}

// ---- phase 1 ----

func (c *Core) handlePrePrepare(m Message) {
	if c.inLease() {
		return // a live leader exists: ignore, do not even answer
	}
	grant := c.promised.Less(m.Ballot) && m.Commit >= c.commit
	c.send(Message{Type: MsgPrePromise, To: m.From, Ballot: m.Ballot, Reject: !grant, Commit: c.commit, Hint: c.promised.Round})
}

func (c *Core) handlePrePromise(m Message) {
	c.seeRound(Ballot{Round: m.Hint})
	if c.role != PreCandidate || m.Ballot != c.campaignBallot {
		return // stale
	}
	c.votes[m.From] = !m.Reject
	c.tallyPreVotes()
}

func (c *Core) handlePrepare(m Message) {
	c.seeRound(m.Ballot)
	if m.Ballot == c.promised && m.Commit >= c.commit && c.promiseFits(m.Commit) {
		// A duplicate of the Prepare we promised (the ballot names its
		// sender): promise again, with what we hold now.
		c.sendPromise(m)
		return
	}
	if c.inLease() {
		return
	}
	reject := func() {
		c.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Reject: true, Commit: c.commit, Hint: c.promised.Round})
	}
	if !c.promised.Less(m.Ballot) || m.Commit < c.commit || !c.promiseFits(m.Commit) {
		reject()
		return
	}
	c.becomeFollower(peer.None)
	c.promised = m.Ballot
	c.sendPromise(m)
}

// promiseFits reports whether the entries above the candidate's commit fit
// in one Promise. They are all held: our commit (hence our snapshot) is at
// most the candidate's commit.
func (c *Core) promiseFits(candidateCommit uint64) bool {
	count := c.log.last() - min(candidateCommit, c.log.last())
	return count <= uint64(c.cfg.PhaseOneEntriesMax) && c.suffixBytes(candidateCommit) <= c.cfg.PhaseOneBytesMax
}

func (c *Core) suffixBytes(after uint64) int {
	n := 0
	for s := after + 1; s <= c.log.last(); s++ {
		n += c.log.at(s).sizeBytes()
	}
	return n
}

func (c *Core) sendPromise(m Message) {
	var entries []Entry
	if m.Commit < c.log.last() {
		entries = slices.Clone(c.log.slice(m.Commit+1, c.log.last()))
	}
	c.send(Message{Type: MsgPromise, To: m.From, Ballot: m.Ballot, Commit: c.commit, Entries: entries})
}

func (c *Core) handlePromise(m Message) {
	c.seeRound(Ballot{Round: m.Hint})
	if c.role != Candidate || m.Ballot != c.campaignBallot {
		return // stale: an older campaign
	}
	if m.Reject {
		c.votes[m.From] = false
		c.tallyPromises()
		return
	}
	if len(m.Entries) > 0 && m.Entries[0].Slot != c.commit+1 {
		// Not the suffix above our commit: a confused peer. Count nothing.
		return
	}
	c.votes[m.From] = true
	c.promises[m.From] = cloneEntries(m.Entries)
	c.tallyPromises()
}

// ---- phase 2 ----

// acceptLeader handles the ballot of a message from a leader (Accept,
// Heartbeat, Snapshot). It reports false, after answering with this member's
// higher promise, when the message is stale.
func (c *Core) acceptLeader(m Message, reply MessageType) bool {
	if m.Ballot.Less(c.promised) {
		c.send(Message{Type: reply, To: m.From, Ballot: c.promised, Reject: true, PrevSlot: m.PrevSlot, Ctx: m.Ctx})
		return false
	}
	c.seeRound(m.Ballot)
	if c.promised.Less(m.Ballot) || c.role != Follower || c.leader != m.From {
		// A new leadership, even by the same member under a new ballot:
		// leaderMatch starts again from the commit index.
		c.becomeFollower(m.From)
		c.promised = m.Ballot
	}
	c.electionElapsed = 0
	return true
}

// matches reports whether this member's log equals the leader's up to slot,
// as far as it can tell: committed slots do everywhere, and an entry of the
// leader's own ballot came with a matching prefix.
func (c *Core) matches(slot uint64, b Ballot) bool {
	if slot <= c.commit {
		return true
	}
	eb, ok := c.log.ballotAt(slot)
	return ok && eb == b
}

func (c *Core) handleAccept(m Message) {
	if !c.acceptLeader(m, MsgAccepted) {
		return
	}
	if !c.matches(m.PrevSlot, m.Ballot) {
		c.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, Reject: true, PrevSlot: m.PrevSlot, Hint: c.matchHint(m.PrevSlot, m.Ballot)})
		return
	}
	for _, e := range m.Entries {
		if c.matches(e.Slot, e.Ballot) && e.Slot <= c.log.last() {
			continue // committed, or the same ballot and so the same value
		}
		e.Data = bytes.Clone(e.Data)
		c.putEntry(e)
	}
	c.leaderMatch = max(c.leaderMatch, m.PrevSlot+uint64(len(m.Entries)))
	c.dropStaleSuffix(m.LastSlot, m.Ballot)
	c.learnCommit(m.Commit)
	c.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, LastSlot: c.leaderMatch})
}

// matchHint is the highest slot below prev that passes the match check: the
// leader can resume right after it.
func (c *Core) matchHint(prev uint64, b Ballot) uint64 {
	s := min(prev-1, c.log.last())
	for s > c.commit {
		if eb, _ := c.log.ballotAt(s); eb == b {
			return s
		}
		s--
	}
	return s
}

// dropStaleSuffix deletes the entries above both leaderLast and the commit
// index that carry a ballot below the leader's, from the end back to the
// last entry of the leader's ballot. None of them can hold a chosen value
// (package documentation, "Refinement").
func (c *Core) dropStaleSuffix(leaderLast uint64, b Ballot) {
	floor := max(leaderLast, c.commit)
	s := c.log.last()
	for s > floor && c.log.at(s).Ballot.Less(b) {
		s--
	}
	if s < c.log.last() {
		c.truncateFrom(s + 1)
	}
}

// learnCommit raises the commit index to what the leader reports, but never
// past the slots known equal to the leader's log.
func (c *Core) learnCommit(leaderCommit uint64) {
	if ci := min(leaderCommit, c.leaderMatch); ci > c.commit {
		c.setCommit(ci)
	}
}

func (c *Core) handleHeartbeat(m Message) {
	if !c.acceptLeader(m, MsgHeartbeatAck) {
		return
	}
	c.dropStaleSuffix(m.LastSlot, m.Ballot)
	c.learnCommit(m.Commit)
	c.send(Message{Type: MsgHeartbeatAck, To: m.From, Ballot: m.Ballot, LastSlot: c.leaderMatch, Ctx: m.Ctx})
}

// handleSnapshot takes one chunk of a snapshot (see the package
// documentation, "Snapshots and compaction"). Chunks are taken strictly in
// order; anything else is answered with the offset wanted, so the leader
// resends from there.
func (c *Core) handleSnapshot(m Message) {
	if !c.acceptLeader(m, MsgSnapshotAck) {
		return
	}
	ch := m.Chunk
	if ch.Meta.Slot <= c.commit {
		// Nothing to install (this member caught up otherwise, or installed
		// this snapshot and its answer was lost).
		c.recv = nil
		c.leaderMatch = max(c.leaderMatch, c.commit)
		c.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, LastSlot: c.leaderMatch})
		return
	}
	r := c.recv
	same := r != nil && r.ballot == m.Ballot && r.meta.Slot == ch.Meta.Slot && r.meta.Ballot == ch.Meta.Ballot && r.info == ch.Info
	want := uint64(0)
	if same {
		want = r.next
	}
	ack := func(next uint64) {
		c.send(Message{Type: MsgSnapshotAck, To: m.From, Ballot: m.Ballot, PrevSlot: ch.Meta.Slot, Hint: next})
	}
	if ChecksumBytes(ch.Data) != ch.DataChecksum {
		ack(want) // a damaged chunk: refuse it, ask for it again
		return
	}
	if c.snapshotToSave != nil {
		// A snapshot installed since the last Ready is not yet persisted:
		// its Ready must not also carry chunks of another transfer, which
		// the shell would write to the receiving file before it turns that
		// file into the installed snapshot. Ask for this chunk again.
		ack(want)
		return
	}
	// A chunk at offset 0 starts the receive afresh even for the same
	// snapshot: the leader restarted the transfer, and what this member
	// received before may no longer be on its disk (the shell discards a
	// partial file at start-up and whenever a new offset-0 chunk is saved).
	if ch.Offset == 0 {
		// The start of a new transfer (a new leader or a newer snapshot):
		// whatever was being received is abandoned.
		r = &snapRecv{ballot: m.Ballot, meta: ch.Meta, info: ch.Info}
		r.meta.Members = peer.MustSet(ch.Meta.Members.IDs()...) // a private copy
		c.recv, want = r, 0
	}
	if ch.Offset != want || c.recv == nil {
		// Out of order (a chunk before it was lost), a duplicate, or the
		// middle of a transfer this member does not hold (it restarted):
		// say where to go on from. A leader that restarted a transfer this
		// member already holds part of resumes at want.
		ack(want)
		return
	}
	c.chunksToSave = append(c.chunksToSave, SnapshotChunk{Meta: r.meta, Info: r.info, Offset: ch.Offset,
		Data: bytes.Clone(ch.Data), DataChecksum: ch.DataChecksum})
	r.next += uint64(len(ch.Data))
	r.crc = UpdateChecksum(r.crc, ch.Data)
	if r.next < r.info.TotalBytes {
		ack(r.next)
		return
	}
	c.recv = nil
	if r.crc != r.info.Checksum {
		// Every chunk passed its own check, yet the whole does not: start
		// again. The shell's file is rewritten from offset 0.
		ack(0)
		return
	}
	c.installSnapshot(r.meta)
	c.leaderMatch = max(c.leaderMatch, c.commit)
	c.send(Message{Type: MsgAccepted, To: m.From, Ballot: m.Ballot, LastSlot: c.leaderMatch})
}

// installSnapshot replaces the log up to the snapshot's slot. Entries above
// it stay: they are either the leader's own, or a stale suffix that a later
// Accept or heartbeat overwrites or drops.
func (c *Core) installSnapshot(meta SnapshotMeta) {
	c.log.compact(meta)
	c.setCommit(meta.Slot)
	c.snapshotToSave = &meta
	c.mustRefreshConfig()
}

// ---- leader side of the answers ----

// leaderResponse handles the ballot of an answer to this leader. It reports
// whether the answer is current.
func (c *Core) leaderResponse(m Message) bool {
	if c.ballot.Less(m.Ballot) && m.Reject {
		// A member promised a higher ballot: this leadership is over.
		if c.role == Leader {
			c.stepDown(m.Ballot)
		} else {
			c.seeRound(m.Ballot)
		}
		return false
	}
	if c.role != Leader || m.Ballot != c.ballot {
		return false // stale: an answer to an older leadership
	}
	return c.progress[m.From] != nil
}

func (c *Core) handleAccepted(m Message) {
	if !c.leaderResponse(m) {
		return
	}
	pr := c.progress[m.From]
	pr.recentActive = true
	if m.Reject {
		c.handleAcceptRejected(m, pr)
		return
	}
	if m.LastSlot > c.log.last() {
		return // claims slots we never sent: ignore
	}
	pr.ack(m.LastSlot)
	switch {
	case pr.state == stateProbe:
		pr.becomeReplicate()
	case pr.state == stateSnapshot && pr.match >= pr.pendingSnapshot:
		pr.becomeReplicate()
	}
	c.maybeCommit()
	if c.role == Leader {
		c.sendAccepts(m.From, false)
	}
}

// handleSnapshotAck moves a chunked transfer on: an offset above the
// acknowledged one opens the window; one below it means the follower lost
// what it held (it restarted, or refused the whole) and the leader goes back
// there; the same offset again while more is in flight means a chunk was
// lost or refused: resend from it, once until the offset moves.
func (c *Core) handleSnapshotAck(m Message) {
	if !c.leaderResponse(m) {
		return
	}
	pr := c.progress[m.From]
	pr.recentActive = true
	if m.Reject || pr.state != stateSnapshot || m.PrevSlot != pr.pendingSnapshot || m.Hint > pr.snapInfo.TotalBytes {
		return
	}
	switch {
	case m.Hint > pr.snapAcked:
		pr.snapAcked = m.Hint
		pr.snapSent = max(pr.snapSent, m.Hint)
		pr.snapResent = false
		pr.snapshotTicks = 0
	case m.Hint < pr.snapAcked:
		// Rewinding is the resend: answers to chunks already in flight
		// must not rewind again before the offset moves.
		pr.snapAcked, pr.snapResent = m.Hint, true
		pr.snapRewind(m.Hint)
	case pr.snapSent > pr.snapAcked && !pr.snapResent:
		pr.snapRewind(pr.snapAcked)
		pr.snapResent = true
	}
	c.sendChunks(m.From, pr)
}

func (c *Core) handleAcceptRejected(m Message, pr *progress) {
	switch pr.state {
	case stateReplicate:
		if m.PrevSlot < pr.match {
			return // answers an Accept older than what is acknowledged
		}
	case stateProbe:
		if m.PrevSlot != pr.next-1 {
			return // answers an older probe
		}
	case stateSnapshot:
		return
	}
	if m.Hint < pr.match {
		// The follower holds less than it acknowledged: its disk lost
		// state (a broken fsync, or a planted bug in a test). Believe it, so
		// replication resumes; the commit index never moves back.
		pr.match = m.Hint
	}
	next := max(pr.match+1, min(m.PrevSlot, m.Hint+1))
	pr.becomeProbe()
	pr.next = next
	c.sendAccepts(m.From, false)
}

func (c *Core) handleHeartbeatAck(m Message) {
	if !c.leaderResponse(m) {
		return
	}
	pr := c.progress[m.From]
	pr.recentActive = true
	moved := m.LastSlot <= c.log.last() && pr.ack(m.LastSlot)
	if pr.state == stateSnapshot && pr.match >= pr.pendingSnapshot {
		pr.becomeReplicate() // installed; the answer to its last chunk was lost
	}
	if m.LastSlot < pr.match && pr.state == stateReplicate {
		// The follower knows less of what matches our log than we do: it
		// restarted, and that knowledge (leaderMatch) is volatile. Its
		// entries are durable, but it cannot commit them until an Accept
		// of ours covers them again, and with nothing new to propose none
		// would come (testdata/follower_restart_idle.txt): send again from
		// what it knows.
		pr.becomeProbe()
		pr.next = m.LastSlot + 1
	}
	if moved {
		c.maybeCommit()
		if c.role != Leader {
			return
		}
	}
	if len(m.Ctx) > 0 {
		for i := len(c.reads) - 1; i >= 0; i-- {
			if bytes.Equal(c.reads[i].ctx, m.Ctx) {
				c.reads[i].acks[m.From] = true
				break
			}
		}
		c.releaseReads()
	}
	switch pr.state {
	case stateProbe:
		pr.probeSent = false // the probe or its answer may have been lost
	case stateReplicate:
		full := int(pr.next-1-pr.match) >= c.cfg.InflightEntriesMax || pr.inflightBytes >= c.cfg.InflightBytesMax
		if full && !moved {
			// A full window that a heartbeat answer did not move: an Accept
			// was lost. Resend from what is acknowledged.
			pr.becomeProbe()
		}
	}
	if pr.match < c.log.last() || pr.next <= pr.match {
		// In replicate state with nothing new to send, an empty Accept
		// still probes: if the last batch was lost, the follower refuses
		// it and the leader backs up (as etcd raft does).
		c.sendAccepts(m.From, pr.state == stateReplicate && !moved)
	}
}
