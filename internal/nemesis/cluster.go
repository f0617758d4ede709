package nemesis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chorus-project/chorus/client"
)

// Errors of this package.
var (
	// ErrMember: a member could not be started, stopped or reached.
	ErrMember = errors.New("nemesis: member")
	// ErrDiverged: members' states differ, or did not become equal in time.
	ErrDiverged = errors.New("nemesis: members diverged")
	// ErrNoLeader: the cluster did not agree on a leader in time.
	ErrNoLeader = errors.New("nemesis: no leader")
)

// Limits of a cluster.
const (
	// MembersMax bounds a cluster's size: every member is a process on a
	// 2-core machine.
	MembersMax = 7
	// statusTimeout bounds one status probe of one member.
	statusTimeout = 1 * time.Second
	// stopTimeout bounds a graceful stop before SIGKILL.
	stopTimeout = 10 * time.Second
)

// Member is one `chorus server` process of a Cluster.
type Member struct {
	ID       uint64
	HTTPAddr string
	PeerAddr string
	// GroupAddr is where its group layer listens (active namespaces).
	GroupAddr string
	DataDir   string
	LogPath   string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	killing bool          // the harness stops it: its exit is expected
}

// Running says whether the member's process is running.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Cluster is a set of `chorus server` processes on loopback.
type Cluster struct {
	Members   []*Member
	bin       string
	clusterID uint64
	args      []string // extra server flags
	admin     *client.Client

	// Groups names the active namespaces whose groups must have re-formed
	// (a view of every member, at every member) before the nemesis kills
	// again: the mode survives one member down at a time, not the loss of
	// a majority of a view before it has changed (docs/fault-test.md).
	Groups []string

	mu         sync.Mutex
	unexpected []error // exits the harness did not cause
	starts     int
}

// ClusterConfig configures StartCluster.
type ClusterConfig struct {
	// Binary is the chorus binary (built with go build).
	Binary string
	// Dir holds the members' data directories and logs.
	Dir string
	// Size is the number of members (1..MembersMax).
	Size int
	// ExtraArgs are added to every member's `chorus server` flags.
	ExtraArgs []string
}

// freePort returns a loopback address with a port free right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("%w: find a free port: %w", ErrMember, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartCluster starts cfg.Size members of a new cluster (each with
// --bootstrap, which a restart ignores once the data directory holds data).
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Size < 1 || cfg.Size > MembersMax {
		return nil, fmt.Errorf("%w: cluster size %d, want 1..%d", ErrMember, cfg.Size, MembersMax)
	}
	c := &Cluster{bin: cfg.Binary, clusterID: uint64(time.Now().UnixNano()&0xffffff) + 1, args: cfg.ExtraArgs}
	var peers, httpPeers, groupPeers, endpoints []string
	for i := range cfg.Size {
		id := uint64(i + 1)
		h, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		g, err := freePort()
		if err != nil {
			return nil, err
		}
		groupPeers = append(groupPeers, fmt.Sprintf("%d=%s", id, g))
		m := &Member{ID: id, HTTPAddr: h, PeerAddr: p, GroupAddr: g,
			DataDir: filepath.Join(cfg.Dir, fmt.Sprintf("member-%d", id)),
			LogPath: filepath.Join(cfg.Dir, fmt.Sprintf("member-%d.log", id))}
		c.Members = append(c.Members, m)
		peers = append(peers, fmt.Sprintf("%d=%s", id, p))
		httpPeers = append(httpPeers, fmt.Sprintf("%d=%s", id, h))
		endpoints = append(endpoints, h)
	}
	c.args = append([]string{"--cluster-id", strconv.FormatUint(c.clusterID, 10), "--bootstrap",
		"--peers", strings.Join(peers, ","), "--http-peers", strings.Join(httpPeers, ","),
		"--group-peers", strings.Join(groupPeers, ","), "--log-level", "warn"}, c.args...)
	admin, err := client.New(client.Config{Endpoints: endpoints, Timeout: statusTimeout})
	if err != nil {
		return nil, fmt.Errorf("%w: admin client: %w", ErrMember, err)
	}
	c.admin = admin
	for _, m := range c.Members {
		if err := c.start(m); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Endpoints returns the members' HTTP addresses.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.HTTPAddr
	}
	return out
}

