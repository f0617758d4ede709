package groupbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chorus-project/chorus/group"
)

// Config is one run of the benchmark: every (order, size, senders) case
// on one group of MembersCount member processes.
type Config struct {
	Sizes    []int    // message sizes in bytes
	Orders   []string // fifo, causal, total, safe
	Patterns []string // "one" (rank 0 sends) and/or "all"
	Duration time.Duration
	Warmup   time.Duration // unreported sending before each case's window
	Tuning   Tuning
	// CPUProfileDir, if set, makes every member write a CPU profile of the
	// whole run to member-<id>.pprof there.
	CPUProfileDir string
	// FormTimeout bounds the start of the three members.
	FormTimeout time.Duration
}

func (c *Config) validate() error {
	if len(c.Sizes) == 0 || len(c.Orders) == 0 || len(c.Patterns) == 0 {
		return fmt.Errorf("%w: no sizes, orders or sender patterns", ErrConfig)
	}
	for _, s := range c.Sizes {
		if s < SizeBytesMin || s > SizeBytesMax {
			return fmt.Errorf("%w: size %d not in [%d, %d]", ErrConfig, s, SizeBytesMin, SizeBytesMax)
		}
	}
	for _, o := range c.Orders {
		if _, err := ParseOrder(o); err != nil {
			return err
		}
	}
	for _, p := range c.Patterns {
		if p != "one" && p != "all" {
			return fmt.Errorf("%w: sender pattern %q (one or all)", ErrConfig, p)
		}
	}
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("%w: duration %v must be > 0", ErrConfig, c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("%w: warm-up %v must be >= 0", ErrConfig, c.Warmup)
	case c.Tuning.Tick < 0 || c.Tuning.SendWindowMax < 0 || c.Tuning.StabilityTicks < 0:
		return fmt.Errorf("%w: negative tuning", ErrConfig)
	}
	if c.FormTimeout == 0 {
		c.FormTimeout = time.Minute
	}
	return nil
}

// Proc is a started member: its control pipes and its end.
type Proc interface {
	// Stdin takes command lines; closing it asks the member to exit.
	Stdin() io.WriteCloser
	// Stdout yields event lines.
	Stdout() io.Reader
	// Wait waits for the member to exit.
	Wait() error
	// Kill ends it at once.
	Kill()
}

// Launcher starts one member (a process, or in tests a goroutine).
type Launcher func(ctx context.Context, c MemberConfig) (Proc, error)

// Result is one case's figures.
type Result struct {
	System  string  `json:"system"`
	Order   string  `json:"order"`
	Size    int     `json:"size"`
	Senders string  `json:"senders"`
	MsgsPS  float64 `json:"msgs_per_s"` // min over members
	MBPS    float64 `json:"mb_per_s"`
	// P50Ms and P99Ms: send -> the sender's own delivery, the JGroups
	// side's definition; the comparison uses these.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// P50AllMs and P99AllMs: send -> delivery at every member (the max
	// over members per sampled message), wall clock.
	P50AllMs   float64  `json:"p50_all_ms"`
	P99AllMs   float64  `json:"p99_all_ms"`
	AllSamples int      `json:"all_samples"`
	Sent       uint64   `json:"sent"`
	Delivered  []uint64 `json:"delivered"` // per member, in the window, by rank
	Views      int      `json:"views"`     // views installed during the case (0 expected)
	Early      uint64   `json:"early"`
}

type memberConn struct {
	id     uint64
	rank   int
	proc   Proc
	events chan event
	errs   chan error
	addr   string
	// formed is kept when it arrives before the coordinator waits for it.
	formed *event
}

