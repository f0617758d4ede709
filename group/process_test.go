package group

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Real processes (issue 4): five members as separate OS processes over TCP
// on loopback. The test binary re-executes itself (os.Args[0],
// -test.run=^TestHelperProcess$, procEnvHelper set); the child runs one
// member with procApp and talks to the parent over stdin/stdout in JSON
// lines: commands in, responses and events out (each output line starts
// with procLinePrefix, so the test framework's own output is skipped).

const (
	procEnvHelper   = "CHORUS_GROUP_HELPER"   // "1" in a child
	procEnvID       = "CHORUS_GROUP_ID"       // the member ID
	procEnvBoot     = "CHORUS_GROUP_BOOT"     // "1": bootstrap the group
	procEnvContacts = "CHORUS_GROUP_CONTACTS" // id=addr,id=addr
	// procEnvPlant plants a bug in the child's application: "restore-drop"
	// drops the first entry of a restored state. TestFiveProcesses must
	// then fail (run it by hand: see docs/group.md).
	procEnvPlant = "CHORUS_GROUP_PLANT"

	procLinePrefix = "@@"
	// procLineBytesMax bounds one line either way (a state response holds
	// every entry).
	procLineBytesMax = 16 << 20
	procClusterID    = 7
)

// procCmd is one command to a child.
type procCmd struct {
	ID  int    `json:"id"`
	Cmd string `json:"cmd"` // send, state, query
	N   int    `json:"n,omitempty"`
	Tag string `json:"tag,omitempty"` // send: payloads are <tag>-<i>
}

// procMsg is a child's response to a command (ID > 0) or an event (ID 0:
// "addr" once listening, "joined" once in the group or failing to be).
type procMsg struct {
	ID       int         `json:"id"`
	Ev       string      `json:"ev,omitempty"`
	Err      string      `json:"err,omitempty"`
	Addr     string      `json:"addr,omitempty"`
	Sent     int         `json:"sent,omitempty"`
	Count    int         `json:"count,omitempty"`
	Digest   string      `json:"digest,omitempty"`
	Entries  []string    `json:"entries,omitempty"`
	Restores int         `json:"restores,omitempty"`
	View     *procView   `json:"view,omitempty"`
	Replies  []procReply `json:"replies,omitempty"`
}

type procView struct {
	ID      uint64     `json:"id"`
	Rank    int        `json:"rank"`
	Members []MemberID `json:"members"`
	Incs    []uint64   `json:"incs"`
}

type procReply struct {
	From    MemberID `json:"from"`
	Payload string   `json:"payload"`
}

// procApp is logApp whose query reply is its digest: the number of
// entries and their SHA-256, at the point of the total order where the
// query is delivered.
type procApp struct {
	*logApp
	plantRestoreDrop bool
}

func (a procApp) Deliver(m Message) []byte {
	if m.Query {
		n, d := a.digest()
		return fmt.Appendf(nil, "%d:%x", n, d)
	}
	return a.logApp.Deliver(m)
}

func (a procApp) Restore(r io.Reader) error {
	if err := a.logApp.Restore(r); err != nil {
		return err
	}
	if a.plantRestoreDrop {
		a.mu.Lock()
		if len(a.entries) > 0 {
			a.entries = a.entries[1:]
		}
		a.mu.Unlock()
	}
	return nil
}

// procConfig is the children's group configuration: fastVSync's failure
// detector, a little slower, since five processes and the test share two
// cores (a verdict after about 0.5 s of silence).
func procConfig(h *Host, boot bool, contacts []Member) Config {
	v := fastVSync()
	v.Liveness.SuspectTicks = 60
	return Config{Host: h, GroupID: 1, Bootstrap: boot, Contacts: contacts, TickInterval: 5 * time.Millisecond, VSync: v}
}

// TestHelperProcess is the child: it does nothing unless procEnvHelper is
// set.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(procEnvHelper) != "1" {
		t.Skip("the child of TestFiveProcesses")
	}
	os.Exit(runProcChild())
}

