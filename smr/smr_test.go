package smr

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/node"
	"github.com/chorus-project/chorus/internal/vfs"
)

// TestFailover runs three members over TCP with real files, with several
// clients proposing all the time. The leader is closed mid-stream, the
// clients carry on under a new leader (following ErrNotLeader hints and
// retrying under the same RequestID), the old leader restarts on its data
// directory and catches up (by log or by snapshot: SnapshotEntries is small,
// so the others compact past it). At the end every member applied the same
// sequence, with each acknowledged command exactly once.
func TestFailover(t *testing.T) {
	perPhase := 150
	if testing.Short() {
		perPhase = 40
	}
	c := newCluster(t, 3, t.TempDir(), func(cfg *Config) { cfg.SnapshotEntries = 64 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	stop := make(chan struct{})
	const writers = 4
	for w := range writers {
		wg.Go(func() {
			client := rand.Uint64()
			for seq := uint64(1); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				cmd := fmt.Sprintf("w%d-%d", w, seq)
				if _, err := c.propose(ctx, RequestID{Client: client, Seq: seq}, []byte(cmd)); err != nil {
					t.Errorf("writer %d: %s: %v", w, cmd, err)
					return
				}
				mu.Lock()
				acked = append(acked, cmd)
				mu.Unlock()
			}
		})
	}
	waitAcks := func(n int) {
		t.Helper()
		for ackCount() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("only %d of %d proposals acknowledged: %v", ackCount(), n, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}

	waitAcks(perPhase)
	old, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(old)
	t.Logf("closed leader %d after %d acks", old, ackCount())
	waitAcks(2 * perPhase)
	nl, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if nl == old {
		t.Fatalf("member %d leads while closed", old)
	}
	c.start(old, false)
	t.Logf("new leader %d; restarted %d after %d acks", nl, old, ackCount())
	waitAcks(3 * perPhase)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every acknowledged command is committed, so once the leader applied
	// n commands every member must reach n.
	lead, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.member(lead).Read(ctx, nil)
	if err != nil {
		t.Fatalf("read at leader %d: %v", lead, err)
	}
	n, _ := strconv.Atoi(string(res))
	if err := c.waitConverged(ctx, n); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if err := checkExactlyOnce(c.logs(), acked); err != nil {
		t.Fatal(err)
	}
	st := c.member(old).Status()
	t.Logf("%d acknowledged, %d applied; restarted member %d: applied %d, snapshot slot %d",
		len(acked), n, old, st.Applied, st.SnapshotSlot)
}

// TestCheckExactlyOnce shows that the checker of TestFailover catches each
// violation it claims to: divergent members, a duplicate, a lost command.
func TestCheckExactlyOnce(t *testing.T) {
	ok := map[MemberID][]string{1: {"a", "b", "c"}, 2: {"a", "b", "c"}}
	if err := checkExactlyOnce(ok, []string{"a", "c"}); err != nil {
		t.Fatalf("clean history refused: %v", err)
	}
	for name, tc := range map[string]struct {
		logs  map[MemberID][]string
		acked []string
	}{
		"divergent": {map[MemberID][]string{1: {"a", "b"}, 2: {"a", "c"}}, nil},
		"shorter":   {map[MemberID][]string{1: {"a", "b"}, 2: {"a"}}, nil},
		"duplicate": {map[MemberID][]string{1: {"a", "b", "a"}, 2: {"a", "b", "a"}}, nil},
		"lost":      {map[MemberID][]string{1: {"a"}, 2: {"a"}}, []string{"a", "b"}},
	} {
		if err := checkExactlyOnce(tc.logs, tc.acked); err == nil {
			t.Errorf("%s: planted violation not caught", name)
		}
	}
}

// TestRetryAppliesOnce proposes the same RequestID twice on a real member:
// the command is applied once and both calls get the first result. With the
// deduplication switched off (a planted bug) the same check fails, which
// shows that it tests something.
func TestRetryAppliesOnce(t *testing.T) {
	for _, planted := range []bool{false, true} {
		t.Run(fmt.Sprintf("planted=%v", planted), func(t *testing.T) {
			c := newCluster(t, 1, t.TempDir(), func(cfg *Config) { cfg.plantNoDedup = planted })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := NewRequestID()
			r1, err := c.propose(ctx, id, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			r2, err := c.propose(ctx, id, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			err = checkExactlyOnce(c.logs(), []string{"x"})
			if planted {
				if err == nil || string(r1) == string(r2) {
					t.Fatalf("planted missing dedup not caught: results %q %q, check %v", r1, r2, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(r1) != "1" || string(r2) != "1" {
				t.Fatalf("results %q and %q, want the first result twice", r1, r2)
			}
			// An older request of the same client is refused, not applied.
			if _, err := c.propose(ctx, RequestID{Client: id.Client, Seq: 2}, []byte("y")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.propose(ctx, id, []byte("x")); !errors.Is(err, ErrStaleRequest) {
				t.Fatalf("stale request: %v, want ErrStaleRequest", err)
			}
		})
	}
}

// TestRefusals checks each start-up refusal and that it says what it is.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	addrs := freeAddrs(t, 3)
	three := []Peer{{1, addrs[0]}, {2, addrs[1]}, {3, addrs[2]}}
	base := func(d string) Config {
		cfg := DefaultConfig(9, 1, three, filepath.Join(dir, d))
		cfg.Bootstrap = true
		cfg.TickInterval = 10 * time.Millisecond
		return cfg
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  func() Config
		want error
	}{
		{"quorums do not intersect", func() Config { c := base("q"); c.Q1, c.Q2 = 1, 2; return c }, ErrInvalidConfig},
		{"duplicate id", func() Config {
			c := base("dup")
			c.Members = []Peer{{1, addrs[0]}, {1, addrs[1]}}
			return c
		}, ErrInvalidConfig},
		{"duplicate address", func() Config {
			c := base("dupaddr")
			c.Members = []Peer{{1, addrs[0]}, {2, addrs[0]}}
			return c
		}, ErrInvalidConfig},
		{"self not listed", func() Config { c := base("self"); c.ID = 4; return c }, ErrInvalidConfig},
		{"bootstrap and join", func() Config { c := base("bj"); c.Join = true; return c }, ErrInvalidConfig},
		{"heartbeat not below election", func() Config { c := base("hb"); c.HeartbeatTicks = 10; return c }, ErrInvalidConfig},
		{"empty dir, neither bootstrap nor join", func() Config { c := base("empty"); c.Bootstrap = false; return c }, ErrNoData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Start(ctx, tc.cfg(), &recorder{})
			if err == nil {
				m.Close()
				t.Fatal("started")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}

	t.Run("directory of another cluster", func(t *testing.T) {
		cfg := base("other")
		cfg.Members = three[:1]
		m, err := Start(ctx, cfg, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		cfg.ClusterID = 10
		m, err = Start(ctx, cfg, &recorder{})
		if err == nil {
			m.Close()
			t.Fatal("started on another cluster's directory")
		}
		if !errors.Is(err, ErrIdentity) || !errors.Is(err, node.ErrIdentity) {
			t.Fatalf("error %v, want ErrIdentity wrapping node.ErrIdentity", err)
		}
		t.Log(err)
	})
	t.Run("empty dir refusal leaves no trace", func(t *testing.T) {
		cfg := base("notrace")
		cfg.Bootstrap = false
		for range 2 {
			if _, err := Start(ctx, cfg, &recorder{}); !errors.Is(err, ErrNoData) {
				t.Fatalf("error %v, want ErrNoData", err)
			}
		}
	})
}

// TestDiskFailureStopsMember makes the WAL's fsync fail on a single member:
// the member stops, the proposal in flight and every later call fail with
// ErrStopped wrapping the disk's error, and Close reports it.
func TestDiskFailureStopsMember(t *testing.T) {
	mem := vfs.NewMem()
	addr := freeAddrs(t, 1)[0]
	cfg := DefaultConfig(5, 1, []Peer{{1, addr}}, "/data/m1")
	cfg.Bootstrap = true
	cfg.TickInterval = 5 * time.Millisecond
	cfg.fs = mem
	m, err := Start(context.Background(), cfg, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if _, err := m.Propose(ctx, []byte("before")); err == nil {
			break
		} else if !errors.Is(err, ErrNotLeader) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("never led")
		case <-time.After(5 * time.Millisecond):
		}
	}
	mem.InjectFault(vfs.Fault{Op: vfs.OpSync, Path: ".wal"})
	_, err = m.Propose(ctx, []byte("during"))
	if !errors.Is(err, ErrStopped) || !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("proposal during the fault: %v, want ErrStopped wrapping the injected fault", err)
	}
	if _, err := m.Read(ctx, nil); !errors.Is(err, ErrStopped) {
		t.Fatalf("read after the fault: %v, want ErrStopped", err)
	}
	if err := m.Close(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Close: %v, want the injected fault", err)
	}
}

// TestAddRemoveMember grows a cluster from three to four members (the new
// one joins with an empty directory and catches up), proposes more, then
// removes one; all remaining members end with the same history.
func TestAddRemoveMember(t *testing.T) {
	dir := t.TempDir()
	c := newCluster(t, 3, dir, func(cfg *Config) { cfg.SnapshotEntries = 16 })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var acked []string
	proposeN := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			cmd := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := c.propose(ctx, NewRequestID(), []byte(cmd)); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, cmd)
		}
	}
	proposeN("a", 40)

	// Member 4 joins: the leader logs its address, then the change.
	addr := freeAddrs(t, 1)[0]
	c.peers = append(c.peers, Peer{ID: 4, Addr: addr})
	c.dirs[4] = filepath.Join(dir, "m4")
	lead, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.config(4)
	cfg.Join = true
	sm := &recorder{}
	m4, err := Start(ctx, cfg, sm)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.members[4], c.sms[4] = m4, sm
	c.mu.Unlock()
	if err := c.member(lead).AddMember(ctx, 4, addr); err != nil {
		t.Fatalf("add member 4: %v", err)
	}
	proposeN("b", 20)
	if got := c.member(lead).Status().Members; len(got) != 4 {
		t.Fatalf("members after add: %v", got)
	}
	if err := c.waitConverged(ctx, len(acked)); err != nil {
		t.Fatal(err)
	}

	// Remove a follower, then check everyone left.
	victim := c.next(lead)
	if err := c.member(lead).RemoveMember(ctx, victim); err != nil {
		t.Fatalf("remove member %d: %v", victim, err)
	}
	c.kill(victim)
	proposeN("c", 20)
	if got := c.member(lead).Status().Members; len(got) != 3 {
		t.Fatalf("members after remove: %v", got)
	}
	if err := c.waitConverged(ctx, len(acked)); err != nil {
		t.Fatal(err)
	}
	if err := checkExactlyOnce(c.logs(), acked); err != nil {
		t.Fatal(err)
	}
}

// TestLargeCommands proposes many large commands at once. A command over the
// entry limit is refused with ErrTooLarge. The ones under it all commit:
// the shell bounds the entry bytes it takes into one Ready, so one WAL
// append stays within the WAL's batch limit. Without that bound (planted:
// InputBytesMax unlimited) the leader's append is refused and the member
// stops, which the same test reports.
func TestLargeCommands(t *testing.T) {
	// Many large commands at once make Readys bigger than one WAL batch;
	// node.Disk splits them (tested in internal/node), so all must commit.
	c := newCluster(t, 1, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.propose(ctx, NewRequestID(), []byte("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.member(1).Propose(ctx, make([]byte, 1<<20)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1 MiB command: %v, want ErrTooLarge", err)
	}
	const proposers, each = 32, 4
	errs := make(chan error, proposers*each)
	var wg sync.WaitGroup
	for range proposers {
		wg.Go(func() {
			for range each {
				_, err := c.member(1).Propose(ctx, make([]byte, 256<<10))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestChunkedSnapshotCatchUp: a follower is down while the others apply
// more than 20 MiB of state and compact their logs, so when it comes back
// the slots it lacks are gone and it must catch up from the leader's
// snapshot, which (over smr's former 15 MiB one-message limit) travels in
// 1 MiB chunks. It ends with the same commands as everyone.
func TestChunkedSnapshotCatchUp(t *testing.T) {
	const (
		commands     = 48
		commandBytes = 512 << 10 // 24 MiB of state in all
		snapEvery    = 45        // one snapshot, of about 21.5 MiB
	)
	c := newCluster(t, 3, t.TempDir(), func(cfg *Config) { cfg.SnapshotEntries = snapEvery })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	lead, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	down := c.next(lead)
	c.kill(down)
	client := rand.Uint64()
	var acked []string
	pad := strings.Repeat("x", commandBytes)
	for seq := uint64(1); seq <= commands; seq++ {
		cmd := fmt.Sprintf("c%d-%s", seq, pad)
		if _, err := c.propose(ctx, RequestID{Client: client, Seq: seq}, []byte(cmd)); err != nil {
			t.Fatalf("command %d: %v", seq, err)
		}
		acked = append(acked, cmd)
	}
	lead, err = c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.member(lead).Status(); st.SnapshotSlot < snapEvery {
		t.Fatalf("leader %d did not compact: %+v", lead, st)
	}
	c.start(down, false)
	if err := c.waitConverged(ctx, commands); err != nil {
		t.Fatal(err)
	}
	if err := checkExactlyOnce(c.logs(), acked); err != nil {
		t.Fatal(err)
	}
	st := c.member(down).Status()
	if st.SnapshotSlot == 0 {
		t.Fatalf("member %d caught up without a snapshot: %+v", down, st)
	}
	files, err := filepath.Glob(filepath.Join(c.dirs[down], "snap", "*.snap"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no snapshot file on member %d: %v", down, err)
	}
	fi, err := os.Stat(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 20<<20 {
		t.Fatalf("the snapshot installed is %d bytes, want over 20 MiB", fi.Size())
	}
	t.Logf("member %d caught up: applied %d, snapshot slot %d of %.1f MiB", down, st.Applied, st.SnapshotSlot, float64(fi.Size())/(1<<20))
}