// Run starts the members, runs every case and returns one Result per case
// in order; progress goes to logw.
func Run(ctx context.Context, c Config, launch Launcher, logw io.Writer) (results []Result, err error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ms []*memberConn
	defer func() {
		for _, m := range ms {
			m.proc.Stdin().Close()
		}
		for _, m := range ms {
			done := make(chan struct{})
			go func() { m.proc.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				m.proc.Kill()
				<-done
			}
		}
	}()
	formDeadline := time.Now().Add(c.FormTimeout)
	start := func(mc MemberConfig) (*memberConn, error) {
		if c.CPUProfileDir != "" {
			mc.CPUProfile = fmt.Sprintf("%s/member-%d.pprof", c.CPUProfileDir, mc.ID)
		}
		mc.Tuning = c.Tuning
		mc.LogLevel = slog.LevelWarn // connection chatter would drown the progress lines
		p, err := launch(ctx, mc)
		if err != nil {
			return nil, fmt.Errorf("%w: start member %d: %w", ErrMember, mc.ID, err)
		}
		m := &memberConn{id: uint64(mc.ID), rank: -1, proc: p, events: make(chan event, 16), errs: make(chan error, 1)}
		ms = append(ms, m)
		go m.read()
		ev, err := m.await(ctx, "joined", formDeadline)
		if err != nil {
			return nil, err
		}
		m.addr = ev.Addr
		return m, nil
	}
	first, err := start(MemberConfig{ID: 1, Bootstrap: true})
	if err != nil {
		return nil, err
	}
	for id := 2; id <= MembersCount; id++ {
		contacts := []group.Member{{ID: 1, Addr: first.addr}}
		if _, err := start(MemberConfig{ID: group.MemberID(id), Contacts: contacts}); err != nil {
			return nil, err
		}
	}
	for _, m := range ms {
		ev, err := m.await(ctx, "formed", formDeadline)
		if err != nil {
			return nil, err
		}
		m.rank = ev.Rank
	}
	byRank := make([]*memberConn, MembersCount)
	for _, m := range ms {
		if m.rank < 0 || m.rank >= MembersCount || byRank[m.rank] != nil {
			return nil, fmt.Errorf("%w: member %d reports rank %d", ErrMember, m.id, m.rank)
		}
		byRank[m.rank] = m
	}
	fmt.Fprintf(logw, "groupbench: group of %d formed\n", MembersCount)

	var caseID uint32
	for _, o := range c.Orders {
		for _, size := range c.Sizes {
			for _, p := range c.Patterns {
				caseID++
				r, err := runCase(ctx, byRank, c, caseID, o, size, p)
				if err != nil {
					return results, err
				}
				fmt.Fprintf(logw, "groupbench: %s %d B senders=%s: %.0f msgs/s (sent %d, delivered %v)\n",
					r.Order, r.Size, r.Senders, r.MsgsPS, r.Sent, r.Delivered)
				results = append(results, r)
			}
		}
	}
	return results, nil
}

func runCase(ctx context.Context, byRank []*memberConn, c Config, caseID uint32, o string, size int, pattern string) (Result, error) {
	cmd := command{Op: "case", Case: caseID, SizeBytes: size, Order: o, AllSend: pattern == "all",
		// Far enough ahead that every member holds the case before any
		// data of it arrives.
		StartUnixNs: time.Now().Add(300 * time.Millisecond).UnixNano(),
		WarmupNs:    int64(c.Warmup), DurationNs: int64(c.Duration)}
	line, err := json.Marshal(cmd)
	if err != nil {
		return Result{}, err
	}
	line = append(line, '\n')
	for _, m := range byRank {
		if _, err := m.proc.Stdin().Write(line); err != nil {
			return Result{}, fmt.Errorf("%w: member %d: write command: %w", ErrMember, m.id, err)
		}
	}
	deadline := time.Now().Add(300*time.Millisecond + c.Warmup + c.Duration + 90*time.Second)
	evs := make([]event, MembersCount)
	for r, m := range byRank {
		ev, err := m.await(ctx, "result", deadline)
		if err != nil {
			return Result{}, err
		}
		if ev.Case != caseID {
			return Result{}, fmt.Errorf("%w: member %d: result for case %d, want %d", ErrMember, m.id, ev.Case, caseID)
		}
		evs[r] = ev
	}
	return summarize(evs, o, size, pattern)
}

