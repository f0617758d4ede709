package transport

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// Limits bound the memory and the batching of a transport. Both
// implementations (TCP and MemNetwork) honour them the same way. A zero field
// takes its default from DefaultLimits.
type Limits struct {
	// FrameBytesMax bounds one encoded envelope (the frame body, not
	// counting its 4-byte length). Send refuses a larger envelope and a
	// reader drops a connection whose frame header claims more, before
	// allocating anything.
	FrameBytesMax int
	// SendQueueFramesMax and SendQueueBytesMax bound each peer's send queue
	// (bytes include frame headers). A Send that would pass either is
	// refused and counted in DroppedFrames.
	SendQueueFramesMax int
	SendQueueBytesMax  int
	// BatchBytesMax bounds one write: the writer takes queued frames up to
	// this many bytes into one buffer and writes it with one call. A single
	// frame larger than this is written alone.
	BatchBytesMax int
}

// DefaultLimits are sized for a LAN cluster of a handful of members.
//
//   - FrameBytesMax 16 MiB: the largest messages are snapshot chunks during
//     state transfer and batched Paxos accepts; their producers cut them
//     well below this (around 1 MiB), so it is headroom, not a target. It
//     costs nothing up front: a reader grows its buffer as bytes actually
//     arrive, so a peer that claims 16 MiB and sends 10 bytes holds 64 KiB.
//   - SendQueueBytesMax 32 MiB: twice FrameBytesMax, so a maximal frame can
//     wait behind a backlog; when zero with a larger FrameBytesMax it
//     defaults to twice that. With 7 members the worst case is 6 x 32 MiB while all peers
//     are down, which is the price of riding out a restart without losses.
//   - SendQueueFramesMax 16384: a few hundred milliseconds of small messages
//     at the rates a core produces; older messages would be stale anyway.
//   - BatchBytesMax 256 KiB: one write call carries hundreds of small frames
//     (the syscall cost is amortised) yet takes well under a millisecond on
//     a 10 Gb/s link, so a backlog does not hold a keep-alive long.
func DefaultLimits() Limits {
	return Limits{
		FrameBytesMax:      16 << 20,
		SendQueueFramesMax: 16384,
		SendQueueBytesMax:  32 << 20,
		BatchBytesMax:      256 << 10,
	}
}

// frameBytesLimit is the largest FrameBytesMax accepted: the length prefix is
// 32 bits, and a gigabyte message is a design error, not a configuration.
const frameBytesLimit = 1 << 30

// withDefaults fills zero fields from DefaultLimits and checks the result.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits()
	if l.FrameBytesMax == 0 {
		l.FrameBytesMax = d.FrameBytesMax
	}
	if l.SendQueueFramesMax == 0 {
		l.SendQueueFramesMax = d.SendQueueFramesMax
	}
	if l.SendQueueBytesMax == 0 {
		l.SendQueueBytesMax = max(d.SendQueueBytesMax, 2*l.FrameBytesMax)
	}
	if l.BatchBytesMax == 0 {
		l.BatchBytesMax = min(d.BatchBytesMax, l.SendQueueBytesMax)
	}
	switch {
	case l.FrameBytesMax < wire.EnvelopeHeaderBytesMax || l.FrameBytesMax > frameBytesLimit:
		return l, fmt.Errorf("%w: FrameBytesMax %d not in [%d, %d]", ErrConfig, l.FrameBytesMax, wire.EnvelopeHeaderBytesMax, frameBytesLimit)
	case l.SendQueueFramesMax < 1:
		return l, fmt.Errorf("%w: SendQueueFramesMax %d < 1", ErrConfig, l.SendQueueFramesMax)
	case l.SendQueueBytesMax < frameHeaderBytes+l.FrameBytesMax:
		return l, fmt.Errorf("%w: SendQueueBytesMax %d cannot hold one frame of FrameBytesMax %d", ErrConfig, l.SendQueueBytesMax, l.FrameBytesMax)
	case l.BatchBytesMax < 1 || l.BatchBytesMax > l.SendQueueBytesMax:
		return l, fmt.Errorf("%w: BatchBytesMax %d not in [1, SendQueueBytesMax %d]", ErrConfig, l.BatchBytesMax, l.SendQueueBytesMax)
	}
	return l, nil
}

