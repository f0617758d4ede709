package transport

import (
	"errors"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// Errors of this package, wrapped with detail; test with errors.Is. Most of
// them never reach a caller: they are the reasons in the log line written when
// a connection is refused or dropped.
var (
	// ErrConfig: a Config or Limits value is out of range.
	ErrConfig = errors.New("transport: invalid config")
	// ErrClosed: the transport or endpoint was closed.
	ErrClosed = errors.New("transport: closed")
	// ErrHandshake: the hello was garbage, or named another cluster,
	// another member or another wire version.
	ErrHandshake = errors.New("transport: handshake refused")
	// ErrFrameTooLarge: a frame header claimed more than FrameBytesMax.
	ErrFrameTooLarge = errors.New("transport: frame over limit")
	// ErrProtocol: a well-framed connection carried something it must not
	// (an undecodable or misaddressed envelope, data on the keep-alive
	// direction).
	ErrProtocol = errors.New("transport: protocol violation")
	// ErrIdle: nothing, not even a keep-alive, arrived for ReadIdleTimeout.
	ErrIdle = errors.New("transport: connection idle")
)

// Transport moves envelopes from this member to other members.
//
// Send never blocks for long: each peer has a bounded queue of encoded
// frames, and a full queue refuses the new envelope and counts it. The
// protocols above retransmit what is lost; a caller blocked on a slow peer
// would stall the core that drives every other peer too.
//
// Delivery is at most once and, per ordered pair of members, in send order
// with possible gaps: an envelope may be lost (queue full, connection broken
// while it was in flight, partition) but two envelopes from A to B are never
// handed to B's Handler in the opposite order from the one A sent them in,
// even across reconnections.
//
// Threading: every method is safe for concurrent use. Send copies the
// envelope (it encodes it into the queue) before it returns, so the caller may
// reuse env.Payload at once.
type Transport interface {
	// Send queues env for env.To and reports whether it was queued. It
	// returns false when env.To is not a peer (never added, or removed), when
	// the envelope encodes to more than FrameBytesMax, when the peer's queue
	// is full, or after Close; each case is counted in Stats. env.From must be
	// this member's own ID: anything else is a bug in the caller and stops the
	// process (invariant.Check).
	Send(env wire.Envelope) bool
	// SetPeer adds a peer, or changes its address. A changed address drops
	// the current connection to the old one; queued envelopes are kept and
	// go to the new address. id must not be peer.None.
	SetPeer(id peer.ID, addr string)
	// RemovePeer forgets a peer: its queue is discarded, its connection
	// closed, and later Sends to it are refused. Envelopes it sends to us are
	// still delivered; membership is decided above the transport.
	RemovePeer(id peer.ID)
	// Stats returns counters, with peers in ascending ID order.
	Stats() Stats
	// Close stops every goroutine and closes every connection. It returns
	// after the last Handler call has returned. It must not be called from a
	// Handler. Later calls return nil.
	Close() error
}

// Handler receives each envelope delivered to this member.
//
// Threading contract: calls for envelopes from one sender are sequential and
// in that sender's order; calls for different senders run concurrently, so a
// Handler that touches shared state must lock (or hand the envelope to a
// single goroutine through its own bounded channel). The Handler owns
// env.Payload: it may keep it, and nothing else writes to it.
//
// A Handler should return quickly. While it runs, nothing more is read from
// that sender; if it blocks past the sender's WriteTimeout, the sender gives
// the connection up as stuck, counts its in-flight frames as lost and
// reconnects. A Handler must not call Close on any transport (Close waits for
// Handlers to return).
//
// Why a callback and not a channel: a channel inside the transport would be a
// second queue with its own bound and its own drop rule, between the socket
// and the shell's own queue. With a callback the shell owns the only inbound
// queue and chooses what to do when it is full, and a slow shell pushes back
// on the sender through TCP flow control instead of being hidden by a buffer.
type Handler func(env wire.Envelope)

// Stats is a snapshot of a transport's counters. Counters only grow, except
// the Queued and Connected gauges.
type Stats struct {
	// Peers holds one entry per peer added with SetPeer and not removed,
	// in ascending ID order.
	Peers []PeerStats
	// RefusedUnknown counts Sends to a member that is not a peer.
	RefusedUnknown uint64
	// RefusedTooLarge counts Sends of an envelope over FrameBytesMax.
	RefusedTooLarge uint64
	// RefusedClosed counts Sends after Close.
	RefusedClosed uint64
	// ConnsAccepted counts inbound connections whose hello was accepted.
	ConnsAccepted uint64
	// ConnsRefused counts inbound connections closed before or at the hello
	// (garbage, wrong cluster, version or member, over InboundConnsMax).
	ConnsRefused uint64
	// ConnsDropped counts accepted inbound connections closed for a
	// protocol violation, an oversized frame or idleness.
	ConnsDropped uint64
	// ReceivedFrames and ReceivedBytes count envelopes handed to the
	// Handler, from every sender (peers or not), and their frame bytes
	// (header included, keep-alives not counted).
	ReceivedFrames uint64
	ReceivedBytes  uint64
}

// PeerStats are the counters for one peer.
type PeerStats struct {
	ID   peer.ID
	Addr string
	// Connected reports whether an outbound connection is up (TCP), or the
	// peer's endpoint exists and is not partitioned away (MemNetwork).
	Connected bool
	// QueuedFrames and QueuedBytes are what waits in the send queue now;
	// bytes include the 4-byte frame headers.
	QueuedFrames int
	QueuedBytes  int
	// SentFrames and SentBytes count frames written to the connection
	// (TCP) or handed to the peer's Handler (MemNetwork), and their bytes
	// (headers included, keep-alives not counted). A frame written to a
	// connection that then breaks counts as sent, and may not arrive.
	SentFrames uint64
	SentBytes  uint64
	// DroppedFrames counts Sends refused because the queue was full.
	DroppedFrames uint64
	// LostFrames counts frames that left the queue and were not delivered
	// for sure: in a write that failed (some may have arrived), or, in a
	// MemNetwork, blocked by a partition or an endpoint that closed.
	LostFrames uint64
	// Connects counts connections established (handshake completed); a
	// value above 1 means reconnections.
	Connects uint64
	// DialFailures counts dials or handshakes that failed.
	DialFailures uint64
	// ReceivedFrames and ReceivedBytes count envelopes from this peer handed
	// to our Handler, and their frame bytes: equal to the peer's
	// SentFrames and SentBytes for us while nothing is lost.
	ReceivedFrames uint64
	ReceivedBytes  uint64
}

// Peer returns the stats of id, and false if id is not a peer.
func (s Stats) Peer(id peer.ID) (PeerStats, bool) {
	for _, p := range s.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return PeerStats{}, false
}
