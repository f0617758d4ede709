package vsync

import (
	"errors"
	"fmt"

	"github.com/chorus-project/chorus/internal/liveness"
	"github.com/chorus-project/chorus/internal/order"
)

// Hard ceilings on Config: they keep every derived bound (fetch requests of
// members × window refs, decoded member lists) within memory that a
// misconfiguration cannot blow up.
const (
	// MembersMaxMax bounds Config.MembersMax (and order's own ceiling).
	MembersMaxMax = order.MembersMax
	// ChunkBytesMaxMax bounds Config.ChunkBytesMax: one chunk travels in
	// one message, and a frame of the transport stays well under 64 MiB.
	ChunkBytesMaxMax = 16 << 20
	// TransferWindowChunksMax bounds Config.TransferWindowChunks.
	TransferWindowChunksMax = 1024
	// forwardMessagesMax bounds the order messages in one Forward: a holder
	// answering a large fetch splits its answer.
	forwardMessagesMax = 64
)

// Errors. Input from a peer that is refused wraps one of these; local calls
// return them directly.
var (
	// ErrConfig: Config or the arguments of New or NewJoiner are invalid.
	ErrConfig = errors.New("vsync: invalid config")
	// ErrMalformed: a message that breaks the encoding or the protocol.
	ErrMalformed = errors.New("vsync: malformed message")
	// ErrNotMember: the message comes from a process outside the view, or
	// Send was called before this member installed a view.
	ErrNotMember = errors.New("vsync: not a member")
	// ErrStopped: the member left, was excluded, or failed; it is done.
	// The process may rejoin as a new incarnation with a new Node.
	ErrStopped = errors.New("vsync: member stopped")
	// ErrExcluded is the stop reason of a member the group excluded while
	// it was alive (a verified suspicion that was false, or a partition).
	ErrExcluded = errors.New("vsync: excluded from the group")
	// ErrLeft is the stop reason of a member whose Leave completed.
	ErrLeft = errors.New("vsync: left the group")
	// ErrRestoreOverflow is the stop reason of a joiner whose buffer of
	// new-view deliveries (held until the state transfer completes)
	// overflowed RestoreBufferBytesMax or RestoreBufferDeliveriesMax. The
	// group excludes it once it falls silent; it may rejoin.
	ErrRestoreOverflow = errors.New("vsync: restore buffer overflow")
	// ErrNoTransfer: SendChunk for a transfer this member is not running
	// (finished, replaced by a newer attempt, or the joiner is gone).
	ErrNoTransfer = errors.New("vsync: no such state transfer")
	// ErrTransferWindowFull: TransferWindowChunks chunks are unacknowledged;
	// retry after the joiner acknowledges.
	ErrTransferWindowFull = errors.New("vsync: transfer window full")
	// ErrChunkTooLarge: SendChunk with more than ChunkBytesMax bytes.
	ErrChunkTooLarge = errors.New("vsync: chunk too large")
	// ErrLeaving: Leave was already called.
	ErrLeaving = errors.New("vsync: already leaving")
)

// Config bounds one member. Every field is required.
type Config struct {
	// Order configures the order instance of each view.
	Order order.Config
	// Liveness configures the failure detector of each view.
	Liveness liveness.Config
	// MembersMax bounds the size of a view (joins beyond it wait) and what
	// the decoder accepts.
	MembersMax int
	// RetryTicks is the interval at which an unanswered protocol message
	// (Prepare, Accept, Decide, a fetch, a join or leave request, a
	// transfer request or an unacknowledged chunk) is sent again: the
	// network may lose any message.
	RetryTicks int
	// ChangeTimeoutTicks is how long a member may stay paused for a view
	// change without a decision before the acting proposer (the lowest
	// ranked member it does not hold faulty) starts a round of its own.
	ChangeTimeoutTicks int
	// JoinsPendingMax bounds the join requests a proposer keeps for the
	// next change; more are dropped (the joiner retries).
	JoinsPendingMax int
	// ChunkBytesMax bounds one state-transfer chunk.
	ChunkBytesMax int
	// TransferWindowChunks bounds the chunks a donor has sent and the
	// joiner has not acknowledged.
	TransferWindowChunks int
	// TransferTimeoutTicks is how long a joiner waits without progress of
	// its state transfer before it asks the next old member.
	TransferTimeoutTicks int
	// RestoreBufferDeliveriesMax and RestoreBufferBytesMax bound the
	// new-view deliveries a joiner holds back until its restore is done.
	// Over either, the joiner stops with ErrRestoreOverflow.
	RestoreBufferDeliveriesMax int
	RestoreBufferBytesMax      int
}

