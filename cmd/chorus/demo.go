package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/smr"
)

// The demo runs the layers built so far: three smr members (Multi-Paxos on
// a WAL with real fsyncs) on loopback, with a small key-value state machine.
// It writes, kills the leader, keeps writing under the new one, restarts the
// old leader from its data directory and shows that every member ends with
// the same state. The key-value server of DESIGN.md grows out of this.

func newDemoCmd() *cobra.Command {
	var (
		writes int
		keep   bool
		dir    string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a three-member replicated cluster on loopback and walk through a failover",
		Long: "demo starts three chorus members on 127.0.0.1 with their data in a temporary directory,\n" +
			"replicates writes through the Multi-Paxos log, kills the leader, keeps writing under the new\n" +
			"leader, restarts the old one and checks that all three hold the same state.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if writes < 1 || writes > 100000 {
				return usageError{fmt.Errorf("--writes must be between 1 and 100000, got %d", writes)}
			}
			if dir == "" {
				d, err := os.MkdirTemp("", "chorus-demo-")
				if err != nil {
					return err
				}
				dir = d
				if !keep {
					defer os.RemoveAll(dir)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			return runDemo(ctx, cmd.OutOrStdout(), dir, writes)
		},
	}
	cmd.Flags().IntVar(&writes, "writes", 200, "writes in each phase of the tour")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the data directory after the demo")
	cmd.Flags().StringVar(&dir, "dir", "", "data directory (default: a new temporary directory)")
	return cmd
}

type demoCluster struct {
	out     io.Writer
	dir     string
	peers   []smr.Peer
	members map[smr.MemberID]*smr.Member
	kvs     map[smr.MemberID]*demoKV
	client  smr.RequestID
	target  smr.MemberID
}

