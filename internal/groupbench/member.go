package groupbench

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/chorus-project/chorus/group"
	"github.com/chorus-project/chorus/internal/vsync"
)

// Fixed identities of the benchmark group.
const (
	clusterID = 0xbe7c4
	groupID   = 1
)

// MemberConfig configures one member process.
type MemberConfig struct {
	ID         group.MemberID
	Bootstrap  bool
	Contacts   []group.Member
	Tuning     Tuning
	CPUProfile string // file to write a CPU profile of the whole run to
	LogLevel   slog.Level
}

// Args is the command line of `chorus bench group-member` for c; the
// inverse of ParseMemberArgs.
func (c MemberConfig) Args() []string {
	a := []string{"--id", strconv.FormatUint(uint64(c.ID), 10)}
	if c.Bootstrap {
		a = append(a, "--bootstrap")
	}
	for _, m := range c.Contacts {
		a = append(a, "--contact", fmt.Sprintf("%d=%s", m.ID, m.Addr))
	}
	if c.Tuning.Tick != 0 {
		a = append(a, "--tick", c.Tuning.Tick.String())
	}
	if c.Tuning.SendWindowMax != 0 {
		a = append(a, "--send-window", strconv.Itoa(c.Tuning.SendWindowMax))
	}
	if c.Tuning.StabilityTicks != 0 {
		a = append(a, "--stability-ticks", strconv.Itoa(c.Tuning.StabilityTicks))
	}
	if c.CPUProfile != "" {
		a = append(a, "--cpuprofile", c.CPUProfile)
	}
	return append(a, "--log-level", c.LogLevel.String())
}

// ParseMemberArgs parses the command line Args produces.
func ParseMemberArgs(args []string) (MemberConfig, error) {
	var c MemberConfig
	fs := flag.NewFlagSet("group-member", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	id := fs.Uint64("id", 0, "member ID")
	fs.BoolVar(&c.Bootstrap, "bootstrap", false, "start the group")
	fs.Func("contact", "id=host:port of a member to join through", func(s string) error {
		m, err := parseContact(s)
		c.Contacts = append(c.Contacts, m)
		return err
	})
	fs.DurationVar(&c.Tuning.Tick, "tick", 0, "group tick interval")
	fs.IntVar(&c.Tuning.SendWindowMax, "send-window", 0, "per-sender send window")
	fs.IntVar(&c.Tuning.StabilityTicks, "stability-ticks", 0, "stability gossip interval in ticks")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile here")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelWarn, "log level")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", ErrConfig, fs.Args())
	}
	c.ID = group.MemberID(*id)
	return c, c.validate()
}

func (c MemberConfig) validate() error {
	switch {
	case c.ID == 0:
		return fmt.Errorf("%w: member --id must be > 0", ErrConfig)
	case c.Bootstrap == (len(c.Contacts) > 0):
		return fmt.Errorf("%w: a member needs exactly one of --bootstrap and --contact", ErrConfig)
	case c.Tuning.Tick < 0 || c.Tuning.SendWindowMax < 0 || c.Tuning.StabilityTicks < 0:
		return fmt.Errorf("%w: negative --tick, --send-window or --stability-ticks", ErrConfig)
	}
	return nil
}

func (c MemberConfig) groupConfig(h *group.Host) group.Config {
	gc := group.Config{Host: h, GroupID: groupID, Bootstrap: c.Bootstrap, Contacts: c.Contacts, TickInterval: c.Tuning.Tick}
	if c.Tuning.SendWindowMax != 0 || c.Tuning.StabilityTicks != 0 {
		gc.VSync = defaultVSync()
		if c.Tuning.SendWindowMax != 0 {
			gc.VSync.Order.SendWindowMax = c.Tuning.SendWindowMax
		}
		if c.Tuning.StabilityTicks != 0 {
			gc.VSync.Order.StabilityTicks = c.Tuning.StabilityTicks
		}
	}
	return gc
}

