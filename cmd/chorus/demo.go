package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/client"
)

// The demo is the README's main job: three `chorus server` processes (this
// very binary, re-executed) on loopback with their data in a temporary
// directory. Without --tour it prints how to reach them and serves until
// interrupted; with --tour it walks through a scripted story: writes and a
// transaction, the leader killed with SIGKILL, service continuing, the
// member restarted and caught up, and the same state on every member.

func newDemoCmd() *cobra.Command {
	var (
		tour     bool
		keep     bool
		dir      string
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a three-member chorus cluster on loopback (and, with --tour, a guided failover)",
		Long: "demo starts three chorus servers on 127.0.0.1 with their data in a temporary directory and\n" +
			"prints how to reach them. With --tour it writes, runs a transaction, kills the leader with\n" +
			"SIGKILL, keeps writing, restarts the killed member and checks that every member holds the\n" +
			"same state, then exits.",
		Example: "  chorus demo --tour\n  chorus demo            # serve until Ctrl-C",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration < 0 {
				return usageError{fmt.Errorf("--duration must not be negative, got %v", duration)}
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: find this binary to start the servers: %w", err)
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
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, demoOptions{out: cmd.OutOrStdout(), exe: exe, dir: dir, tour: tour, duration: duration})
		},
	}
	cmd.Flags().BoolVar(&tour, "tour", false, "walk through writes, a transaction, a killed leader, a restart and the final check, then exit")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the data directory afterwards")
	cmd.Flags().StringVar(&dir, "dir", "", "data directory (default: a new temporary directory)")
	cmd.Flags().DurationVar(&duration, "duration", 0, "without --tour: stop after this long (0: run until interrupted)")
	return cmd
}

type demoOptions struct {
	out      io.Writer
	exe      string   // the chorus binary to run as `server`
	env      []string // extra environment of the servers
	dir      string
	tour     bool
	duration time.Duration
}

type demoMember struct {
	id                 uint64
	peerAddr, httpAddr string
	groupAddr          string
	dataDir            string
	cmd                *exec.Cmd
	exited             chan struct{}
}

type demoCluster struct {
	opts    demoOptions
	members []*demoMember
	client  *client.Client
}

func runDemo(ctx context.Context, opts demoOptions) error {
	addrs, err := freeLoopbackAddrs(9)
	if err != nil {
		return err
	}
	c := &demoCluster{opts: opts}
	for i := range 3 {
		c.members = append(c.members, &demoMember{id: uint64(i + 1), peerAddr: addrs[i], httpAddr: addrs[3+i], groupAddr: addrs[6+i],
			dataDir: filepath.Join(opts.dir, fmt.Sprintf("member-%d", i+1))})
	}
	defer c.stopAll()
	for _, m := range c.members {
		if err := c.start(m); err != nil {
			return err
		}
	}
	var eps []string
	for _, m := range c.members {
		eps = append(eps, "http://"+m.httpAddr)
	}
	c.client, err = client.New(client.Config{Endpoints: eps, Timeout: 20 * time.Second})
	if err != nil {
		return err
	}
	defer c.client.Close()
	leader, err := c.waitLeader(ctx, 0)
	if err != nil {
		return err
	}
	c.say("chorus: a three-member cluster is up on loopback (data in %s).", opts.dir)
	for _, m := range c.members {
		c.say("  member %d: http://%s   log: %s", m.id, m.httpAddr, filepath.Join(m.dataDir, "server.log"))
	}
	c.say("  member %d was elected leader.", leader)
	if !opts.tour {
		endpoints := strings.Join(eps, ",")
		c.say("\nTry, in another terminal:")
		c.say("  export CHORUS_ENDPOINTS=%s", endpoints)
		c.say("  go run ./cmd/chorus ns create demo --mode paxos     # or --mode active")
		c.say("  go run ./cmd/chorus kv put -n demo greeting hello")
		c.say("  go run ./cmd/chorus kv get -n demo greeting")
		c.say("  go run ./cmd/chorus status")
		c.say("  curl -s http://%s/v1/status", c.members[0].httpAddr)
		c.say("\nPress Ctrl-C to stop (or run `chorus demo --tour` for a guided failover).")
		if opts.duration > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, opts.duration)
			defer cancel()
		}
		<-ctx.Done()
		c.say("\nstopping the cluster.")
		return nil
	}
	return c.tour(ctx, leader)
}

func (c *demoCluster) say(format string, args ...any) { fmt.Fprintf(c.opts.out, format+"\n", args...) }