func runDemo(ctx context.Context, out io.Writer, dir string, writes int) error {
	addrs, err := freeLoopbackAddrs(3)
	if err != nil {
		return err
	}
	c := &demoCluster{out: out, dir: dir, members: map[smr.MemberID]*smr.Member{}, kvs: map[smr.MemberID]*demoKV{},
		client: smr.NewRequestID(), target: 1}
	for i, a := range addrs {
		c.peers = append(c.peers, smr.Peer{ID: smr.MemberID(i + 1), Addr: a})
	}
	defer c.closeAll()

	fmt.Fprintf(out, "chorus demo: three members on loopback, data in %s\n\n", dir)
	for _, p := range c.peers {
		if err := c.start(ctx, p.ID, true); err != nil {
			return err
		}
		fmt.Fprintf(out, "  member %d listening on %s\n", p.ID, p.Addr)
	}
	leader, err := c.waitLeader(ctx, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n1. member %d was elected leader (phase 1 of Multi-Paxos, once for all slots)\n", leader)

	start := time.Now()
	if err := c.writeKeys(ctx, 0, writes); err != nil {
		return err
	}
	fmt.Fprintf(out, "2. %d writes committed on a majority's disk (fsync before every acknowledgement) in %v\n",
		writes, time.Since(start).Round(time.Millisecond))
	v, err := c.read(ctx, "key-00000")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   linearizable read of key-00000 at the leader (read index, one quorum round): %q\n", v)

	fmt.Fprintf(out, "3. killing the leader, member %d\n", leader)
	if err := c.members[leader].Close(); err != nil {
		return fmt.Errorf("close member %d: %w", leader, err)
	}
	delete(c.members, leader)
	start = time.Now()
	newLeader, err := c.waitLeader(ctx, leader)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   member %d took over after %v\n", newLeader, time.Since(start).Round(time.Millisecond))
	c.target = newLeader
	if err := c.writeKeys(ctx, writes, 2*writes); err != nil {
		return err
	}
	fmt.Fprintf(out, "4. %d more writes committed by the two survivors\n", writes)

	fmt.Fprintf(out, "5. restarting member %d from its data directory\n", leader)
	if err := c.start(ctx, leader, false); err != nil {
		return err
	}
	if err := c.waitCaughtUp(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "   it recovered its log from disk and caught up from the leader\n\n")
	c.printStatus()
	return c.compareStates()
}

func (c *demoCluster) start(ctx context.Context, id smr.MemberID, bootstrap bool) error {
	cfg := smr.DefaultConfig(0xc0de, id, c.peers, filepath.Join(c.dir, fmt.Sprintf("member-%d", id)))
	cfg.Bootstrap = bootstrap
	cfg.TickInterval = 20 * time.Millisecond
	cfg.SnapshotEntries = 100
	cfg.Logger = slog.New(slog.DiscardHandler)
	kv := &demoKV{data: map[string]string{}}
	m, err := smr.Start(ctx, cfg, kv)
	if err != nil {
		return fmt.Errorf("start member %d: %w", id, err)
	}
	c.members[id], c.kvs[id] = m, kv
	return nil
}

func (c *demoCluster) closeAll() {
	for _, id := range slices.Sorted(maps.Keys(c.members)) {
		c.members[id].Close()
	}
}

// waitLeader polls the members' status until one other than not leads.
func (c *demoCluster) waitLeader(ctx context.Context, not smr.MemberID) (smr.MemberID, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, id := range slices.Sorted(maps.Keys(c.members)) {
			if st := c.members[id].Status(); st.Role == "leader" && id != not {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no leader elected: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// propose sends one command, following leader hints and retrying with the
// same request id, so a retried write applies once.
func (c *demoCluster) propose(ctx context.Context, cmd []byte) error {
	c.client.Seq++
	for {
		m, ok := c.members[c.target]
		if !ok {
			c.target = slices.Min(slices.Collect(maps.Keys(c.members)))
			continue
		}
		_, err := m.ProposeRequest(ctx, c.client, cmd)
		var nl *smr.NotLeaderError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &nl) && nl.Leader != 0 && c.members[nl.Leader] != nil:
			c.target = nl.Leader
		case errors.Is(err, smr.ErrNotLeader), errors.Is(err, smr.ErrProposalLost), errors.Is(err, smr.ErrBusy):
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		default:
			return fmt.Errorf("write: %w", err)
		}
	}
}

func (c *demoCluster) writeKeys(ctx context.Context, from, to int) error {
	for i := from; i < to; i++ {
		if err := c.propose(ctx, fmt.Appendf(nil, "key-%05d=value-%d", i, i)); err != nil {
			return err
		}
	}
	return nil
}

func (c *demoCluster) read(ctx context.Context, key string) (string, error) {
	v, err := c.members[c.target].Read(ctx, []byte(key))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return string(v), nil
}

// waitCaughtUp waits until every member has applied the leader's commit.
func (c *demoCluster) waitCaughtUp(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		commit := c.members[c.target].Status().Commit
		behind := false
		for _, m := range c.members {
			behind = behind || m.Status().Applied < commit
		}
		if !behind {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("members did not catch up: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (c *demoCluster) printStatus() {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tCOMMIT\tAPPLIED\tSNAPSHOT\tKEYS\tSTATE DIGEST")
	for _, id := range slices.Sorted(maps.Keys(c.members)) {
		st := c.members[id].Status()
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%s\n", id, st.Role, st.Commit, st.Applied, st.SnapshotSlot,
			c.kvs[id].len(), c.kvs[id].digest())
	}
	tw.Flush()
}

// compareStates checks that every member's state machine holds the same
// data, by digest, once all have caught up.
func (c *demoCluster) compareStates() error {
	var want string
	for _, id := range slices.Sorted(maps.Keys(c.members)) {
		d := c.kvs[id].digest()
		if want == "" {
			want = d
		} else if d != want {
			return fmt.Errorf("member %d's state digest %s differs from %s", id, d, want)
		}
	}
	fmt.Fprintf(c.out, "\nall %d members hold the same state (digest %s). Done.\n", len(c.members), want)
	return nil
}

// demoKV is the demo's state machine: a map of strings. Commands are
// "key=value"; a query is a key. The member calls Apply, Query, Snapshot and
// Restore from one goroutine; len and digest are read by the demo only once
// the member has caught up, under mu.
type demoKV struct {
	mu   sync.Mutex
	data map[string]string
}

func (kv *demoKV) Apply(cmd []byte) []byte {
	k, v, ok := bytes.Cut(cmd, []byte("="))
	if !ok {
		return []byte("error: command is not key=value")
	}
	kv.mu.Lock()
	kv.data[string(k)] = string(v)
	kv.mu.Unlock()
	return nil
}

func (kv *demoKV) Query(q []byte) []byte {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return []byte(kv.data[string(q)])
}

func (kv *demoKV) Snapshot(w io.Writer) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(kv.data)) {
		if _, err := fmt.Fprintf(w, "%s=%s\n", k, kv.data[k]); err != nil {
			return err
		}
	}
	return nil
}

func (kv *demoKV) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	data := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("demo snapshot: bad line %q", line)
		}
		data[k] = v
	}
	kv.mu.Lock()
	kv.data = data
	kv.mu.Unlock()
	return nil
}

func (kv *demoKV) len() int {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return len(kv.data)
}

func (kv *demoKV) digest() string {
	h := sha256.New()
	if err := kv.Snapshot(h); err != nil {
		return "error: " + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func freeLoopbackAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		addrs = append(addrs, ln.Addr().String())
		defer ln.Close()
	}
	return addrs, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