// DefaultConfig suits a LAN with a 10 ms tick: order's defaults; liveness
// with heartbeats every 50 ms and a verdict after about 0.5 s (vsync's tick
// is order's, ten times liveness' default tick); retries every 50 ms; a
// change stuck for 1 s taken over; views of up to 64 members; 64 KiB chunks,
// 16 in flight (1 MiB, a LAN round trip of bandwidth at 10 Gb/s); a joiner
// that sees no transfer progress for 2 s moves to the next donor and holds
// back at most 4096 deliveries or 64 MiB meanwhile.
func DefaultConfig() Config {
	return Config{
		Order:                      order.DefaultConfig(),
		Liveness:                   liveness.Config{HeartbeatTicks: 5, SuspectTicks: 30, VerifyTicks: 20, IndirectProbes: 2},
		MembersMax:                 64,
		RetryTicks:                 5,
		ChangeTimeoutTicks:         100,
		JoinsPendingMax:            16,
		ChunkBytesMax:              64 << 10,
		TransferWindowChunks:       16,
		TransferTimeoutTicks:       200,
		RestoreBufferDeliveriesMax: 4096,
		RestoreBufferBytesMax:      64 << 20,
	}
}

// Validate reports the first field out of range, wrapping ErrConfig.
func (c Config) Validate() error {
	if err := c.Order.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.Liveness.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	switch {
	case c.MembersMax < 1 || c.MembersMax > MembersMaxMax:
		return fmt.Errorf("%w: MembersMax %d not in [1, %d]", ErrConfig, c.MembersMax, MembersMaxMax)
	case c.MembersMax*c.Order.SendWindowMax > 1<<22:
		return fmt.Errorf("%w: MembersMax %d × SendWindowMax %d over %d", ErrConfig, c.MembersMax, c.Order.SendWindowMax, 1<<22)
	case c.RetryTicks < 1:
		return fmt.Errorf("%w: RetryTicks %d < 1", ErrConfig, c.RetryTicks)
	case c.ChangeTimeoutTicks <= c.RetryTicks:
		return fmt.Errorf("%w: ChangeTimeoutTicks %d must exceed RetryTicks %d", ErrConfig, c.ChangeTimeoutTicks, c.RetryTicks)
	case c.JoinsPendingMax < 1:
		return fmt.Errorf("%w: JoinsPendingMax %d < 1", ErrConfig, c.JoinsPendingMax)
	case c.ChunkBytesMax < 1 || c.ChunkBytesMax > ChunkBytesMaxMax:
		return fmt.Errorf("%w: ChunkBytesMax %d not in [1, %d]", ErrConfig, c.ChunkBytesMax, ChunkBytesMaxMax)
	case c.TransferWindowChunks < 1 || c.TransferWindowChunks > TransferWindowChunksMax:
		return fmt.Errorf("%w: TransferWindowChunks %d not in [1, %d]", ErrConfig, c.TransferWindowChunks, TransferWindowChunksMax)
	case c.TransferTimeoutTicks <= c.RetryTicks:
		return fmt.Errorf("%w: TransferTimeoutTicks %d must exceed RetryTicks %d", ErrConfig, c.TransferTimeoutTicks, c.RetryTicks)
	case c.RestoreBufferDeliveriesMax < 1:
		return fmt.Errorf("%w: RestoreBufferDeliveriesMax %d < 1", ErrConfig, c.RestoreBufferDeliveriesMax)
	case c.RestoreBufferBytesMax < c.Order.PayloadBytesMax:
		return fmt.Errorf("%w: RestoreBufferBytesMax %d below one payload (%d)", ErrConfig, c.RestoreBufferBytesMax, c.Order.PayloadBytesMax)
	}
	return nil
}

// Limits bounds what DecodeMessage accepts.
type Limits struct {
	// MembersMax bounds member lists, digests and positions.
	MembersMax int
	// Order bounds an embedded order message (for a view of MembersMax).
	Order order.Limits
	// RefsMax bounds the refs and ranges of a fetch.
	RefsMax int
	// ChunkBytesMax bounds a state-transfer chunk.
	ChunkBytesMax int
}

// Limits returns the decoding limits of a member run with c.
func (c Config) Limits() Limits {
	return Limits{
		MembersMax:    c.MembersMax,
		Order:         c.Order.Limits(c.MembersMax),
		RefsMax:       c.MembersMax * c.Order.SendWindowMax,
		ChunkBytesMax: c.ChunkBytesMax,
	}
}

// orderMessageBytesMax bounds one embedded order message: a data message
// with a full clock and payload is the largest.
func (l Limits) orderMessageBytesMax() int {
	return 64 + 10*l.Order.MembersMax*2 + l.Order.PayloadBytesMax + 10*2*l.Order.RangesMax + 20*l.Order.EntriesMax
}