// start runs member m as a child process; its output goes to server.log
// in its data directory.
func (c *demoCluster) start(m *demoMember) error {
	if err := os.MkdirAll(m.dataDir, 0o755); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(m.dataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var peers, https, groups []string
	for _, o := range c.members {
		peers = append(peers, fmt.Sprintf("%d=%s", o.id, o.peerAddr))
		https = append(https, fmt.Sprintf("%d=%s", o.id, o.httpAddr))
		groups = append(groups, fmt.Sprintf("%d=%s", o.id, o.groupAddr))
	}
	args := []string{"server", "--id", fmt.Sprint(m.id), "--cluster-id", "4242", "--bootstrap",
		"--data-dir", filepath.Join(m.dataDir, "data"),
		"--listen-peer", m.peerAddr, "--listen-http", m.httpAddr, "--listen-group", m.groupAddr,
		"--peers", strings.Join(peers, ","), "--http-peers", strings.Join(https, ","), "--group-peers", strings.Join(groups, ","),
		"--tick-interval", "20ms", "--log-level", "warn"}
	m.cmd = exec.Command(c.opts.exe, args...)
	m.cmd.Env = append(os.Environ(), c.opts.env...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("demo: start member %d: %w", m.id, err)
	}
	m.exited = make(chan struct{})
	go func() {
		m.cmd.Wait()
		logFile.Close()
		close(m.exited)
	}()
	return nil
}

// kill sends SIGKILL: no shutdown, no flush, as a crash.
func (c *demoCluster) kill(m *demoMember) {
	m.cmd.Process.Kill()
	<-m.exited
}

func (c *demoCluster) stopAll() {
	for _, m := range c.members {
		if m.cmd != nil && m.exited != nil {
			m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, m := range c.members {
		if m.exited == nil {
			continue
		}
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
}

func (c *demoCluster) member(id uint64) *demoMember { return c.members[id-1] }

// waitLeader polls the members until one of them, other than not, leads.
func (c *demoCluster) waitLeader(ctx context.Context, not uint64) (uint64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range c.members {
			if m.id == not {
				continue
			}
			st, err := c.client.Status(ctx, "http://"+m.httpAddr)
			if err == nil && st.Role == "leader" && st.Leader == m.id {
				return m.id, nil
			}
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
		for _, m := range c.members {
			select {
			case <-m.exited:
				if m.id != not {
					return 0, fmt.Errorf("demo: member %d exited; see %s", m.id, filepath.Join(m.dataDir, "server.log"))
				}
			default:
			}
		}
	}
	return 0, errors.New("demo: no leader within 30 s")
}

func (c *demoCluster) tour(ctx context.Context, leader uint64) error {
	step := func(format string, args ...any) { c.say("\n== "+format, args...) }
	step("1. a namespace in each of two replication modes")
	for _, spec := range []client.NamespaceSpec{{Name: "accounts", Mode: "paxos"}, {Name: "presence", Mode: "active"}} {
		if _, err := c.client.CreateNamespace(ctx, spec); err != nil {
			return fmt.Errorf("demo: create namespace %s: %w", spec.Name, err)
		}
		c.say("created %q (mode %s)", spec.Name, spec.Mode)
	}
	step("2. writes, and a transaction that moves 30 from alice to bob only if alice still holds 100")
	for _, kv := range [][2]string{{"alice", "100"}, {"bob", "50"}} {
		r, err := c.client.Put(ctx, "accounts", []byte(kv[0]), []byte(kv[1]))
		if err != nil {
			return fmt.Errorf("demo: put %s: %w", kv[0], err)
		}
		c.say("put accounts/%s = %s   (log index %d)", kv[0], kv[1], r.Index)
	}
	txn := client.Txn{
		Compares: []client.Compare{{Key: []byte("alice"), Target: client.TargetValue, Result: client.ResultEqual, Value: []byte("100")}},
		Then:     []client.Op{{Type: client.OpPut, Key: []byte("alice"), Value: []byte("70")}, {Type: client.OpPut, Key: []byte("bob"), Value: []byte("80")}},
	}
	tr, err := c.client.Txn(ctx, "accounts", txn)
	if err != nil {
		return fmt.Errorf("demo: txn: %w", err)
	}
	c.say("txn succeeded=%v: alice 70, bob 80, applied atomically at index %d", tr.Succeeded, tr.Index)
	if _, err := c.client.Txn(ctx, "accounts", txn); !errors.Is(err, client.ErrCompareFailed) {
		return fmt.Errorf("demo: the same txn again should fail its compare, got %v", err)
	}
	c.say("the same txn again: its compare fails (alice is 70 now), nothing changes")
	if _, err := c.client.Put(ctx, "presence", []byte("member-1"), []byte("online")); err != nil {
		return fmt.Errorf("demo: put presence: %w", err)
	}
	if err := c.printViews(ctx, "presence"); err != nil {
		return err
	}

	step("3. kill the leader, member %d, with SIGKILL", leader)
	dead := c.member(leader)
	c.kill(dead)
	start := time.Now()
	next, err := c.waitLeader(ctx, leader)
	if err != nil {
		return err
	}
	c.say("member %d took over after %v", next, time.Since(start).Round(time.Millisecond))

	step("4. service continues on the two survivors")
	for i := range 5 {
		k := fmt.Sprintf("carol-%d", i)
		if _, err := c.client.Put(ctx, "accounts", []byte(k), []byte("20")); err != nil {
			return fmt.Errorf("demo: put %s with member %d down: %w", k, leader, err)
		}
	}
	c.say("5 more writes committed with member %d down", leader)
	if err := c.waitView(ctx, "presence", 2); err != nil {
		return err
	}
	if _, err := c.client.Put(ctx, "presence", []byte("member-2"), []byte("online")); err != nil {
		return fmt.Errorf("demo: put presence after the crash: %w", err)
	}

	step("5. restart member %d from its data directory", leader)
	if err := c.start(dead); err != nil {
		return err
	}
	if err := c.waitCaughtUp(ctx); err != nil {
		return err
	}
	if err := c.waitView(ctx, "presence", 3); err != nil {
		return err
	}

	step("6. every member holds the same state")
	return c.compareStates(ctx)
}

// printViews prints the group view of an active namespace as each member
// sees it.
func (c *demoCluster) printViews(ctx context.Context, ns string) error {
	vl, err := c.client.Views(ctx)
	if err != nil {
		return fmt.Errorf("demo: views: %w", err)
	}
	for _, v := range vl.Views {
		if v.Namespace == ns {
			c.say("group of %q: view %d, members %v (rank order)", ns, v.ID, v.Members)
		}
	}
	return nil
}

// waitView waits until the group of ns has a view of n members, and
// reports it: the view change of a crash or a join.
func (c *demoCluster) waitView(ctx context.Context, ns string, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		vl, err := c.client.Views(ctx)
		if err == nil {
			for _, v := range vl.Views {
				if v.Namespace == ns && len(v.Members) == n {
					c.say("view change reported: group of %q installed view %d with members %v", ns, v.ID, v.Members)
					return nil
				}
			}
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("demo: the group of %q did not reach a view of %d members within 30 s", ns, n)
}

// waitCaughtUp waits until every member applied the leader's commit index.
func (c *demoCluster) waitCaughtUp(ctx context.Context) error {
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		var applied []uint64
		var commit uint64
		for _, m := range c.members {
			st, err := c.client.Status(ctx, "http://"+m.httpAddr)
			if err != nil {
				applied = nil
				break
			}
			applied = append(applied, st.Applied)
			commit = max(commit, st.Commit)
		}
		if len(applied) == len(c.members) && commit > 0 && minOf(applied) >= commit {
			c.say("all members applied through index %d (caught up in %v)", commit, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("demo: the restarted member did not catch up within 30 s")
}

func minOf(xs []uint64) uint64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = min(m, x)
	}
	return m
}

// compareStates compares the state digests the members report: of the
// paxos data at equal applied indexes, and of each active namespace.
func (c *demoCluster) compareStates(ctx context.Context) error {
	var want string
	wantGroup := map[string]string{}
	for _, m := range c.members {
		st, err := c.client.Status(ctx, "http://"+m.httpAddr)
		if err != nil {
			return fmt.Errorf("demo: status of member %d: %w", m.id, err)
		}
		c.say("member %d: paxos data after %d commands, digest %s", m.id, st.DigestCommands, short(st.Digest))
		if want == "" {
			want = st.Digest
		} else if st.Digest != want {
			return fmt.Errorf("demo: member %d's state digest %s differs from %s", m.id, st.Digest, want)
		}
		for _, g := range st.Groups {
			c.say("          group of %q: view %d, rank %d, %d commands, digest %s", g.Namespace, g.ViewID, g.Rank, g.Applied, short(g.Digest))
			if w, ok := wantGroup[g.Namespace]; !ok {
				wantGroup[g.Namespace] = g.Digest
			} else if w != g.Digest {
				return fmt.Errorf("demo: member %d's copy of %q has digest %s, another member's %s", m.id, g.Namespace, g.Digest, w)
			}
		}
	}
	c.say("\nall %d members hold the same state. Done.", len(c.members))
	return nil
}

func short(d string) string {
	if len(d) > 16 {
		return d[:16]
	}
	return d
}

func freeLoopbackAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("demo: find a free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
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