// Config configures a TCP transport. Zero durations and limits take their
// defaults (DefaultConfig lists them with reasons); ID, ClusterID and
// ListenAddr are required.
type Config struct {
	// ID is this member. Envelopes we send must carry it as From, and
	// inbound hellos must name it as their destination.
	ID peer.ID
	// ClusterID is exchanged in the hello, so that two clusters sharing
	// hosts and ports by mistake refuse each other instead of mixing
	// messages. Zero is refused: it is what an unset field looks like.
	ClusterID uint64
	// ListenAddr is the TCP address to accept connections on
	// ("127.0.0.1:0" picks a free port; see TCP.Addr).
	ListenAddr string
	// Logger receives connection events and the reason for every refused
	// or dropped connection. Nil discards them.
	Logger *slog.Logger

	Limits

	// InboundConnsMax bounds the inbound connections served at once; more
	// are closed at accept. Each costs two goroutines and a read buffer.
	InboundConnsMax int
	// DialTimeout bounds one TCP connect; HandshakeTimeout bounds the hello
	// exchange on either side.
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	// DialBackoffMin and DialBackoffMax bound the pause between failed
	// dials to a peer, which doubles after each failure. Each pause is drawn
	// in [d/2, d] from a generator seeded with JitterSeed and both member
	// IDs, so members that lost the same peer do not redial in lockstep,
	// and a given seed always draws the same pauses.
	DialBackoffMin time.Duration
	DialBackoffMax time.Duration
	JitterSeed     uint64
	// WriteTimeout bounds one batch write (and one keep-alive): a peer that
	// stops reading cannot hold the writer longer. It must exceed the time
	// to move BatchBytesMax, or FrameBytesMax, on the slowest link used.
	WriteTimeout time.Duration
	// KeepAliveInterval is how long a connection may stay silent before a
	// keep-alive frame is sent on it. ReadIdleTimeout is how long a reader
	// waits for any byte before it declares the peer dead and closes.
	// The two meet across processes (one side's keep-alives feed the
	// other's idle timer), so every member must run with the same values,
	// or at least with every ReadIdleTimeout above twice every
	// KeepAliveInterval in the cluster.
	KeepAliveInterval time.Duration
	ReadIdleTimeout   time.Duration
}

// DefaultConfig returns a Config for member id of cluster, listening on addr,
// with the LAN defaults:
//
//   - InboundConnsMax 256: far above any group size (members connect to
//     members; clients use the HTTP API). It bounds goroutines, file
//     descriptors and the memory peers can make us hold by claiming large
//     frames they do not send: 256 x 256 KiB (frameGrowBytes) = 64 MiB.
//   - DialTimeout 1 s, HandshakeTimeout 1 s: a LAN connect or hello takes
//     well under a millisecond; a second means the peer is not there.
//   - DialBackoffMin 50 ms, DialBackoffMax 2 s: a restarted peer is reached
//     again within about 2 s, and a peer that is down for good costs one
//     dial every 1-2 s.
//   - WriteTimeout 5 s: a 16 MiB frame needs 3.2 MB/s to finish in time,
//     far below any LAN.
//   - KeepAliveInterval 1 s, ReadIdleTimeout 5 s: five keep-alives may be
//     missed (a GC pause, a busy scheduler) before a connection is judged
//     dead. The protocols above have their own, faster failure detectors;
//     this one only reclaims half-open connections.
func DefaultConfig(id peer.ID, clusterID uint64, listenAddr string) Config {
	return Config{
		ID:                id,
		ClusterID:         clusterID,
		ListenAddr:        listenAddr,
		Limits:            DefaultLimits(),
		InboundConnsMax:   256,
		DialTimeout:       time.Second,
		HandshakeTimeout:  time.Second,
		DialBackoffMin:    50 * time.Millisecond,
		DialBackoffMax:    2 * time.Second,
		WriteTimeout:      5 * time.Second,
		KeepAliveInterval: time.Second,
		ReadIdleTimeout:   5 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig and validates the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig(c.ID, c.ClusterID, c.ListenAddr)
	lim, err := c.Limits.withDefaults()
	if err != nil {
		return c, err
	}
	c.Limits = lim
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDefault(&c.DialTimeout, d.DialTimeout)
	setDefault(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDefault(&c.DialBackoffMin, d.DialBackoffMin)
	setDefault(&c.DialBackoffMax, max(d.DialBackoffMax, c.DialBackoffMin))
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.KeepAliveInterval, d.KeepAliveInterval)
	setDefault(&c.ReadIdleTimeout, max(d.ReadIdleTimeout, 2*c.KeepAliveInterval))
	if c.InboundConnsMax == 0 {
		c.InboundConnsMax = d.InboundConnsMax
	}
	switch {
	case c.ID == peer.None:
		return c, fmt.Errorf("%w: ID is required (0 is reserved)", ErrConfig)
	case c.ClusterID == 0:
		return c, fmt.Errorf("%w: ClusterID is required (0 is what an unset field looks like)", ErrConfig)
	case c.ListenAddr == "":
		return c, fmt.Errorf("%w: ListenAddr is required", ErrConfig)
	case c.InboundConnsMax < 1:
		return c, fmt.Errorf("%w: InboundConnsMax %d < 1", ErrConfig, c.InboundConnsMax)
	case c.DialTimeout < 0, c.HandshakeTimeout < 0, c.DialBackoffMin < 0, c.WriteTimeout < 0,
		c.KeepAliveInterval < 0:
		return c, fmt.Errorf("%w: negative duration", ErrConfig)
	case c.DialBackoffMax < c.DialBackoffMin:
		return c, fmt.Errorf("%w: DialBackoffMax %v < DialBackoffMin %v", ErrConfig, c.DialBackoffMax, c.DialBackoffMin)
	case c.ReadIdleTimeout < 2*c.KeepAliveInterval:
		// One late keep-alive must not kill a healthy connection.
		return c, fmt.Errorf("%w: ReadIdleTimeout %v < 2 x KeepAliveInterval %v", ErrConfig, c.ReadIdleTimeout, c.KeepAliveInterval)
	}
	return c, nil
}