func runProcChild() int {
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	emit := func(m procMsg) {
		b, _ := json.Marshal(m)
		outMu.Lock()
		defer outMu.Unlock()
		out.WriteString(procLinePrefix)
		out.Write(b)
		out.WriteByte('\n')
		out.Flush()
	}
	fail := func(err error) int {
		emit(procMsg{Ev: "joined", Err: err.Error()})
		return 1
	}
	id, err := strconv.ParseUint(os.Getenv(procEnvID), 10, 64)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", procEnvID, err))
	}
	var contacts []Member
	if s := os.Getenv(procEnvContacts); s != "" {
		for _, kv := range strings.Split(s, ",") {
			k, addr, _ := strings.Cut(kv, "=")
			cid, err := strconv.ParseUint(k, 10, 64)
			if err != nil {
				return fail(fmt.Errorf("%s: %q: %w", procEnvContacts, kv, err))
			}
			contacts = append(contacts, Member{ID: MemberID(cid), Addr: addr})
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := NewHost(HostConfig{ID: MemberID(id), ClusterID: procClusterID, ListenAddr: "127.0.0.1:0", Logger: logger})
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	emit(procMsg{Ev: "addr", Addr: h.Addr()})
	app := procApp{logApp: newLogApp(), plantRestoreDrop: os.Getenv(procEnvPlant) == "restore-drop"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	g, err := Join(ctx, procConfig(h, os.Getenv(procEnvBoot) == "1", contacts), app)
	cancel()
	if err != nil {
		return fail(err)
	}
	defer g.Close()
	emit(procMsg{Ev: "joined"})

	// Commands run concurrently (a send may wait through a view change
	// while the parent asks for state); stdin's end is the parent's
	// "exit".
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), procLineBytesMax)
	var wg sync.WaitGroup
	for in.Scan() {
		var c procCmd
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			emit(procMsg{Err: fmt.Sprintf("bad command %q: %v", in.Text(), err)})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			emit(procServe(g, app, c))
		}()
	}
	wg.Wait()
	return 0
}

func procServe(g *Group, app procApp, c procCmd) procMsg {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := procMsg{ID: c.ID}
	switch c.Cmd {
	case "send":
		for i := range c.N {
			if err := g.Send(ctx, fmt.Appendf(nil, "%s-%d", c.Tag, i), Total); err != nil {
				r.Err = err.Error()
				break
			}
			r.Sent++
		}
	case "state":
		app.mu.Lock()
		for _, e := range app.entries {
			r.Entries = append(r.Entries, string(e))
		}
		r.Restores = app.restores
		app.mu.Unlock()
		n, d := app.digest()
		r.Count, r.Digest = n, fmt.Sprintf("%x", d)
		v := g.View()
		r.View = &procView{ID: v.ID, Rank: v.Rank}
		for _, m := range v.Members {
			r.View.Members = append(r.View.Members, m.ID)
			r.View.Incs = append(r.View.Incs, m.Incarnation)
		}
	case "query":
		replies, err := g.Query(ctx, []byte("digest"), 0)
		if err != nil {
			r.Err = err.Error()
		}
		for _, rep := range replies {
			r.Replies = append(r.Replies, procReply{From: rep.From, Payload: string(rep.Payload)})
		}
	default:
		r.Err = fmt.Sprintf("unknown command %q", c.Cmd)
	}
	return r
}

// proc is the parent's handle on one child.
type proc struct {
	id      MemberID
	life    int
	addr    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	logPath string
	events  chan procMsg
	exited  chan struct{}

	mu      sync.Mutex
	next    int
	pending map[int]chan procMsg
}

var errProcExited = errors.New("child exited")

