// Package active is the `active` replication mode (DESIGN.md section 2):
// active replication by totally ordered multicast. A namespace is one
// process group (package group); every command, write or read, is
// multicast in Safe order (total and uniform) and executed by every member on its own copy of
// the namespace (a kv.Machine), so all copies pass through the same states.
// The member that received the client's request answers with its own
// result.
//
// # Guarantees
//
//   - Every member applies the same commands in the same order: identical
//     state at each point of the order (the group's total order).
//   - Writes and reads are linearizable: both are ordered, and a member
//     answers once it has executed the command at its place in the order.
//     They travel in Safe order (total and uniform): a member executes a
//     command only once every member of the view holds it. With Total
//     alone, the sequencer could execute and acknowledge a command that
//     dies with it, unseen by the others: an acknowledged write lost, or a
//     read that saw a state no survivor has. The real-process fault test
//     found exactly that with Total (a linearizability anomaly after the
//     sequencer was killed).
//   - In memory: a namespace survives while one member of the group's
//     current view lives; a joiner (a restarted server) gets the state by
//     state transfer. Nothing is on disk, and a majority of each view must
//     stay up for views to change (primary partition).
//   - A command whose member is excluded before the command is ordered may
//     be lost; the caller's ctx ends and its retry (same kv Session) is
//     applied at most once.
//
// # Payload format
//
// Each multicast payload is
//
//	size     field
//	1        1 a command (kv Apply), 2 a read (kv Query)
//	uvarint  origin: the member whose caller waits for the answer
//	uvarint  request number at the origin
//	rest     the kv request (kv.EncodeRequest)
//
// The kv index of a command is the member's kv AppliedIndex plus one:
// commands are numbered by their place in the total order, which the
// state transfer carries along with the state.
package active

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"

	"github.com/chorus-project/chorus/group"
	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/internal/wire"
)

// ErrConfig: a Config that cannot run.
var ErrConfig = errors.New("active: invalid config")

const (
	payloadWrite byte = 1
	payloadRead  byte = 2
)

// Config configures one member's share of one active namespace.
type Config struct {
	// Group is the group membership to run (Host, founders or contacts,
	// tuning); GroupID is set from Spec.Name when zero.
	Group group.Config
	// Spec is the namespace: it is created in every member's kv.Machine at
	// index 1, before any command.
	Spec kv.NamespaceSpec
	// KV bounds the namespace's keys, values and transactions.
	KV kv.Config
	// WaitersMax bounds the requests of this member waiting for their
	// place in the order. Zero means 4096.
	WaitersMax int
}

// GroupID derives a namespace's group ID from its name (FNV-1a, 64 bits):
// every member computes the same one.
func GroupID(namespace string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("chorus/active/"))
	h.Write([]byte(namespace))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// Backend is one member of an active namespace.
type Backend struct {
	cfg  Config
	self group.MemberID
	g    *group.Group
	app  *app
}

// app is the group.Handler: the namespace's kv.Machine and the callers
// waiting for their commands.
type app struct {
	self group.MemberID

	mu      sync.Mutex
	m       *kv.Machine
	next    uint64
	waiters map[uint64]chan []byte
}

// Start joins (or founds) the namespace's group and returns once this
// member holds the namespace's state.
func Start(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Group.Host == nil {
		return nil, fmt.Errorf("%w: Config.Group.Host is nil", ErrConfig)
	}
	if cfg.WaitersMax == 0 {
		cfg.WaitersMax = 4096
	}
	if cfg.WaitersMax < 0 {
		return nil, fmt.Errorf("%w: WaitersMax %d < 0", ErrConfig, cfg.WaitersMax)
	}
	if cfg.Group.GroupID == 0 {
		cfg.Group.GroupID = GroupID(cfg.Spec.Name)
	}
	m, err := newMachine(cfg)
	if err != nil {
		return nil, err
	}
	a := &app{self: cfg.Group.Host.ID(), m: m, waiters: make(map[uint64]chan []byte)}
	g, err := group.Join(ctx, cfg.Group, a)
	if err != nil {
		return nil, fmt.Errorf("active: namespace %s: %w", cfg.Spec.Name, err)
	}
	return &Backend{cfg: cfg, self: a.self, g: g, app: a}, nil
}