// summarize merges the members' reports of one case.
func summarize(evs []event, o string, size int, pattern string) (Result, error) {
	r := Result{System: "chorus", Order: o, Size: size, Senders: pattern, MsgsPS: math.Inf(1)}
	own := &Hist{}
	type agg struct {
		n      int
		maxLat int64
	}
	all := make(map[int64]agg)
	for _, ev := range evs {
		if ev.WindowNs <= 0 {
			return r, fmt.Errorf("%w: member %d: window %d ns", ErrMember, ev.ID, ev.WindowNs)
		}
		r.MsgsPS = min(r.MsgsPS, float64(ev.Delivered)/(float64(ev.WindowNs)/1e9))
		r.Delivered = append(r.Delivered, ev.Delivered)
		r.Sent += ev.Sent
		r.Views += ev.Views
		r.Early += ev.Early
		h, ok := histFromSparse(ev.OwnHist)
		if !ok {
			return r, fmt.Errorf("%w: member %d: bad histogram", ErrMember, ev.ID)
		}
		own.Merge(h)
		for _, s := range ev.Samples {
			a := all[s[0]]
			a.n++
			a.maxLat = max(a.maxLat, s[1])
			all[s[0]] = a
		}
	}
	var lats []int64
	for _, a := range all {
		if a.n == len(evs) { // sampled at every member
			lats = append(lats, a.maxLat)
		}
	}
	r.MBPS = r.MsgsPS * float64(size) / 1e6
	r.P50Ms, r.P99Ms = own.QuantileMs(0.50), own.QuantileMs(0.99)
	r.AllSamples = len(lats)
	r.P50AllMs, r.P99AllMs = exactQuantileMs(lats, 0.50), exactQuantileMs(lats, 0.99)
	return r, nil
}

// read turns the member's stdout into events until it ends.
func (m *memberConn) read() {
	sc := bufio.NewScanner(m.proc.Stdout())
	sc.Buffer(make([]byte, 0, 1<<16), lineBytesMax)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			m.errs <- fmt.Errorf("%w: member %d: bad line %.200q: %w", ErrMember, m.id, sc.Text(), err)
			return
		}
		m.events <- ev
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	m.errs <- fmt.Errorf("%w: member %d: output ended: %w", ErrMember, m.id, err)
}

// await returns the next event named want, failing on an "error" event,
// the member's end, or the deadline. Events of other names are skipped
// ("formed" can come before the coordinator waits for it).
func (m *memberConn) await(ctx context.Context, want string, deadline time.Time) (event, error) {
	if want == "formed" && m.formed != nil {
		return *m.formed, nil
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		select {
		case ev := <-m.events:
			switch ev.Ev {
			case want:
				return ev, nil
			case "error":
				return ev, fmt.Errorf("%w: member %d: %s", ErrMember, m.id, ev.Err)
			case "formed":
				m.formed = &ev
			}
		case err := <-m.errs:
			return event{}, err
		case <-t.C:
			return event{}, fmt.Errorf("%w: member %d: no %q within the deadline", ErrMember, m.id, want)
		case <-ctx.Done():
			return event{}, ctx.Err()
		}
	}
}

// FormatTable renders results as an aligned table.
func FormatTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "order\tsize B\tsenders\tmsgs/s\tMB/s\town p50 ms\town p99 ms\tall p50 ms\tall p99 ms\tsent\tdelivered (by rank)\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%s\t\n", r.Order, r.Size, r.Senders, r.MsgsPS, r.MBPS,
			r.P50Ms, r.P99Ms, r.P50AllMs, r.P99AllMs, r.Sent, strings.Trim(fmt.Sprint(r.Delivered), "[]"))
	}
	return tw.Flush()
}