// startProc starts member id (its life-th process) and waits until it is
// in the group. Cleanup kills it.
func startProc(t *testing.T, ctx context.Context, id MemberID, life int, boot bool, contacts []Member) *proc {
	t.Helper()
	p := &proc{id: id, life: life, events: make(chan procMsg, 4), exited: make(chan struct{}), pending: make(map[int]chan procMsg),
		logPath: filepath.Join(t.TempDir(), fmt.Sprintf("member-%d-life-%d.log", id, life))}
	var cs []string
	for _, c := range contacts {
		cs = append(cs, fmt.Sprintf("%d=%s", c.ID, c.Addr))
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	p.cmd.Env = append(os.Environ(), procEnvHelper+"=1", fmt.Sprintf("%s=%d", procEnvID, id),
		procEnvContacts+"="+strings.Join(cs, ","))
	if boot {
		p.cmd.Env = append(p.cmd.Env, procEnvBoot+"=1")
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = logf
	pr, pw := io.Pipe()
	p.cmd.Stdout = pw
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		logf.Close()
		pw.Close()
	}()
	go p.read(pr)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			t.Logf("member %d life %d stderr (last 2 KiB):\n%s", id, life, b[max(0, len(b)-2048):])
		}
	})
	for _, want := range []string{"addr", "joined"} {
		select {
		case ev := <-p.events:
			if ev.Ev != want || ev.Err != "" {
				t.Fatalf("member %d: event %q (error %q), want %q", id, ev.Ev, ev.Err, want)
			}
			if ev.Ev == "addr" {
				p.addr = ev.Addr
			}
		case <-p.exited:
			t.Fatalf("member %d exited before %q", id, want)
		case <-ctx.Done():
			t.Fatalf("member %d: no %q: %v", id, want, ctx.Err())
		}
	}
	return p
}