// Member returns member id, or nil.
func (c *Cluster) Member(id uint64) *Member {
	for _, m := range c.Members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (c *Cluster) start(m *Member) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		select {
		case <-m.done:
		default:
			return fmt.Errorf("%w: member %d is already running", ErrMember, m.ID)
		}
	}
	logf, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%w: log of member %d: %w", ErrMember, m.ID, err)
	}
	fmt.Fprintf(logf, "==== nemesis: start member %d at %s\n", m.ID, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"server", "--id", strconv.FormatUint(m.ID, 10), "--data-dir", m.DataDir,
		"--listen-http", m.HTTPAddr, "--listen-peer", m.PeerAddr, "--listen-group", m.GroupAddr}, c.args...)
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%w: start member %d: %w", ErrMember, m.ID, err)
	}
	done := make(chan struct{})
	m.cmd, m.done, m.killing = cmd, done, false
	c.mu.Lock()
	c.starts++
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		m.mu.Lock()
		expected := m.killing
		m.mu.Unlock()
		if !expected {
			c.mu.Lock()
			c.unexpected = append(c.unexpected, fmt.Errorf("member %d exited on its own: %v (log %s)", m.ID, err, m.LogPath))
			c.mu.Unlock()
		}
		close(done)
	}()
	return nil
}

// Kill sends SIGKILL to member id and waits for the process to exit.
func (c *Cluster) Kill(id uint64) error { return c.stop(id, syscall.SIGKILL) }

// Restart starts member id again from its data directory.
func (c *Cluster) Restart(id uint64) error {
	m := c.Member(id)
	if m == nil {
		return fmt.Errorf("%w: no member %d", ErrMember, id)
	}
	return c.start(m)
}

func (c *Cluster) stop(id uint64, sig syscall.Signal) error {
	m := c.Member(id)
	if m == nil {
		return fmt.Errorf("%w: no member %d", ErrMember, id)
	}
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	if cmd == nil {
		m.mu.Unlock()
		return nil
	}
	m.killing = true
	m.mu.Unlock()
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%w: signal member %d: %w", ErrMember, id, err)
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// Close stops every member (SIGTERM, then SIGKILL after a while).
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.stop(m.ID, syscall.SIGTERM)
		}()
	}
	wg.Wait()
	if c.admin != nil {
		c.admin.Close()
	}
}

// Unexpected returns the exits of members that the harness did not cause
// (a crash, a refusal to restart).
func (c *Cluster) Unexpected() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.unexpected...)
}

// Status asks member id for its status.
func (c *Cluster) Status(ctx context.Context, id uint64) (client.Status, error) {
	m := c.Member(id)
	if m == nil {
		return client.Status{}, fmt.Errorf("%w: no member %d", ErrMember, id)
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := c.admin.Status(ctx, m.HTTPAddr)
	if err != nil {
		return st, fmt.Errorf("%w: status of member %d: %w", ErrMember, id, err)
	}
	return st, nil
}

// Leader returns the member that reports itself leader (0 if none does).
func (c *Cluster) Leader(ctx context.Context) uint64 {
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		if st, err := c.Status(ctx, m.ID); err == nil && st.Role == "leader" {
			return m.ID
		}
	}
	return 0
}

