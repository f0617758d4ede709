package group

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/liveness"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/vsync"
)

// logApp is a test application whose state is the sequence of Total and
// Safe payloads it applied (restored ones included), kept whole so that a
// state transfer moves real bytes, and a digest over it.
type logApp struct {
	mu      sync.Mutex
	entries [][]byte
	views   []View
	fifo    map[MemberID][]uint64 // FIFO/causal seqs seen per sender and view, for checks
	// failRestore, when > 0, makes that many Restore calls fail.
	failRestore int
	restores    int
	changed     chan struct{}
	// onDeliver, if set, sees every message (under mu).
	onDeliver func(Message)
}

func newLogApp() *logApp {
	return &logApp{fifo: make(map[MemberID][]uint64), changed: make(chan struct{}, 1)}
}

func (a *logApp) notify() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *logApp) Deliver(m Message) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer a.notify()
	if a.onDeliver != nil {
		a.onDeliver(m)
	}
	switch {
	case m.Query:
		return []byte(fmt.Sprintf("%d", len(a.entries)))
	case m.Order == Total || m.Order == Safe:
		a.entries = append(a.entries, bytes.Clone(m.Payload))
	default:
		a.fifo[m.Sender] = append(a.fifo[m.Sender], m.Seq)
	}
	return nil
}

func (a *logApp) ViewChange(v View) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.views = append(a.views, v)
	a.notify()
}

func (a *logApp) Snapshot(w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(len(a.entries)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, e := range a.entries {
		binary.BigEndian.PutUint64(hdr[:], uint64(len(e)))
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := w.Write(e); err != nil {
			return err
		}
	}
	return nil
}

func (a *logApp) Restore(r io.Reader) error {
	a.mu.Lock()
	a.restores++
	fail := a.failRestore > 0
	if fail {
		a.failRestore--
	}
	a.mu.Unlock()
	if fail {
		return fmt.Errorf("planted restore failure")
	}
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint64(hdr[:])
	if n > 1<<24 {
		return fmt.Errorf("restore: %d entries", n)
	}
	entries := make([][]byte, 0, n)
	for range n {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		l := binary.BigEndian.Uint64(hdr[:])
		if l > 1<<20 {
			return fmt.Errorf("restore: entry of %d bytes", l)
		}
		e := make([]byte, l)
		if _, err := io.ReadFull(r, e); err != nil {
			return err
		}
		entries = append(entries, e)
	}
	// The stream must end here; a trailing error is the group's verdict.
	if _, err := r.Read(hdr[:1]); err != io.EOF {
		return fmt.Errorf("restore: stream does not end cleanly: %v", err)
	}
	a.mu.Lock()
	a.entries = entries
	a.mu.Unlock()
	return nil
}

func (a *logApp) digest() (int, [32]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := sha256.New()
	for _, e := range a.entries {
		h.Write(e)
		h.Write([]byte{0})
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return len(a.entries), d
}

func (a *logApp) snapshotEntries() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]byte(nil), a.entries...)
}

// fastConfig shortens the failure detector so that tests of crashes take
// a second or two: 5 ms ticks, a verdict after about 250 ms of silence.
func fastVSync() vsync.Config {
	c := vsync.DefaultConfig()
	c.Liveness = liveness.Config{HeartbeatTicks: 4, SuspectTicks: 30, VerifyTicks: 20, IndirectProbes: 2}
	c.ChangeTimeoutTicks = 100
	c.TransferTimeoutTicks = 200
	c.Order = order.DefaultConfig()
	return c
}

type member struct {
	host *Host
	g    *Group
	app  *logApp
}

func newHost(t testing.TB, id MemberID) *Host {
	t.Helper()
	h, err := NewHost(HostConfig{ID: id, ClusterID: 7, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func joinMember(t testing.TB, ctx context.Context, h *Host, boot bool, contacts []Member, app *logApp, tweak func(*Config)) *Group {
	t.Helper()
	cfg := Config{Host: h, GroupID: 1, Bootstrap: boot, Contacts: contacts, TickInterval: 5 * time.Millisecond, VSync: fastVSync()}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := Join(ctx, cfg, app)
	if err != nil {
		t.Fatalf("join of %d: %v", h.ID(), err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// startGroup bootstraps member 1 and joins n-1 more through it, and waits
// until every member holds a view of n.
func startGroup(t testing.TB, n int, tweak func(*Config)) []*member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms := make([]*member, n)
	for i := range n {
		h := newHost(t, MemberID(i+1))
		app := newLogApp()
		var contacts []Member
		if i > 0 {
			contacts = []Member{{ID: 1, Addr: ms[0].host.Addr()}}
		}
		ms[i] = &member{host: h, app: app, g: joinMember(t, ctx, h, i == 0, contacts, app, tweak)}
	}
	waitFor(t, 20*time.Second, func() bool {
		for _, m := range ms {
			if len(m.g.View().Members) != n {
				return false
			}
		}
		return true
	}, "every member in a view of %d", n)
	return ms
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, fmt.Sprintf(format, args...))
		}
		time.Sleep(2 * time.Millisecond)
	}
}