// RunMember is one member process: it joins the benchmark group on
// 127.0.0.1, reports "joined" (with its address) and "formed" (once a view
// of MembersCount holds it) on out, then runs each case that in sends it,
// one at a time, reporting a "result" line for each. It returns when in
// ends (the coordinator closed it or died) or ctx ends.
func RunMember(ctx context.Context, c MemberConfig, in io.Reader, out io.Writer, logw io.Writer) (err error) {
	if err := c.validate(); err != nil {
		return err
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return fmt.Errorf("groupbench: cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("groupbench: cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("groupbench: cpu profile: %w", cerr)
			}
		}()
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: c.LogLevel})).With("member", c.ID)
	m := &member{id: c.ID, out: json.NewEncoder(out), log: log}
	host, err := group.NewHost(group.HostConfig{ID: c.ID, ClusterID: clusterID, ListenAddr: "127.0.0.1:0", Logger: log, InboxMax: 1 << 16})
	if err != nil {
		return fmt.Errorf("groupbench: member %d: %w", c.ID, err)
	}
	defer host.Close()
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	g, err := group.Join(jctx, c.groupConfig(host), m)
	cancel()
	if err != nil {
		return fmt.Errorf("groupbench: member %d: join: %w", c.ID, err)
	}
	defer g.Close()
	m.g = g
	if err := m.emit(event{Ev: "joined", ID: uint64(c.ID), Addr: host.Addr()}); err != nil {
		return err
	}

	cmds := make(chan command)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			var cmd command
			if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
				readErr <- fmt.Errorf("%w: bad command %q: %w", ErrConfig, sc.Text(), err)
				return
			}
			select {
			case cmds <- cmd:
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err() // nil: the coordinator closed our stdin
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-g.Done():
			return fmt.Errorf("groupbench: member %d stopped: %w", c.ID, g.Err())
		case err := <-readErr:
			return err
		case cmd := <-cmds:
			if cmd.Op != "case" {
				return fmt.Errorf("%w: unknown op %q", ErrConfig, cmd.Op)
			}
			ev, err := m.runCase(ctx, cmd)
			if err != nil {
				_ = m.emit(event{Ev: "error", Case: cmd.Case, Err: err.Error()})
				return err
			}
			if err := m.emit(ev); err != nil {
				return err
			}
		}
	}
}

// member is the Handler and the case runner of one process.
type member struct {
	id  group.MemberID
	g   *group.Group
	log *slog.Logger

	outMu sync.Mutex
	out   *json.Encoder

	mu     sync.Mutex
	rank   int
	size   int
	formed bool
	views  int
	cur    *caseState // nil between cases
}

// caseState is what Deliver updates during a case (under member.mu).
type caseState struct {
	id             uint32
	rank           int
	windowStartNs  int64 // wall clock, Unix ns
	windowEndNs    int64
	delivered      uint64
	early          uint64
	own            Hist
	samples        [][2]int64
	sendersPending int
	doneFrom       [MembersCount]bool
	allDone        chan struct{}
}

func (m *member) emit(ev event) error {
	m.outMu.Lock()
	defer m.outMu.Unlock()
	if err := m.out.Encode(ev); err != nil {
		return fmt.Errorf("groupbench: member %d: write to coordinator: %w", m.id, err)
	}
	return nil
}

