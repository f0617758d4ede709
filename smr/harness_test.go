package smr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/wire"
)

// recorder is a StateMachine that logs every command it applies, so a test
// can check that each acknowledged command was applied exactly once, in the
// same order, on every member. Its log is its state (and its snapshot).
type recorder struct {
	mu  sync.Mutex // the test reads the log from its own goroutine
	log []string
}

func (r *recorder) Apply(cmd []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, string(cmd))
	return []byte(strconv.Itoa(len(r.log)))
}

func (r *recorder) Query(q []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return []byte(strconv.Itoa(len(r.log)))
}

func (r *recorder) Snapshot(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := wire.NewBuffer(nil)
	b.Uvarint(uint64(len(r.log)))
	for _, s := range r.log {
		b.String(s)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (r *recorder) Restore(rd io.Reader) error {
	p, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	w := wire.NewReader(p)
	n := w.Count(len(p), 1)
	log := make([]string, 0, n)
	for range n {
		log = append(log, w.String(len(p)))
	}
	if err := w.Done(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = log
	return nil
}

func (r *recorder) snapshotLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// checkExactlyOnce reports the first violation of: every member applied the
// same sequence; no command appears twice in it; every acknowledged command
// appears in it.
func checkExactlyOnce(logs map[MemberID][]string, acked []string) error {
	var ref []string
	var refID MemberID
	for id, l := range logs {
		if ref == nil || id < refID {
			ref, refID = l, id
		}
	}
	for id, l := range logs {
		if !slices.Equal(l, ref) {
			i := 0
			for i < min(len(l), len(ref)) && l[i] == ref[i] {
				i++
			}
			return fmt.Errorf("member %d applied %d commands, member %d applied %d; first difference at position %d",
				id, len(l), refID, len(ref), i)
		}
	}
	seen := make(map[string]int, len(ref))
	for i, c := range ref {
		if j, ok := seen[c]; ok {
			return fmt.Errorf("command %q applied twice, at positions %d and %d", c, j, i)
		}
		seen[c] = i
	}
	for _, c := range acked {
		if _, ok := seen[c]; !ok {
			return fmt.Errorf("acknowledged command %q was never applied", c)
		}
	}
	return nil
}

// freeAddrs returns n loopback addresses whose ports are free right now.
// The ports are drawn below Linux's ephemeral range (32768-60999 by
// default): a port the kernel hands out for ":0" can be taken again by any
// outbound connection (our own members' dialers included) while a member is
// down, and its restart would then fail to listen.
func freeAddrs(t testing.TB, n int) []string {
	var addrs []string
	for tries := 0; len(addrs) < n; tries++ {
		if tries > 1000 {
			t.Fatal("no free port found below the ephemeral range")
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		addrs = append(addrs, ln.Addr().String())
		defer ln.Close()
	}
	return addrs
}

// cluster runs members over TCP on loopback with data in real directories.
type cluster struct {
	t     testing.TB
	peers []Peer
	dirs  map[MemberID]string
	tune  func(*Config)

	mu      sync.Mutex
	members map[MemberID]*Member
	sms     map[MemberID]*recorder
	hint    MemberID
}

func newCluster(t testing.TB, n int, dir string, tune func(*Config)) *cluster {
	c := &cluster{
		t: t, tune: tune, dirs: map[MemberID]string{},
		members: map[MemberID]*Member{}, sms: map[MemberID]*recorder{}, hint: 1,
	}
	for i, addr := range freeAddrs(t, n) {
		id := MemberID(i + 1)
		c.peers = append(c.peers, Peer{ID: id, Addr: addr})
		c.dirs[id] = filepath.Join(dir, fmt.Sprintf("m%d", id))
	}
	for _, p := range c.peers {
		c.start(p.ID, true)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for id, m := range c.members {
			if err := m.Close(); err != nil {
				t.Errorf("close member %d: %v", id, err)
			}
		}
	})
	return c
}

func (c *cluster) config(id MemberID) Config {
	cfg := DefaultConfig(42, id, c.peers, c.dirs[id])
	cfg.TickInterval = 10 * time.Millisecond
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

// start starts (or restarts, on its directory) member id with a fresh
// recorder.
func (c *cluster) start(id MemberID, bootstrap bool) {
	c.t.Helper()
	cfg := c.config(id)
	cfg.Bootstrap = bootstrap
	sm := &recorder{}
	m, err := Start(context.Background(), cfg, sm)
	if err != nil {
		c.t.Fatalf("start member %d: %v", id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[id], c.sms[id] = m, sm
}

// kill closes member id.
func (c *cluster) kill(id MemberID) {
	c.t.Helper()
	c.mu.Lock()
	m := c.members[id]
	delete(c.members, id)
	c.mu.Unlock()
	if err := m.Close(); err != nil {
		c.t.Fatalf("close member %d: %v", id, err)
	}
}

func (c *cluster) member(id MemberID) *Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[id]
}

func (c *cluster) next(id MemberID) MemberID { return id%MemberID(len(c.peers)) + 1 }

// leader polls until a running member leads, or the deadline passes.
func (c *cluster) leader(ctx context.Context) (MemberID, error) {
	for {
		c.mu.Lock()
		for id, m := range c.members {
			if m.Status().Role == "leader" {
				c.mu.Unlock()
				return id, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// propose is a client: it tries the member it believes leads, follows
// ErrNotLeader hints, moves on from stopped members and retries under the
// same RequestID after every error that leaves the outcome unknown.
func (c *cluster) propose(ctx context.Context, id RequestID, cmd []byte) ([]byte, error) {
	c.mu.Lock()
	target := c.hint
	c.mu.Unlock()
	for ctx.Err() == nil {
		m := c.member(target)
		if m == nil {
			target = c.next(target)
			continue
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		res, err := m.ProposeRequest(actx, id, cmd)
		cancel()
		var nl *NotLeaderError
		switch {
		case err == nil:
			c.mu.Lock()
			c.hint = target
			c.mu.Unlock()
			return res, nil
		case errors.As(err, &nl):
			if nl.Leader != 0 && nl.Leader != target && c.member(nl.Leader) != nil {
				target = nl.Leader
				continue
			}
			target = c.next(target)
		case errors.Is(err, ErrStopped):
			target = c.next(target)
			continue
		case errors.Is(err, ErrProposalLost), errors.Is(err, ErrBusy), errors.Is(err, context.DeadlineExceeded):
		default:
			return nil, err
		}
		// No leader known yet, or back-pressure: give the cluster a tick.
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil, ctx.Err()
}

// logs returns every running member's applied commands.
func (c *cluster) logs() map[MemberID][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[MemberID][]string{}
	for id := range c.members {
		out[id] = c.sms[id].snapshotLog()
	}
	return out
}

// waitConverged polls until every running member applied n commands.
func (c *cluster) waitConverged(ctx context.Context, n int) error {
	for {
		done := true
		for _, l := range c.logs() {
			if len(l) < n {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			lens := map[MemberID]int{}
			for id, l := range c.logs() {
				lens[id] = len(l)
			}
			return fmt.Errorf("members did not converge on %d commands: %v: %w", n, lens, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