// WaitHealthy polls until every member runs, answers, and all name the
// same leader, which says it leads and has applied what it committed; or
// until ctx ends.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		ok, why := c.healthy(ctx)
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: cluster not healthy: %s: %w", ErrNoLeader, last, ctx.Err())
		case <-tick.C:
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) (bool, string) {
	var leader uint64
	for _, m := range c.Members {
		if !m.Running() {
			return false, fmt.Sprintf("member %d is not running", m.ID)
		}
		st, err := c.Status(ctx, m.ID)
		if err != nil {
			return false, err.Error()
		}
		if st.Leader == 0 || (leader != 0 && st.Leader != leader) {
			return false, fmt.Sprintf("member %d names leader %d, others %d", m.ID, st.Leader, leader)
		}
		leader = st.Leader
	}
	st, err := c.Status(ctx, leader)
	if err != nil {
		return false, err.Error()
	}
	if st.Role != "leader" || st.Applied < st.Commit {
		return false, fmt.Sprintf("leader %d: role %s, applied %d of %d committed", leader, st.Role, st.Applied, st.Commit)
	}
	return true, ""
}

// WaitAnswers polls until member id answers a status request, or ctx ends.
func (c *Cluster) WaitAnswers(ctx context.Context, id uint64) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := c.Status(ctx, id)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: member %d does not answer: %w (last: %w)", ErrMember, id, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// WaitGroups waits until every member reports a view of all the members
// for each namespace of c.Groups.
func (c *Cluster) WaitGroups(ctx context.Context) error {
	if len(c.Groups) == 0 {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		formed, why := true, ""
		for _, m := range c.Members {
			st, err := c.Status(ctx, m.ID)
			if err != nil {
				formed, why = false, fmt.Sprintf("member %d: %v", m.ID, err)
				break
			}
			for _, ns := range c.Groups {
				i := slices.IndexFunc(st.Groups, func(g client.GroupStatus) bool { return g.Namespace == ns })
				if i < 0 || len(st.Groups[i].Members) != len(c.Members) {
					formed, why = false, fmt.Sprintf("member %d: group of %s not at %d members", m.ID, ns, len(c.Members))
					break
				}
			}
			if !formed {
				break
			}
		}
		if formed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: groups did not re-form: %s: %w", ErrMember, why, ctx.Err())
		case <-tick.C:
		}
	}
}

// Starts is how many processes the cluster started (restarts included).
func (c *Cluster) Starts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starts
}

// LogTail returns the last lines (at most linesMax) of member id's log.
func (c *Cluster) LogTail(id uint64, linesMax int) string {
	m := c.Member(id)
	if m == nil {
		return ""
	}
	data, err := os.ReadFile(m.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > linesMax {
		lines = lines[len(lines)-linesMax:]
	}
	return strings.Join(lines, "\n")
}

// WaitConverged polls until every member reports the same state digest at
// the same number of applied commands (GET /v1/status), which must happen
// once writes stop and the cluster is healthy. It fails at once when two
// members report different digests at the same number of commands: their
// states diverged.
func (c *Cluster) WaitConverged(ctx context.Context) (string, uint64, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no status yet"
	for {
		var digest string
		var commands uint64
		same := true
		for i, m := range c.Members {
			st, err := c.Status(ctx, m.ID)
			if err != nil {
				same, last = false, err.Error()
				break
			}
			if i == 0 {
				digest, commands = st.Digest, st.DigestCommands
				continue
			}
			if st.DigestCommands == commands && st.Digest != digest {
				return "", 0, fmt.Errorf("%w: member %d has digest %s after %d commands, member %d has %s",
					ErrDiverged, m.ID, st.Digest, commands, c.Members[0].ID, digest)
			}
			if st.DigestCommands != commands {
				same = false
				last = fmt.Sprintf("member %d at %d commands, member %d at %d", m.ID, st.DigestCommands, c.Members[0].ID, commands)
			}
		}
		if same && digest != "" {
			return digest, commands, nil
		}
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("%w: members did not reach the same state: %s: %w", ErrDiverged, last, ctx.Err())
		case <-tick.C:
		}
	}
}
