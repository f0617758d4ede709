package group

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/transport"
	"github.com/chorus-project/chorus/internal/vsync"
	"github.com/chorus-project/chorus/internal/wire"
)

// MemberID names a process: the same ID in every group it is in. Zero is
// not a valid ID.
type MemberID uint64

// HostConfig configures a Host: one process's endpoint, shared by every
// group the process is in.
type HostConfig struct {
	// ID is this process. Every process of a cluster needs a distinct one.
	ID MemberID
	// ClusterID is exchanged in every transport hello: processes of
	// another cluster sharing the hosts and ports are refused.
	ClusterID uint64
	// ListenAddr is the TCP address to accept peers on ("127.0.0.1:0"
	// picks a free port; see Host.Addr).
	ListenAddr string
	// Logger receives connection events and dropped input. Nil discards.
	Logger *slog.Logger
	// InboxMax bounds, per group, the envelopes received and not yet taken
	// by the group's goroutine; more are dropped and counted (the protocol
	// retransmits). Zero means 4096.
	InboxMax int
}

// Host is one process's transport endpoint, multiplexing the groups it is
// in: every envelope carries its group's ID as its channel. A Host is safe
// for concurrent use.
type Host struct {
	cfg HostConfig
	log *slog.Logger
	tr  *transport.TCP

	mu     sync.Mutex
	groups map[uint64]*Group
	closed bool

	// droppedUnknown counts envelopes for a group this host is not in, or
	// of a kind no group layer speaks; droppedFull those refused by a full
	// inbox.
	droppedUnknown atomic.Uint64
	droppedFull    atomic.Uint64
}

// Errors of this package; test with errors.Is.
var (
	// ErrConfig: a HostConfig or Config that cannot run; the message names
	// the field.
	ErrConfig = errors.New("group: invalid config")
	// ErrClosed: the group or host was closed.
	ErrClosed = errors.New("group: closed")
	// ErrStopped: the member is no longer in the group (it left, or it was
	// excluded and could not rejoin); the error also wraps the reason.
	ErrStopped = errors.New("group: member stopped")
	// ErrStateTransfer: the state transfer to this joiner failed (the
	// stream ended early, failed its checksum, or Restore returned an
	// error) as many times as Config.JoinAttemptsMax allows. The member
	// never ran with partial state.
	ErrStateTransfer = errors.New("group: state transfer failed")
	// ErrTooLarge: a payload over Config.PayloadBytesMax.
	ErrTooLarge = errors.New("group: payload too large")
	// ErrBusy: a bound on requests waiting for an answer is reached (the
	// active mode's waiters, for one). Retry later.
	ErrBusy = errors.New("group: busy")
)

// NewHost listens on cfg.ListenAddr. Close it after every group on it.
func NewHost(cfg HostConfig) (*Host, error) {
	switch {
	case cfg.ID == 0:
		return nil, fmt.Errorf("%w: HostConfig.ID must not be 0", ErrConfig)
	case cfg.ClusterID == 0:
		return nil, fmt.Errorf("%w: HostConfig.ClusterID must not be 0", ErrConfig)
	case cfg.ListenAddr == "":
		return nil, fmt.Errorf("%w: HostConfig.ListenAddr is empty", ErrConfig)
	case cfg.InboxMax < 0:
		return nil, fmt.Errorf("%w: HostConfig.InboxMax %d < 0", ErrConfig, cfg.InboxMax)
	}
	if cfg.InboxMax == 0 {
		cfg.InboxMax = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, groups: make(map[uint64]*Group)}
	tcfg := transport.DefaultConfig(peer.ID(cfg.ID), cfg.ClusterID, cfg.ListenAddr)
	tcfg.Logger = cfg.Logger
	tr, err := transport.NewTCP(tcfg, h.receive)
	if err != nil {
		return nil, fmt.Errorf("group: host %d: %w", cfg.ID, err)
	}
	h.tr = tr
	return h, nil
}

// ID is this process's member ID.
func (h *Host) ID() MemberID { return h.cfg.ID }

// Addr is the address peers reach this host at.
func (h *Host) Addr() string { return h.tr.Addr().String() }

// Dropped reports envelopes dropped because no group on this host takes
// them (unknown) and because a group's inbox was full (full).
func (h *Host) Dropped() (unknown, full uint64) {
	return h.droppedUnknown.Load(), h.droppedFull.Load()
}

// Close closes the transport. Groups still on the host stop as if their
// process had crashed (they do not leave).
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	gs := make([]*Group, 0, len(h.groups))
	for _, g := range h.groups {
		gs = append(gs, g)
	}
	h.mu.Unlock()
	for _, g := range gs {
		g.Close()
	}
	return h.tr.Close()
}

func (h *Host) register(g *Group) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return ErrClosed
	case h.groups[g.cfg.GroupID] != nil:
		return fmt.Errorf("%w: this host is already in group %d", ErrConfig, g.cfg.GroupID)
	}
	h.groups[g.cfg.GroupID] = g
	return nil
}

func (h *Host) unregister(g *Group) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups[g.cfg.GroupID] == g {
		delete(h.groups, g.cfg.GroupID)
	}
}

// receive is the transport's handler: it routes an envelope to its group's
// inbox without blocking (a full inbox drops it; the protocols retransmit).
func (h *Host) receive(env wire.Envelope) {
	if env.Kind != vsync.WireKind && env.Kind != kindAddrs && env.Kind != kindReply {
		h.dropUnknown(env, "unknown kind")
		return
	}
	h.mu.Lock()
	g := h.groups[env.Channel]
	h.mu.Unlock()
	if g == nil {
		h.dropUnknown(env, "unknown group")
		return
	}
	select {
	case g.inbox <- env:
	default:
		h.droppedFull.Add(1)
	}
}

// dropUnknown logs the first few drops and every 1024th after, so a peer
// that floods us cannot flood the log.
func (h *Host) dropUnknown(env wire.Envelope, why string) {
	n := h.droppedUnknown.Add(1)
	if n <= 8 || n%1024 == 0 {
		h.log.Warn("group: dropped envelope", "reason", why, "from", env.From, "kind", fmt.Sprintf("%#04x", uint16(env.Kind)),
			"group", env.Channel, "dropped_total", n)
	}
}

func (h *Host) setPeer(id MemberID, addr string) { h.tr.SetPeer(peer.ID(id), addr) }

func (h *Host) send(env wire.Envelope) bool { return h.tr.Send(env) }