// Deliver counts a delivery. It runs on the group's goroutine for every
// message, so it does little: one clock read, a header parse, a lock.
func (m *member) Deliver(msg group.Message) []byte {
	nowNs := time.Now().UnixNano()
	h, ok := parseHeader(msg.Payload)
	if !ok {
		m.log.Error("groupbench: short payload", "bytes", len(msg.Payload))
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.cur
	if cs == nil || h.caseID != cs.id {
		if cs == nil || h.caseID > cs.id {
			// The coordinator starts cases well in the future, so this
			// means a member's clock of commands lagged: counted, reported.
			if cs != nil {
				cs.early++
			}
		}
		return nil // a leftover of an earlier case
	}
	switch h.kind {
	case kindDone:
		if h.rank < MembersCount && !cs.doneFrom[h.rank] {
			cs.doneFrom[h.rank] = true
			cs.sendersPending--
			if cs.sendersPending == 0 {
				close(cs.allDone)
			}
		}
	case kindData:
		if nowNs >= cs.windowStartNs && nowNs < cs.windowEndNs {
			cs.delivered++
			if h.rank == cs.rank {
				// send -> this sender's own delivery: the JGroups side's
				// definition (one process, one clock).
				cs.own.Record(nowNs - h.sentUnixNs)
			}
		}
		if h.seq%sampleStride == 0 && h.sentUnixNs >= cs.windowStartNs && h.sentUnixNs < cs.windowEndNs &&
			len(cs.samples) < samplesPerCaseMax {
			cs.samples = append(cs.samples, [2]int64{int64(h.rank)<<48 | int64(h.seq), nowNs - h.sentUnixNs})
		}
	}
	return nil
}

// ViewChange reports the first view of MembersCount and counts the rest.
func (m *member) ViewChange(v group.View) {
	m.mu.Lock()
	m.rank, m.size = v.Rank, len(v.Members)
	m.views++
	announce := !m.formed && len(v.Members) == MembersCount
	if announce {
		m.formed = true
	}
	m.mu.Unlock()
	if announce {
		_ = m.emit(event{Ev: "formed", ID: uint64(m.id), Rank: v.Rank})
	}
}

// Snapshot: the benchmark has no application state.
func (m *member) Snapshot(io.Writer) error { return nil }

// Restore reads the (empty) state.
func (m *member) Restore(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// runCase sends (if this member is a sender of the case) until the window
// ends, then a Done marker in the same order, and waits until it has
// delivered every sender's Done: by then it has delivered every data
// message of the case (FIFO per sender holds in every order).
func (m *member) runCase(ctx context.Context, cmd command) (event, error) {
	o, err := ParseOrder(cmd.Order)
	if err != nil {
		return event{}, err
	}
	if cmd.SizeBytes < SizeBytesMin || cmd.SizeBytes > SizeBytesMax || cmd.DurationNs <= 0 || cmd.WarmupNs < 0 {
		return event{}, fmt.Errorf("%w: case %+v", ErrConfig, cmd)
	}
	senders := 1
	if cmd.AllSend {
		senders = MembersCount
	}
	m.mu.Lock()
	if m.size != MembersCount {
		m.mu.Unlock()
		return event{}, fmt.Errorf("%w: member %d is in a view of %d, not %d", ErrMember, m.id, m.size, MembersCount)
	}
	rank, views0 := m.rank, m.views
	cs := &caseState{id: cmd.Case, rank: rank, windowStartNs: cmd.StartUnixNs + cmd.WarmupNs,
		sendersPending: senders, allDone: make(chan struct{})}
	cs.windowEndNs = cs.windowStartNs + cmd.DurationNs
	m.cur = cs
	m.mu.Unlock()

	var sent uint64
	if rank < senders {
		if err := sleepUntil(ctx, cmd.StartUnixNs); err != nil {
			return event{}, err
		}
		sent, err = m.send(ctx, cmd, o, rank, cs.windowEndNs)
		if err != nil {
			return event{}, err
		}
	}
	drain := time.Duration(cmd.StartUnixNs+cmd.WarmupNs+cmd.DurationNs-time.Now().UnixNano()) + time.Minute
	select {
	case <-cs.allDone:
	case <-time.After(drain):
		return event{}, fmt.Errorf("%w: member %d: case %d: not every sender's last message delivered within %v",
			ErrMember, m.id, cmd.Case, drain)
	case <-ctx.Done():
		return event{}, ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = nil
	return event{Ev: "result", ID: uint64(m.id), Rank: rank, Case: cmd.Case, Delivered: cs.delivered,
		WindowNs: cmd.DurationNs, Sent: sent, Early: cs.early, Views: m.views - views0,
		OwnHist: cs.own.sparse(), Samples: cs.samples}, nil
}

// send multicasts data as fast as Send accepts it until endNs (wall
// clock), then the Done marker.
func (m *member) send(ctx context.Context, cmd command, o group.Order, rank int, endNs int64) (uint64, error) {
	// Send copies the payload (it frames it), so one buffer serves.
	buf := make([]byte, cmd.SizeBytes)
	var seq uint64
	for {
		now := time.Now().UnixNano()
		if now >= endNs {
			break
		}
		putHeader(buf, kindData, cmd.Case, rank, seq, now)
		if err := m.g.Send(ctx, buf, o); err != nil {
			return seq, fmt.Errorf("groupbench: member %d: send: %w", m.id, err)
		}
		seq++
	}
	putHeader(buf[:headerBytes], kindDone, cmd.Case, rank, seq, time.Now().UnixNano())
	if err := m.g.Send(ctx, buf[:headerBytes], o); err != nil {
		return seq, fmt.Errorf("groupbench: member %d: send done: %w", m.id, err)
	}
	return seq, nil
}

func sleepUntil(ctx context.Context, unixNs int64) error {
	d := time.Duration(unixNs - time.Now().UnixNano())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func defaultVSync() vsync.Config { return vsync.DefaultConfig() }
