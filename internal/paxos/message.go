package paxos

import (
	"fmt"
	"strings"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// WireKind is the envelope kind under which a shell sends an encoded Message
// (see package wire: 0x0100-0x01ff belongs to paxos).
const WireKind wire.Kind = 0x0100

// MessageType says which exchange a Message belongs to.
type MessageType uint8

const (
	// MsgPrePrepare asks "would you promise Ballot?" without changing the
	// receiver's state (pre-vote: a partitioned member cannot inflate
	// ballots and depose a healthy leader when it returns). Commit is the
	// candidate's commit index.
	MsgPrePrepare MessageType = iota + 1
	// MsgPrePromise answers MsgPrePrepare; Reject means no. Hint is the
	// responder's promised round and Commit its commit index.
	MsgPrePromise
	// MsgPrepare is phase 1a: promise Ballot; Commit is the candidate's
	// commit index.
	MsgPrepare
	// MsgPromise is phase 1b: the acceptor promised Ballot and sends its
	// accepted entries above the candidate's commit. With Reject it did not
	// promise, because it promised a higher round (Hint) or its commit index
	// (Commit) is above the candidate's.
	MsgPromise
	// MsgAccept is phase 2a: accept Entries (contiguous, from PrevSlot+1)
	// under Ballot; Commit is the leader's commit index and LastSlot the
	// leader's last slot when it sent the message.
	MsgAccept
	// MsgAccepted is phase 2b, sent only after the acceptor persisted: its
	// log equals the leader's up to LastSlot. With Reject, either Ballot is
	// the acceptor's higher promise (the leader is stale), or Ballot is the
	// leader's and the acceptor does not hold PrevSlot (echoed) in the
	// leader's version; Hint is then the highest slot that may match.
	MsgAccepted
	// MsgHeartbeat keeps followers from campaigning, carries the commit index
	// (clamped to what the follower is known to hold), the leader's last slot
	// and, when a read is waiting, the newest read's Ctx.
	MsgHeartbeat
	// MsgHeartbeatAck answers a heartbeat, echoing Ctx; LastSlot is the
	// highest slot the member knows equals the leader's log (durable, so it
	// acknowledges like MsgAccepted). With Reject, Ballot is the member's
	// higher promise.
	MsgHeartbeatAck
	// MsgSnapshot carries one chunk (Chunk) of the snapshot a member needs
	// because the leader compacted the slots it lacks. Chunks that are not
	// the last are answered with MsgSnapshotAck; the last one, once the
	// whole snapshot's checksum held and it is installed, with MsgAccepted.
	MsgSnapshot
	// MsgSnapshotAck answers a chunk: PrevSlot is the snapshot's slot and
	// Hint the next byte offset the member wants (0: start again). With
	// Reject, Ballot is the member's higher promise.
	MsgSnapshotAck
)

const msgTypeMax = MsgSnapshotAck

func (t MessageType) String() string {
	switch t {
	case MsgPrePrepare:
		return "PrePrepare"
	case MsgPrePromise:
		return "PrePromise"
	case MsgPrepare:
		return "Prepare"
	case MsgPromise:
		return "Promise"
	case MsgAccept:
		return "Accept"
	case MsgAccepted:
		return "Accepted"
	case MsgHeartbeat:
		return "Heartbeat"
	case MsgHeartbeatAck:
		return "HeartbeatAck"
	case MsgSnapshot:
		return "Snapshot"
	case MsgSnapshotAck:
		return "SnapshotAck"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is every message between members. Which fields matter depends on
// Type (see the MessageType constants); the rest are zero. Entries, Chunk's
// data and Ctx may alias the buffer a message was decoded from.
type Message struct {
	Type     MessageType
	From     peer.ID
	To       peer.ID
	Ballot   Ballot
	Commit   uint64
	PrevSlot uint64
	LastSlot uint64
	Hint     uint64
	Reject   bool
	Entries  []Entry
	Chunk    *SnapshotChunk
	Ctx      []byte
}

func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s b=%s", m.From, m.To, m.Type, m.Ballot)
	if m.Reject {
		b.WriteString(" REJECT")
	}
	switch m.Type {
	case MsgPrePrepare, MsgPrepare:
		fmt.Fprintf(&b, " commit=%d", m.Commit)
	case MsgPrePromise:
	case MsgPromise:
		fmt.Fprintf(&b, " commit=%d", m.Commit)
		if !m.Reject {
			fmt.Fprintf(&b, " entries=%s", entriesString(m.Entries))
		}
	case MsgAccept:
		fmt.Fprintf(&b, " prev=%d commit=%d last=%d entries=%s", m.PrevSlot, m.Commit, m.LastSlot, entriesString(m.Entries))
	case MsgAccepted:
		if m.Reject {
			fmt.Fprintf(&b, " hint=%d", m.Hint)
		} else {
			fmt.Fprintf(&b, " last=%d", m.LastSlot)
		}
	case MsgHeartbeat:
		fmt.Fprintf(&b, " commit=%d last=%d", m.Commit, m.LastSlot)
	case MsgHeartbeatAck:
		if !m.Reject {
			fmt.Fprintf(&b, " last=%d", m.LastSlot)
		}
	case MsgSnapshot:
		if ch := m.Chunk; ch != nil {
			fmt.Fprintf(&b, " snap=[%s] bytes %d..%d of %d", ch.Meta, ch.Offset, ch.Offset+uint64(len(ch.Data)), ch.Info.TotalBytes)
		}
	case MsgSnapshotAck:
		if !m.Reject {
			fmt.Fprintf(&b, " snap=%d next=%d", m.PrevSlot, m.Hint)
		}
	}
	if len(m.Ctx) > 0 {
		fmt.Fprintf(&b, " ctx=%q", m.Ctx)
	}
	return b.String()
}