func (p *proc) read(r io.Reader) {
	defer close(p.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), procLineBytesMax)
	for sc.Scan() {
		line, ok := bytes.CutPrefix(sc.Bytes(), []byte(procLinePrefix))
		if !ok {
			continue
		}
		var m procMsg
		if err := json.Unmarshal(line, &m); err != nil {
			continue
		}
		if m.ID == 0 {
			select {
			case p.events <- m:
			default:
			}
			continue
		}
		p.mu.Lock()
		ch := p.pending[m.ID]
		delete(p.pending, m.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	io.Copy(io.Discard, r) // let cmd.Wait finish
}

// call sends one command and waits for its response.
func (p *proc) call(ctx context.Context, c procCmd) (procMsg, error) {
	ch := make(chan procMsg, 1)
	p.mu.Lock()
	p.next++
	c.ID = p.next
	p.pending[c.ID] = ch
	// Under mu: one command per line, whoever writes.
	b, _ := json.Marshal(c)
	_, err := p.stdin.Write(append(b, '\n'))
	p.mu.Unlock()
	if err != nil {
		return procMsg{}, fmt.Errorf("member %d: %w: %w", p.id, errProcExited, err)
	}
	select {
	case m := <-ch:
		if m.Err != "" {
			return m, fmt.Errorf("member %d: %s: %s", p.id, c.Cmd, m.Err)
		}
		return m, nil
	case <-p.exited:
		return procMsg{}, fmt.Errorf("member %d: %w", p.id, errProcExited)
	case <-ctx.Done():
		return procMsg{}, fmt.Errorf("member %d: %s: %w", p.id, c.Cmd, ctx.Err())
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// procCluster is the parent's view of the five members.
type procCluster struct {
	t     *testing.T
	ctx   context.Context
	live  map[MemberID]*proc
	lives map[MemberID]int
	// attempted is every payload a send command was given (no creation);
	// acked[sender tag] is how many of its payloads Send accepted at a
	// sender that stayed alive (no loss).
	attempted map[string]bool
	ackedMu   sync.Mutex
	acked     map[string]int
}

func (c *procCluster) ids() []MemberID {
	ids := make([]MemberID, 0, len(c.live))
	for id := range c.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (c *procCluster) contacts() []Member {
	var cs []Member
	for _, id := range c.ids() {
		cs = append(cs, Member{ID: id, Addr: c.live[id].addr})
	}
	return cs
}

func (c *procCluster) start(id MemberID, boot bool) {
	c.lives[id]++
	c.live[id] = startProc(c.t, c.ctx, id, c.lives[id], boot, c.contacts())
}

func (c *procCluster) state(id MemberID) procMsg {
	c.t.Helper()
	m, err := c.live[id].call(c.ctx, procCmd{Cmd: "state"})
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// waitView waits until every live member holds a view of exactly the live
// members; it returns that view.
func (c *procCluster) waitView(what string) procView {
	c.t.Helper()
	var v procView
	waitFor(c.t, 20*time.Second, func() bool {
		var first *procView
		for _, id := range c.ids() {
			s := c.state(id)
			if !slices.Equal(slices.Sorted(slices.Values(s.View.Members)), c.ids()) || (first != nil && s.View.ID != first.ID) {
				return false
			}
			if first == nil {
				first = s.View
			}
		}
		v = *first
		return true
	}, "%s: a view of %v at every live member", what, c.ids())
	return v
}

// sendAsync makes every live member send n Total messages; the channel
// yields once per member.
func (c *procCluster) sendAsync(round string, n int) <-chan error {
	errc := make(chan error, len(c.live))
	for _, id := range c.ids() {
		p := c.live[id]
		tag := fmt.Sprintf("%s/p%d.%d", round, id, c.lives[id])
		for i := range n {
			c.attempted[fmt.Sprintf("%s-%d", tag, i)] = true
		}
		go func() {
			m, err := p.call(c.ctx, procCmd{Cmd: "send", N: n, Tag: tag})
			if err == nil {
				c.ackedMu.Lock()
				c.acked[tag] = m.Sent
				c.ackedMu.Unlock()
			}
			errc <- err
		}()
	}
	return errc
}

func waitSends(errc <-chan error, n int) []error {
	var errs []error
	for range n {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// check compares every live member's state: the sequences agree (each a
// prefix of the longest, all equal once quiet), nothing is duplicated or
// created, every acknowledged message of a surviving sender is there in
// its sender's order; then a group Query gathers every member's digest at
// one point of the total order, and they must be equal.
func (c *procCluster) check(what string, extra map[string][]string) {
	c.t.Helper()
	// Send returns once a message is in the send window, so wait (with a
	// deadline) for the acknowledged messages to arrive and the states to
	// settle; safety (prefixes, no duplication, no creation) must hold at
	// every poll.
	var seqs map[string][]string
	var waiting error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		seqs = map[string][]string{}
		var digests []string
		for _, id := range c.ids() {
			s := c.state(id)
			seqs[fmt.Sprintf("member %d", id)] = s.Entries
			digests = append(digests, fmt.Sprintf("%d:%s", s.Count, s.Digest))
		}
		for k, v := range extra {
			seqs[k] = v
		}
		if err := checkPrefixes(seqs); err != nil {
			c.t.Fatalf("%s: %v", what, err)
		}
		for _, name := range slices.Sorted(maps.Keys(seqs)) {
			if err := checkSequence(seqs[name], c.attempted); err != nil {
				c.t.Fatalf("%s: %s: %v", what, name, err)
			}
		}
		waiting = nil
		if len(slices.Compact(digests)) != 1 {
			waiting = fmt.Errorf("states differ: %v", digests)
		}
		c.ackedMu.Lock()
		for _, id := range c.ids() {
			if err := checkAcked(seqs[fmt.Sprintf("member %d", id)], c.acked); err != nil && waiting == nil {
				waiting = fmt.Errorf("member %d: %w", id, err)
			}
		}
		c.ackedMu.Unlock()
		if waiting == nil {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: after 20 s: %v", what, waiting)
		}
	}
	for _, from := range []MemberID{c.ids()[0], c.ids()[len(c.ids())-1]} {
		q, err := c.live[from].call(c.ctx, procCmd{Cmd: "query"})
		if err != nil {
			c.t.Fatal(err)
		}
		if err := checkDigestReplies(q.Replies, c.ids()); err != nil {
			c.t.Fatalf("%s: query from %d: %v", what, from, err)
		}
		c.t.Logf("%s: query from member %d: %d equal digests %s", what, from, len(q.Replies), q.Replies[0].Payload)
	}
}

// checkPrefixes: every sequence is a prefix of the longest (total order;
// a member that crashed or lags holds a prefix).
func checkPrefixes(seqs map[string][]string) error {
	var longest string
	for name, s := range seqs {
		if longest == "" || len(s) > len(seqs[longest]) || (len(s) == len(seqs[longest]) && name < longest) {
			longest = name
		}
	}
	for name, s := range seqs {
		l := seqs[longest]
		for i := range s {
			if s[i] != l[i] {
				return fmt.Errorf("total order: %s and %s differ at position %d: %q vs %q", name, longest, i, s[i], l[i])
			}
		}
	}
	return nil
}

// checkSequence: no duplicate, no payload that nobody sent, and each
// sender's messages in the order it sent them.
func checkSequence(s []string, attempted map[string]bool) error {
	seen := map[string]bool{}
	next := map[string]int{}
	for i, e := range s {
		if seen[e] {
			return fmt.Errorf("duplicate %q at position %d", e, i)
		}
		seen[e] = true
		if !attempted[e] {
			return fmt.Errorf("created %q at position %d: nobody sent it", e, i)
		}
		tag, idx, _ := strings.Cut(e, "-")
		n, _ := strconv.Atoi(idx)
		if n != next[tag] {
			return fmt.Errorf("FIFO: %q at position %d, want index %d of %s", e, i, next[tag], tag)
		}
		next[tag]++
	}
	return nil
}

// checkAcked: every message Send accepted at a sender that stayed in the
// group is delivered.
func checkAcked(s []string, acked map[string]int) error {
	have := map[string]bool{}
	for _, e := range s {
		have[e] = true
	}
	for _, tag := range slices.Sorted(func(yield func(string) bool) {
		for k := range acked {
			if !yield(k) {
				return
			}
		}
	}) {
		for i := range acked[tag] {
			if e := fmt.Sprintf("%s-%d", tag, i); !have[e] {
				return fmt.Errorf("lost: %q was accepted by Send at a surviving sender and never delivered", e)
			}
		}
	}
	return nil
}

// checkDigestReplies: one reply from each live member, all the same digest.
func checkDigestReplies(replies []procReply, ids []MemberID) error {
	var from []MemberID
	for _, r := range replies {
		from = append(from, r.From)
		if r.Payload != replies[0].Payload {
			return fmt.Errorf("digests differ at one point of the total order: member %d %s, member %d %s",
				r.From, r.Payload, replies[0].From, replies[0].Payload)
		}
	}
	slices.Sort(from)
	if !slices.Equal(from, ids) {
		return fmt.Errorf("replies from %v, want %v", from, ids)
	}
	return nil
}

// TestFiveProcesses: five members in five processes. Round 1 kills (SIGKILL)
// a member that is not rank 0 while every member sends; round 2 kills rank
// 0, the coordinator and sequencer. Each time the survivors install a view
// without it and keep delivering in total order, and the victim restarts
// as a new process (a new incarnation), joins, receives the state by
// transfer, and ends with the same state as the others.
func TestFiveProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts seven processes")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	c := &procCluster{t: t, ctx: ctx, live: map[MemberID]*proc{}, lives: map[MemberID]int{},
		attempted: map[string]bool{}, acked: map[string]int{}}
	for id := MemberID(1); id <= 5; id++ {
		c.start(id, id == 1)
	}
	v := c.waitView("start")
	t.Logf("start: view %d of %v after %v", v.ID, v.Members, time.Since(start).Round(time.Millisecond))
	if err := waitSends(c.sendAsync("r0", 50), 5); err != nil {
		t.Fatal(err)
	}
	c.check("start", nil)

	for round, pick := range []func(procView) MemberID{
		func(v procView) MemberID { return v.Members[2] }, // rank 2
		func(v procView) MemberID { return v.Members[0] }, // rank 0: coordinator, sequencer
	} {
		name := fmt.Sprintf("r%d", round+1)
		v := c.waitView(name)
		victim := pick(v)
		rank := slices.Index(v.Members, victim)
		before := len(c.state(victim).Entries)
		// Everyone sends; the victim dies in the middle of it.
		errc := c.sendAsync(name, 200)
		waitFor(t, 20*time.Second, func() bool { return len(c.state(victim).Entries) >= before+100 }, "%s: the victim delivering", name)
		last := c.state(victim).Entries // a prefix of what it delivered before it died
		c.live[victim].kill()
		killedAt := time.Now()
		delete(c.live, victim)
		for _, err := range waitSends(errc, 5) {
			if !errors.Is(err, errProcExited) {
				t.Fatalf("%s: %v", name, err)
			}
		}
		delete(c.acked, fmt.Sprintf("%s/p%d.%d", name, victim, c.lives[victim]))
		v2 := c.waitView(name + " after kill")
		t.Logf("%s: killed member %d (rank %d of view %d); view %d of %v installed %v later", name, victim, rank, v.ID, v2.ID,
			v2.Members, time.Since(killedAt).Round(time.Millisecond))
		// The survivors keep delivering in total order.
		if err := waitSends(c.sendAsync(name+"b", 50), 4); err != nil {
			t.Fatal(err)
		}
		c.check(name+" survivors", map[string][]string{fmt.Sprintf("member %d before SIGKILL", victim): last})

		// The victim comes back as a new process, a new incarnation.
		restartAt := time.Now()
		c.start(victim, false)
		v3 := c.waitView(name + " after restart")
		s := c.state(victim)
		if s.Restores != 1 {
			t.Fatalf("%s: the restarted member restored %d times, want 1", name, s.Restores)
		}
		inc := v3.Incs[slices.Index(v3.Members, victim)]
		if inc <= v.Incs[rank] {
			t.Fatalf("%s: incarnation %d after restart, %d before", name, inc, v.Incs[rank])
		}
		t.Logf("%s: member %d back as incarnation %d in view %d of %v, %v after restart, state of %d entries transferred",
			name, victim, inc, v3.ID, v3.Members, time.Since(restartAt).Round(time.Millisecond), len(s.Entries))
		if err := waitSends(c.sendAsync(name+"c", 20), 5); err != nil {
			t.Fatal(err)
		}
		c.check(name+" after restart", nil)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestProcessCheckersCatchPlantedBugs feeds the checkers of
// TestFiveProcesses histories with one planted fault each.
func TestProcessCheckersCatchPlantedBugs(t *testing.T) {
	attempted := map[string]bool{"a-0": true, "a-1": true, "b-0": true}
	good := []string{"a-0", "b-0", "a-1"}
	if err := checkSequence(good, attempted); err != nil {
		t.Fatal(err)
	}
	if err := checkPrefixes(map[string][]string{"x": good, "y": good[:2], "z": nil}); err != nil {
		t.Fatal(err)
	}
	if err := checkAcked(good, map[string]int{"a": 2, "b": 1}); err != nil {
		t.Fatal(err)
	}
	if err := checkDigestReplies([]procReply{{1, "3:ab"}, {2, "3:ab"}}, []MemberID{1, 2}); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"swapped order":   checkPrefixes(map[string][]string{"x": good, "y": {"b-0", "a-0"}}),
		"duplicate":       checkSequence([]string{"a-0", "a-0"}, attempted),
		"creation":        checkSequence([]string{"c-0"}, attempted),
		"FIFO":            checkSequence([]string{"a-1", "a-0"}, attempted),
		"loss":            checkAcked(good, map[string]int{"b": 2}),
		"digest differs":  checkDigestReplies([]procReply{{1, "3:ab"}, {2, "3:ac"}}, []MemberID{1, 2}),
		"a reply missing": checkDigestReplies([]procReply{{1, "3:ab"}}, []MemberID{1, 2}),
	} {
		if err == nil {
			t.Errorf("%s: not caught", name)
		}
	}
}
