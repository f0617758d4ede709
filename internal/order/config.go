package order

import (
	"errors"
	"fmt"
)

// Hard ceilings on Config and on the view: they keep every derived bound
// (members × window entries of ordering state, a stability vector per
// member) within memory that a misconfiguration cannot blow up.
const (
	// MembersMax bounds the view size: stability gossip is all-to-all and
	// each message carries two vectors of the view's length, so the
	// protocol costs O(members²) per StabilityTicks.
	MembersMax = 1024
	// SendWindowMaxMax bounds Config.SendWindowMax.
	SendWindowMaxMax = 1 << 16
	// PayloadBytesMaxMax bounds Config.PayloadBytesMax: larger application
	// messages are the caller's to fragment.
	PayloadBytesMaxMax = 64 << 20
	// BatchEntriesMaxMax bounds Config.BatchEntriesMax.
	BatchEntriesMaxMax = 1 << 16
	// orderEntriesPerViewMax bounds members × SendWindowMax, the number of
	// global sequence numbers that can be in flight.
	orderEntriesPerViewMax = 1 << 22
)

// Errors. Input from a peer that is refused wraps one of these.
var (
	// ErrConfig: Config or the view given to New is invalid.
	ErrConfig = errors.New("order: invalid config")
	// ErrWindowFull: the sender already has SendWindowMax messages that
	// not every member has delivered. Retry after stability advances.
	ErrWindowFull = errors.New("order: send window full")
	// ErrPaused: Pause was called (a flush is under way).
	ErrPaused = errors.New("order: paused for flush")
	// ErrFinished: FinishFlush was called; the instance is done.
	ErrFinished = errors.New("order: view finished")
	// ErrPayloadTooLarge: a payload over PayloadBytesMax.
	ErrPayloadTooLarge = errors.New("order: payload too large")
	// ErrInvalidOrder: Send with an Order that is not one of the four.
	ErrInvalidOrder = errors.New("order: invalid order")
	// ErrWrongView: a message of another view, dropped.
	ErrWrongView = errors.New("order: message for another view")
	// ErrUnknownMember: a message naming a process outside the view.
	ErrUnknownMember = errors.New("order: not a member of the view")
	// ErrMalformed: a message that breaks the protocol's rules.
	ErrMalformed = errors.New("order: malformed message")
	// ErrBadCut: a flush cut that cannot be this view's (wrong length,
	// or below what this member already delivered).
	ErrBadCut = errors.New("order: bad cut")
	// ErrCutNotHeld: FinishFlush before this member holds the whole cut;
	// forward what Missing reports first.
	ErrCutNotHeld = errors.New("order: cut not held")
)

// Config bounds one order instance. Every field is required.
type Config struct {
	// SendWindowMax is the number of messages a sender may have that not
	// every member has delivered (unstable). Send returns ErrWindowFull
	// beyond it; receivers never buffer more than this per sender.
	SendWindowMax int
	// PayloadBytesMax bounds one message's payload.
	PayloadBytesMax int
	// BatchEntriesMax bounds the (sender, seq) entries in one ordering
	// message of the sequencer.
	BatchEntriesMax int
	// NakTicks is how long a gap must persist before it is NAKed, and the
	// interval between two NAKs for the same gap.
	NakTicks int
	// StabilityTicks is the interval between two stability gossips.
	StabilityTicks int
	// ReportEveryMessages, if not zero, also sends this member's stability
	// report as soon as, for some sender, it has received or delivered
	// that many messages more than its last report said (or holds that
	// many more ordering entries). Senders then learn that their window
	// has drained after about ReportEveryMessages of their messages rather
	// than after up to StabilityTicks: under load, a window no longer
	// waits for the clock. At most SendWindowMax; zero means reports go
	// out only every StabilityTicks.
	ReportEveryMessages int
}

// DefaultConfig suits a LAN with a 10 ms tick: a window of 256 messages per
// sender (at 1 KiB, 256 KiB in flight each: enough to keep a 1 Gb/s link
// busy across a 1 ms round trip), 1 MiB payloads, ordering batches of up to
// 512 entries (one batch per Ready covers a burst from every sender), a NAK
// after 20 ms of gap (a reordered packet has arrived by then on a LAN),
// stability gossip every 50 ms, and an early report every 64 messages of a
// sender (a quarter of the window). Without the early reports a window
// recycled only once per gossip interval, which capped a sender at 256
// messages per 50 ms (5,120 msgs/s) whatever the network could do; with
// them a busy sender's window drains about every 64 messages plus a round
// trip, and the periodic gossip remains for idle periods (the last message
// of a burst, safe delivery at low rates).
func DefaultConfig() Config {
	return Config{SendWindowMax: 256, PayloadBytesMax: 1 << 20, BatchEntriesMax: 512, NakTicks: 2, StabilityTicks: 5,
		ReportEveryMessages: 64}
}

// Validate reports the first field out of range, wrapping ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.SendWindowMax < 1 || c.SendWindowMax > SendWindowMaxMax:
		return fmt.Errorf("%w: SendWindowMax %d not in [1, %d]", ErrConfig, c.SendWindowMax, SendWindowMaxMax)
	case c.PayloadBytesMax < 1 || c.PayloadBytesMax > PayloadBytesMaxMax:
		return fmt.Errorf("%w: PayloadBytesMax %d not in [1, %d]", ErrConfig, c.PayloadBytesMax, PayloadBytesMaxMax)
	case c.BatchEntriesMax < 1 || c.BatchEntriesMax > BatchEntriesMaxMax:
		return fmt.Errorf("%w: BatchEntriesMax %d not in [1, %d]", ErrConfig, c.BatchEntriesMax, BatchEntriesMaxMax)
	case c.NakTicks < 1:
		return fmt.Errorf("%w: NakTicks %d < 1", ErrConfig, c.NakTicks)
	case c.StabilityTicks < 1:
		return fmt.Errorf("%w: StabilityTicks %d < 1", ErrConfig, c.StabilityTicks)
	case c.ReportEveryMessages < 0 || c.ReportEveryMessages > c.SendWindowMax:
		return fmt.Errorf("%w: ReportEveryMessages %d not in [0, SendWindowMax %d]", ErrConfig, c.ReportEveryMessages, c.SendWindowMax)
	}
	return nil
}

// Limits bounds what DecodeMessage accepts, so that a peer cannot make a
// member allocate more than the view could legitimately need.
type Limits struct {
	// MembersMax bounds clocks and stability vectors (the view size).
	MembersMax int
	// PayloadBytesMax bounds a data payload.
	PayloadBytesMax int
	// EntriesMax bounds the entries of an ordering batch.
	EntriesMax int
	// RangesMax bounds the ranges of a NAK.
	RangesMax int
}

// Limits returns the decoding limits of a view of members members run
// with c.
func (c Config) Limits(members int) Limits {
	return Limits{
		MembersMax:      members,
		PayloadBytesMax: c.PayloadBytesMax,
		EntriesMax:      c.BatchEntriesMax,
		RangesMax:       members * c.SendWindowMax,
	}
}