// newMachine makes the namespace's empty state: the namespace created at
// index 1, the same at every member.
func newMachine(cfg Config) (*kv.Machine, error) {
	m, err := kv.New(cfg.KV)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	resp, err := kv.DecodeResponse(m.Apply(1, kv.EncodeRequest(kv.Request{Kind: kv.KindCreateNamespace, Spec: cfg.Spec})))
	if err != nil || resp.Code != kv.CodeOK {
		return nil, fmt.Errorf("%w: namespace %q: %v %s", ErrConfig, cfg.Spec.Name, err, resp.Message)
	}
	return m, nil
}

// Write runs a command at its place in the total order.
func (b *Backend) Write(ctx context.Context, req kv.Request) (kv.Response, error) {
	return b.run(ctx, payloadWrite, req)
}

// Read runs a read-only request at its place in the total order
// (linearizable).
func (b *Backend) Read(ctx context.Context, req kv.Request) (kv.Response, error) {
	return b.run(ctx, payloadRead, req)
}

func (b *Backend) run(ctx context.Context, kind byte, req kv.Request) (kv.Response, error) {
	req.Namespace = b.cfg.Spec.Name
	id, ch, err := b.app.wait(b.cfg.WaitersMax)
	if err != nil {
		return kv.Response{}, err
	}
	defer b.app.forget(id)
	w := wire.NewBuffer(nil)
	w.Uint8(kind)
	w.Uvarint(uint64(b.self))
	w.Uvarint(id)
	p := append(w.Bytes(), kv.EncodeRequest(req)...)
	if err := b.g.Send(ctx, p, group.Safe); err != nil {
		return kv.Response{}, fmt.Errorf("active: namespace %s: %w", b.cfg.Spec.Name, err)
	}
	select {
	case out := <-ch:
		return kv.DecodeResponse(out)
	case <-ctx.Done():
		return kv.Response{}, ctx.Err()
	case <-b.g.Done():
		return kv.Response{}, fmt.Errorf("active: namespace %s: %w", b.cfg.Spec.Name, b.g.Err())
	}
}

// View is the namespace group's current view.
func (b *Backend) View() group.View { return b.g.View() }

// Digest returns this member's state digest and applied index.
func (b *Backend) Digest() ([32]byte, uint64) {
	b.app.mu.Lock()
	defer b.app.mu.Unlock()
	return b.app.m.Digest(), b.app.m.AppliedIndex()
}

// Close leaves the group (bounded by a short timeout) and stops.
func (b *Backend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Group.TickIntervalOrDefault()*500)
	defer cancel()
	if err := b.g.Leave(ctx); err != nil {
		b.g.Close()
	}
	return nil
}

func (a *app) wait(waitersMax int) (uint64, chan []byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.waiters) >= waitersMax {
		return 0, nil, fmt.Errorf("active: %w: %d requests waiting", group.ErrBusy, len(a.waiters))
	}
	a.next++
	ch := make(chan []byte, 1)
	a.waiters[a.next] = ch
	return a.next, ch, nil
}

func (a *app) forget(id uint64) {
	a.mu.Lock()
	delete(a.waiters, id)
	a.mu.Unlock()
}

// Deliver executes one command or read, at every member, in the total
// order; the origin's waiter gets the answer.
func (a *app) Deliver(m group.Message) []byte {
	r := wire.NewReader(m.Payload)
	kind := r.Uint8()
	origin := group.MemberID(r.Uvarint())
	id := r.Uvarint()
	if r.Err() != nil || (kind != payloadWrite && kind != payloadRead) {
		return nil // every member skips the same malformed payload
	}
	req := m.Payload[len(m.Payload)-r.Remaining():]
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []byte
	if kind == payloadWrite {
		out = a.m.Apply(a.m.AppliedIndex()+1, req)
	} else {
		out = a.m.Query(req)
	}
	if origin == a.self {
		if ch := a.waiters[id]; ch != nil {
			ch <- out
			delete(a.waiters, id)
		}
	}
	return nil
}

func (a *app) ViewChange(group.View) {}

func (a *app) Snapshot(w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Snapshot(w)
}

func (a *app) Restore(r io.Reader) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Restore(r)
}
