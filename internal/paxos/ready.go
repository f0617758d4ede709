package paxos

import (
	"math"
	"slices"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
)

// Ready is what the caller must persist, send, apply and serve; see the
// numbered duties in the package documentation. Its slices are the caller's,
// but entry and message data may be shared with the core and with other
// Readys: the caller must not modify them.
type Ready struct {
	// HardState, if not nil, must be durable before Messages are sent.
	HardState *HardState
	// SnapshotChunks are pieces of a snapshot being received, in order: the
	// caller appends each to its file of the snapshot being received (one
	// at Offset 0 starts that file afresh) before Messages are sent. They
	// need not be synced: a receiving member that crashes starts the
	// transfer again, and its leftover file must be discarded at restart.
	SnapshotChunks []SnapshotChunk
	// Snapshot, if not nil, is complete: the bytes received in
	// SnapshotChunks (of this Ready and earlier ones) are the snapshot
	// Snapshot describes, their checksum verified. It must be made durable
	// (after this Ready's chunks are written) before Messages are sent and
	// installed into the state machine before Committed is applied.
	Snapshot *SnapshotMeta
	// EntriesFrom, if not 0, is the first slot whose persisted entry changes:
	// delete every persisted entry at or above it, then append Entries
	// (which start at EntriesFrom when not empty). Durable before Messages.
	EntriesFrom uint64
	Entries     []Entry
	// Messages are sent after the above is durable.
	Messages []Message
	// Committed are applied in order, after the above is durable.
	Committed []Entry
	// ReadStates are served once the state machine has applied Index.
	ReadStates []ReadState
}

// HasReady reports whether Ready would hand out anything.
func (c *Core) HasReady() bool {
	return c.flushPending || c.hardState() != c.persistedHS || c.snapshotToSave != nil || len(c.chunksToSave) > 0 ||
		c.log.needsPersist() || len(c.msgs) > 0 || c.commit > c.applied || len(c.readStates) > 0
}

func (c *Core) hardState() HardState { return HardState{Promised: c.promised, Commit: c.commit} }

// Ready returns the next batch of duties. Each Ready must be followed by
// Advance before the next Ready.
func (c *Core) Ready() Ready {
	invariant.Check(c.handed == nil, "Ready called again before Advance")
	if c.flushPending && c.role == Leader {
		c.bcastAccept()
	}
	c.flushPending = false
	var rd Ready
	h := &handedOut{}
	if hs := c.hardState(); hs != c.persistedHS {
		rd.HardState = &hs
		h.hs = &hs
	}
	rd.SnapshotChunks, c.chunksToSave = c.chunksToSave, nil
	if c.snapshotToSave != nil {
		rd.Snapshot = c.snapshotToSave
		h.snapshot = c.snapshotToSave
		c.snapshotToSave = nil
	}
	if c.log.needsPersist() {
		rd.EntriesFrom = c.log.unstableFrom
		rd.Entries = slices.Clone(c.log.slice(c.log.unstableFrom, c.log.last()))
		h.logChanged = true
	}
	h.logLast = c.log.last()
	c.log.dirtyFrom = math.MaxUint64
	rd.Messages, c.msgs = c.msgs, nil
	h.committedLast = c.applied
	if c.commit > c.applied {
		lo := max(c.applied+1, c.log.first())
		rd.Committed = slices.Clone(c.log.slice(lo, c.commit))
		h.committedLast = c.commit
	}
	rd.ReadStates, c.readStates = c.readStates, nil
	c.handed = h
	return rd
}

// Advance tells the core that the caller carried out every duty of rd, the
// Ready it last returned.
func (c *Core) Advance(rd Ready) {
	defer c.assertInvariants()
	h := c.handed
	invariant.Check(h != nil, "Advance without Ready")
	invariant.Check(len(rd.Committed) == 0 || rd.Committed[len(rd.Committed)-1].Slot == h.committedLast,
		"Advance with a Ready that was not the last one handed out")
	c.handed = nil
	if h.hs != nil {
		c.persistedHS = *h.hs
	}
	if h.logChanged {
		c.log.diskLast = h.logLast
		c.log.unstableFrom = min(c.log.dirtyFrom, h.logLast+1)
	}
	if h.snapshot != nil {
		c.applied = max(c.applied, h.snapshot.Slot)
	}
	c.applied = max(c.applied, h.committedLast)
	// The leader's own acknowledgement counts only now that its disk holds
	// the entries.
	c.maybeCommit()
}

// ---- status ----

// Status is a snapshot of a member's state, for operators and tests.
type Status struct {
	ID           peer.ID
	Role         Role
	Leader       peer.ID
	Promised     Ballot
	Commit       uint64
	Applied      uint64
	LastSlot     uint64
	SnapshotSlot uint64
	Members      peer.Set
	Q1, Q2       int
	// Progress is the leader's view of each follower, in ID order.
	Progress []PeerProgress
}

// PeerProgress is the leader's view of one follower.
type PeerProgress struct {
	ID    peer.ID
	Match uint64
	Next  uint64
	State string
}

// Status returns the member's current state.
func (c *Core) Status() Status {
	s := Status{
		ID: c.id, Role: c.role, Leader: c.leader, Promised: c.promised, Commit: c.commit,
		Applied: c.applied, LastSlot: c.log.last(), SnapshotSlot: c.log.snap.Slot,
		Members: c.members, Q1: c.qs.Q1(), Q2: c.qs.Q2(),
	}
	if c.role == Leader {
		for _, id := range c.followers() {
			pr := c.progress[id]
			s.Progress = append(s.Progress, PeerProgress{ID: id, Match: pr.match, Next: pr.next, State: pr.state.String()})
		}
	}
	return s
}

// Entries returns a copy of the log entries lo..hi that are held in memory
// (for tests and debugging tools).
func (c *Core) Entries(lo, hi uint64) []Entry {
	lo, hi = max(lo, c.log.first()), min(hi, c.log.last())
	return cloneEntries(c.log.slice(lo, hi))
}
