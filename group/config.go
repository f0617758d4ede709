package group

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/vsync"
)

// Order says how a message is ordered against others (DESIGN.md section 3).
type Order uint8

const (
	// FIFO delivers each sender's messages in the order it sent them.
	FIFO Order = Order(order.FIFO)
	// Causal also delivers after every message the sender had delivered
	// when it sent.
	Causal Order = Order(order.Causal)
	// Total delivers every Total and Safe message in one order, the same
	// at every member.
	Total Order = Order(order.Total)
	// Safe is Total, delivered only once every member of the view holds
	// the message.
	Safe Order = Order(order.Safe)
)

func (o Order) String() string {
	switch o {
	case FIFO:
		return "fifo"
	case Causal:
		return "causal"
	case Total:
		return "total"
	case Safe:
		return "safe"
	}
	return fmt.Sprintf("order(%d)", uint8(o))
}

// Member is one process in a view.
type Member struct {
	ID MemberID
	// Incarnation tells apart the lives of one process: a process that
	// restarts, or that was excluded and rejoins, has a higher one.
	Incarnation uint64
	// Addr is where the member listens, if this member has learned it.
	Addr string
}

// View is one membership of the group. Members are in join order; a
// member's rank is its index, and rank 0 is the coordinator (and the
// sequencer of total order). Every member installs the same sequence of
// views.
type View struct {
	ID      uint64
	Members []Member
	// Rank is this member's rank in the view.
	Rank int
}

// Message is one delivery.
type Message struct {
	// View is the view the message was sent and delivered in.
	View uint64
	// Sender sent it; Seq is its number among the sender's messages of
	// the view.
	Sender MemberID
	Seq    uint64
	Order  Order
	// Global is the position in the view's total order (Total and Safe;
	// 0 for FIFO and Causal, and for the rare total message that a view
	// change delivered without a sequence number).
	Global uint64
	// Part tells apart messages that travelled packed in one multicast
	// (several Sends of one sender and order that waited together): they
	// share View, Sender and Seq, are delivered one after the other, and
	// have Part 0, 1, 2, ... (View, Sender, Seq, Part) names a message.
	Part int
	// Query is set when the message came from Query: the value Deliver
	// returns is the reply sent to the querier.
	Query bool
	// Payload is shared with the group: read it, never modify it.
	Payload []byte
}

// Handler is the application of one member.
//
// Threading: Deliver, ViewChange and Snapshot are called on the group's
// goroutine, one at a time, in the order of the group's events. Restore
// runs on a goroutine of its own, while no Deliver or Snapshot call runs
// (a joiner delivers nothing until its state is restored), though
// ViewChange may be called meanwhile. A Handler must not call the Group's
// blocking methods (Send, Query, Leave) from its callbacks: the goroutine
// that would complete them is the one running the callback.
type Handler interface {
	// Deliver applies one message. For a message from Query, the returned
	// bytes are the reply (at most Config.PayloadBytesMax); otherwise the
	// return value is ignored.
	Deliver(m Message) []byte
	// ViewChange reports a newly installed view.
	ViewChange(v View)
	// Snapshot writes the application state, as it is after every
	// delivery so far, for a joiner. The group streams it in chunks,
	// spooling to a temporary file beyond Config.SpoolMemoryBytesMax.
	Snapshot(w io.Writer) error
	// Restore replaces the application state with what r holds. r returns
	// an error, not io.EOF, if the stream ends early or fails its
	// checksum; Restore must then return an error and the group retries
	// the join. A Restore that fails leaves the member out of the group:
	// it never delivers on top of a partial state.
	Restore(r io.Reader) error
}

// Config configures one member of one group.
type Config struct {
	// Host is this process's endpoint (shared by its groups).
	Host *Host
	// GroupID names the group; it travels as the channel of every
	// envelope, so one Host can be in several groups.
	GroupID uint64
	// Bootstrap starts a new group with this process as its only member.
	// Only the very first start of a group's first process sets it: a
	// process that restarts, and every other process, joins through
	// Contacts. (Bootstrapping twice makes two groups with one ID.)
	Bootstrap bool
	// Founders, instead of Bootstrap, start a new group with several
	// processes at once: each founder Joins with the same Founders (IDs,
	// addresses and incarnations) and with its own entry's Incarnation,
	// and the group's first view holds them all. As with Bootstrap, a
	// process founds a group once: a restarted founder joins through
	// Contacts. A founder that starts late finds the group moved on
	// without it, is told it was excluded, and rejoins as a new
	// incarnation with state transfer.
	Founders []Member
	// Contacts are members to join through (ID and address), tried in
	// turn. Required unless Bootstrap or Founders.
	Contacts []Member
	// Incarnation, if not zero, is this process's incarnation. It must be
	// higher than that of every earlier life of the process. Zero derives
	// it from the wall clock in nanoseconds (a restarted process gets a
	// higher one unless the clock went back).
	Incarnation uint64
	// TickInterval is the wall-clock length of one protocol tick; every
	// timeout of VSync is a tick count. Zero means 10 ms.
	TickInterval time.Duration
	// VSync tunes the protocol; the zero value means vsync.DefaultConfig.
	VSync vsync.Config
	// SendQueueMax bounds the Send and Query calls waiting for room in the
	// send window (or for a view change to end): the group's goroutine
	// holds at most SendQueueMax of them and its intake channel as many
	// again; beyond that Send and Query block until ctx ends. Zero means
	// 1024.
	SendQueueMax int
	// QueriesPendingMax bounds the queries this member waits for replies
	// to. Zero means 1024.
	QueriesPendingMax int
	// SpoolMemoryBytesMax is how much of a snapshot a donor keeps in memory
	// while it streams it; the rest goes to a temporary file in SpoolDir
	// (os.TempDir() when empty). Zero means 8 MiB.
	SpoolMemoryBytesMax int
	SpoolDir            string
	// JoinAttemptsMax bounds the joins (each as a new incarnation) after a
	// failed state transfer, and the rejoins after an exclusion, before
	// the member gives up. Zero means 3.
	JoinAttemptsMax int
	// AddrGossipTicks is how often a member sends the addresses it knows
	// to its view. Zero means 100 ticks.
	AddrGossipTicks int
	// PackBytesMax bounds one packed multicast: Sends of one order that
	// wait in the queue together go out as one message of the protocol
	// (one sequence number, one ordering entry, one envelope per
	// destination) up to this many bytes. Nothing waits to be packed: a
	// lone Send goes out alone. Zero means 64 KiB; 1 turns packing off.
	PackBytesMax int
}

