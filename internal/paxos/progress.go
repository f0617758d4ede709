package paxos

import "fmt"

// progressState is how a leader currently sends to one follower (the three
// states of etcd raft's tracker, for the same reasons).
type progressState uint8

const (
	// stateProbe: the leader does not know where the follower's log matches
	// its own; one Accept at a time, until it is answered.
	stateProbe progressState = iota + 1
	// stateReplicate: the follower matches up to match; Accepts are pipelined
	// optimistically from next, within the in-flight window.
	stateReplicate
	// stateSnapshot: a snapshot is on its way in chunks; nothing else is
	// sent until it is installed. Chunks lost or unanswered for
	// ElectionTicks are sent again from the last acknowledged offset.
	stateSnapshot
)

func (s progressState) String() string {
	switch s {
	case stateProbe:
		return "probe"
	case stateReplicate:
		return "replicate"
	case stateSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("progressState(%d)", uint8(s))
}

// inflightBatch is one unacknowledged Accept: its last slot and data bytes.
type inflightBatch struct {
	last  uint64
	bytes int
}

// progress is the leader's view of one follower.
type progress struct {
	match uint64 // highest slot known durable there and equal to the leader's
	next  uint64 // next slot to send
	state progressState
	// probeSent pauses a probing follower until it answers.
	probeSent bool
	// pendingSnapshot is the slot of the snapshot sent, in stateSnapshot;
	// snapshotTicks counts ticks since the transfer last moved, to resend
	// what was lost.
	pendingSnapshot uint64
	snapshotTicks   int
	// The chunked transfer: what is sent (snapMeta, snapInfo), the next
	// offset to send and the offset the follower acknowledged holding.
	// snapStarted says the first chunk went out (an empty snapshot is one
	// empty chunk); snapResent that a gap was already answered by resending,
	// until the acknowledged offset moves again.
	snapMeta    SnapshotMeta
	snapInfo    SnapshotInfo
	snapSent    uint64
	snapAcked   uint64
	snapStarted bool
	snapResent  bool
	// inflight holds the unacknowledged batches in replicate state, oldest
	// first; inflightBytes is the sum of their bytes. The entry count in
	// flight is next-1-match.
	inflight      []inflightBatch
	inflightBytes int
	// recentActive records that the follower answered since the last
	// CheckQuorum.
	recentActive bool
}

func (p *progress) becomeProbe() {
	p.state = stateProbe
	p.probeSent = false
	p.next = p.match + 1
	p.resetInflight()
}

func (p *progress) becomeReplicate() {
	p.state = stateReplicate
	p.probeSent = false
	p.next = p.match + 1
	p.resetInflight()
}

// snapRewind makes a chunked transfer resend from offset.
func (p *progress) snapRewind(offset uint64) {
	p.snapSent = offset
	p.snapStarted = offset > 0
}

func (p *progress) resetInflight() {
	clear(p.inflight)
	p.inflight = p.inflight[:0]
	p.inflightBytes = 0
}

// ack records that the follower matches up to slot and frees the in-flight
// batches it covers. It reports whether match moved.
func (p *progress) ack(slot uint64) bool {
	if slot <= p.match {
		return false
	}
	p.match = slot
	p.next = max(p.next, slot+1)
	n := 0
	for n < len(p.inflight) && p.inflight[n].last <= slot {
		p.inflightBytes -= p.inflight[n].bytes
		n++
	}
	p.inflight = append(p.inflight[:0], p.inflight[n:]...)
	return true
}

func (p *progress) String() string {
	return fmt.Sprintf("match=%d next=%d %s", p.match, p.next, p.state)
}