func (c *Config) setDefaults() error {
	switch {
	case c.Host == nil:
		return fmt.Errorf("%w: Config.Host is nil", ErrConfig)
	case c.GroupID == 0:
		return fmt.Errorf("%w: Config.GroupID must not be 0", ErrConfig)
	case !c.Bootstrap && len(c.Founders) == 0 && len(c.Contacts) == 0:
		return fmt.Errorf("%w: Config.Contacts is empty and neither Bootstrap nor Founders is set", ErrConfig)
	case c.Bootstrap && len(c.Founders) > 0:
		return fmt.Errorf("%w: Config.Bootstrap and Config.Founders are exclusive", ErrConfig)
	case c.TickInterval < 0, c.SendQueueMax < 0, c.QueriesPendingMax < 0, c.SpoolMemoryBytesMax < 0,
		c.JoinAttemptsMax < 0, c.AddrGossipTicks < 0, c.PackBytesMax < 0:
		return fmt.Errorf("%w: a negative TickInterval, SendQueueMax, QueriesPendingMax, SpoolMemoryBytesMax, JoinAttemptsMax or AddrGossipTicks", ErrConfig)
	}
	for _, m := range append(slices.Clone(c.Contacts), c.Founders...) {
		if m.ID == 0 || m.Addr == "" {
			return fmt.Errorf("%w: Config.Contacts or Founders: member %d with address %q", ErrConfig, m.ID, m.Addr)
		}
		if len(m.Addr) > addrBytesMax {
			return fmt.Errorf("%w: Config.Contacts or Founders: address of member %d over %d bytes", ErrConfig, m.ID, addrBytesMax)
		}
	}
	if len(c.Founders) > 0 {
		i := slices.IndexFunc(c.Founders, func(m Member) bool { return m.ID == c.Host.cfg.ID })
		switch {
		case i < 0:
			return fmt.Errorf("%w: Config.Founders does not hold this host (%d)", ErrConfig, c.Host.cfg.ID)
		case c.Founders[i].Incarnation == 0 || c.Founders[i].Incarnation != c.Incarnation:
			return fmt.Errorf("%w: a founder's Config.Incarnation (%d) must equal its non-zero entry in Founders (%d)",
				ErrConfig, c.Incarnation, c.Founders[i].Incarnation)
		}
		ids := make([]MemberID, len(c.Founders))
		for j, m := range c.Founders {
			ids[j] = m.ID
		}
		slices.Sort(ids)
		if len(slices.Compact(ids)) != len(c.Founders) {
			return fmt.Errorf("%w: Config.Founders names a member twice", ErrConfig)
		}
	}
	if c.TickInterval == 0 {
		c.TickInterval = 10 * time.Millisecond
	}
	if c.VSync == (vsync.Config{}) {
		c.VSync = vsync.DefaultConfig()
	}
	if err := c.VSync.Validate(); err != nil {
		return fmt.Errorf("%w: Config.VSync: %w", ErrConfig, err)
	}
	if c.VSync.ChunkBytesMax < trailerBytes {
		return fmt.Errorf("%w: Config.VSync.ChunkBytesMax %d below the %d-byte snapshot trailer", ErrConfig, c.VSync.ChunkBytesMax, trailerBytes)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.SendQueueMax, 1024)
	def(&c.QueriesPendingMax, 1024)
	def(&c.SpoolMemoryBytesMax, 8<<20)
	def(&c.JoinAttemptsMax, 3)
	def(&c.AddrGossipTicks, 100)
	def(&c.PackBytesMax, 64<<10)
	// A packed payload travels as one order payload.
	c.PackBytesMax = min(c.PackBytesMax, c.VSync.Order.PayloadBytesMax)
	return nil
}

// TickIntervalOrDefault is TickInterval, or its default when zero.
func (c Config) TickIntervalOrDefault() time.Duration {
	if c.TickInterval == 0 {
		return 10 * time.Millisecond
	}
	return c.TickInterval
}

// PayloadBytesMax is the largest payload Send and Query accept, and the
// largest reply, under cfg's vsync configuration: one byte of every
// multicast payload is the group layer's.
func (c Config) PayloadBytesMax() int {
	v := c.VSync
	if v == (vsync.Config{}) {
		v = vsync.DefaultConfig()
	}
	return v.Order.PayloadBytesMax - 1
}
