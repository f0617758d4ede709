package paxos

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
)

type noSnapshots struct{}

func (noSnapshots) SnapshotInfo(uint64) (SnapshotInfo, error) {
	return SnapshotInfo{}, errors.New("none")
}
func (noSnapshots) SnapshotChunk(uint64, uint64, int) ([]byte, error) { return nil, errors.New("none") }

func testConfig(id peer.ID, members ...peer.ID) Config {
	cfg := DefaultConfig(id, peer.MustSet(members...), rand.New(rand.NewPCG(1, uint64(id))))
	cfg.Snapshots = noSnapshots{}
	return cfg
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"id 0", func(c *Config) { c.ID = 0 }},
		{"no rand", func(c *Config) { c.Rand = nil }},
		{"no snapshots", func(c *Config) { c.Snapshots = nil }},
		{"election ticks", func(c *Config) { c.ElectionTicks = 1 }},
		{"heartbeat not below election", func(c *Config) { c.HeartbeatTicks = c.ElectionTicks }},
		{"heartbeat 0", func(c *Config) { c.HeartbeatTicks = 0 }},
		{"batch entries", func(c *Config) { c.BatchEntriesMax = 0 }},
		{"inflight bytes", func(c *Config) { c.InflightBytesMax = 0 }},
		{"proposal queue", func(c *Config) { c.ProposalQueueMax = 0 }},
		{"read queue", func(c *Config) { c.ReadQueueMax = -1 }},
		{"phase one below queue", func(c *Config) { c.PhaseOneEntriesMax = c.ProposalQueueMax }},
		{"phase one bytes below queue bytes", func(c *Config) { c.PhaseOneBytesMax = c.ProposalQueueBytesMax }},
		{"proposal queue bytes", func(c *Config) { c.ProposalQueueBytesMax = 0 }},
		{"codec below batch", func(c *Config) { c.Limits.EntriesMax = c.BatchEntriesMax - 1 }},
		{"flexible without members", func(c *Config) { c.Members = peer.Set{}; c.Q1 = 2 }},
		{"unsafe quorums", func(c *Config) { c.Q1, c.Q2 = 1, 2 }},
		{"quorum over N", func(c *Config) { c.Q1 = 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(1, 1, 2, 3)
			tc.edit(&cfg)
			if _, err := New(cfg, Restored{}); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := New(testConfig(1, 1, 2, 3), Restored{}); err != nil {
		t.Fatalf("default config refused: %v", err)
	}
}

func TestNewRejectsBadRestoredState(t *testing.T) {
	b := Ballot{1, 1}
	for _, tc := range []struct {
		name string
		r    Restored
	}{
		{"gap", Restored{Entries: []Entry{{Slot: 1, Ballot: b, Type: EntryNoop}, {Slot: 3, Ballot: b, Type: EntryNoop}}}},
		{"not after snapshot", Restored{Snapshot: SnapshotMeta{Slot: 5}, Entries: []Entry{{Slot: 5, Ballot: b, Type: EntryNoop}}}},
		{"commit beyond log", Restored{HardState: HardState{Commit: 2}, Entries: []Entry{{Slot: 1, Ballot: b, Type: EntryNoop}}}},
		{"bad type", Restored{Entries: []Entry{{Slot: 1, Ballot: b, Type: 9}}}},
		{"corrupt config", Restored{Entries: []Entry{{Slot: 1, Ballot: b, Type: EntryConfig, Data: []byte{3}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(testConfig(1, 1, 2, 3), tc.r); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestRestartKeepsPromise: a member restarted from a HardState that promised
// 5.2 refuses a Prepare for a lower ballot, as it did before the crash.
func TestRestartKeepsPromise(t *testing.T) {
	c, err := New(testConfig(1, 1, 2, 3), Restored{HardState: HardState{Promised: Ballot{5, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Step(Message{Type: MsgPrepare, From: 3, To: 1, Ballot: Ballot{4, 3}}); err != nil {
		t.Fatal(err)
	}
	rd := c.Ready()
	if len(rd.Messages) != 1 || !rd.Messages[0].Reject || rd.Messages[0].Hint != 5 || rd.HardState != nil {
		t.Fatalf("want one refusal naming round 5 and no new promise, got %v hs=%v", rd.Messages, rd.HardState)
	}
}

// chunkMsg is a snapshot chunk of n bytes at offset of a snapshot of total
// bytes, from member 2 to 1.
func chunkMsg(b Ballot, offset uint64, n int, total uint64) Message {
	data := make([]byte, n)
	return Message{Type: MsgSnapshot, From: 2, To: 1, Ballot: b, LastSlot: 5, Chunk: &SnapshotChunk{
		Meta: SnapshotMeta{Slot: 5, Ballot: b, Members: peer.MustSet(1, 2, 3)},
		Info: SnapshotInfo{TotalBytes: total}, Offset: offset, Data: data, DataChecksum: ChecksumBytes(data)}}
}

func TestStepRefusesInvalidMessages(t *testing.T) {
	b := Ballot{2, 2}
	good := Message{Type: MsgAccept, From: 2, To: 1, Ballot: b, PrevSlot: 0, LastSlot: 1,
		Entries: []Entry{{Slot: 1, Ballot: b, Type: EntryNoop}}}
	for _, tc := range []struct {
		name string
		edit func(*Message)
	}{
		{"wrong recipient", func(m *Message) { m.To = 3 }},
		{"from self", func(m *Message) { m.From = 1 }},
		{"from nobody", func(m *Message) { m.From = 0 }},
		{"round 0", func(m *Message) { m.Ballot = Ballot{0, 2} }},
		{"unknown type", func(m *Message) { m.Type = 42 }},
		{"ballot of another member", func(m *Message) { m.Ballot = Ballot{2, 3} }},
		{"entry above message ballot", func(m *Message) { m.Entries[0].Ballot = Ballot{3, 3} }},
		{"entries not after prev", func(m *Message) { m.PrevSlot = 4; m.LastSlot = 9 }},
		{"last below entries", func(m *Message) { m.LastSlot = 0 }},
		{"commit beyond last", func(m *Message) { m.Commit = 7 }},
		{"gap in entries", func(m *Message) {
			m.Entries = append(m.Entries, Entry{Slot: 3, Ballot: b, Type: EntryNoop})
			m.LastSlot = 3
		}},
		{"corrupt config entry", func(m *Message) { m.Entries[0] = Entry{Slot: 1, Ballot: b, Type: EntryConfig, Data: []byte{1, 0}} }},
		{"noop with data", func(m *Message) { m.Entries[0].Data = []byte("x") }},
		{"snapshot on an accept", func(m *Message) { m.Chunk = &SnapshotChunk{} }},
		{"snapshot missing", func(m *Message) { m.Type = MsgSnapshot; m.Entries = nil }},
		{"chunk beyond the snapshot", func(m *Message) { *m = chunkMsg(b, 8, 4, 10) }},
		{"chunk offset beyond the snapshot", func(m *Message) { *m = chunkMsg(b, 11, 0, 10) }},
		{"chunk over SnapshotChunkBytesMax", func(m *Message) {
			*m = chunkMsg(b, 0, DefaultLimits.SnapshotChunkBytesMax+1, 1<<30)
		}},
		{"snapshot over SnapshotBytesMax", func(m *Message) { *m = chunkMsg(b, 0, 1, uint64(DefaultLimits.SnapshotBytesMax)+1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(testConfig(1, 1, 2, 3), Restored{})
			if err != nil {
				t.Fatal(err)
			}
			before := c.Status()
			m := good
			m.Entries = append([]Entry(nil), good.Entries...)
			tc.edit(&m)
			if err := c.Step(m); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("err = %v, want ErrInvalidMessage", err)
			}
			if after := c.Status(); !reflect.DeepEqual(before, after) || c.HasReady() {
				t.Fatalf("a refused message changed the state: %+v -> %+v", before, after)
			}
		})
	}
	c, _ := New(testConfig(1, 1, 2, 3), Restored{})
	if err := c.Step(good); err != nil {
		t.Fatalf("the valid message was refused: %v", err)
	}
}

// singleLeader returns a one-member cluster whose member leads and has
// committed its no-op.
func singleLeader(t *testing.T, edit func(*Config)) *Core {
	t.Helper()
	cfg := testConfig(1, 1)
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg, Restored{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Campaign(); err != nil {
		t.Fatal(err)
	}
	for c.HasReady() {
		c.Advance(c.Ready())
	}
	if st := c.Status(); st.Role != Leader || st.Commit != 1 {
		t.Fatalf("single member did not lead and commit: %+v", st)
	}
	return c
}

func TestProposalBackPressureAndLimits(t *testing.T) {
	c := singleLeader(t, func(cfg *Config) {
		cfg.ProposalQueueMax = 2
		cfg.PhaseOneEntriesMax = 3
		cfg.Limits.EntryBytesMax = 8
	})
	if err := c.Propose(make([]byte, 9)); !errors.Is(err, ErrProposalTooLarge) {
		t.Fatalf("9-byte proposal: %v", err)
	}
	for i := range 2 {
		if err := c.Propose([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Propose([]byte("x")); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("third uncommitted proposal: %v", err)
	}
	rd := c.Ready()
	if len(rd.Entries) != 2 || len(rd.Committed) != 0 {
		t.Fatalf("before persisting, nothing may commit: %+v", rd)
	}
	c.Advance(rd)
	// Once durable on the only member, both commit and the queue drains.
	rd = c.Ready()
	if len(rd.Committed) != 2 {
		t.Fatalf("committed %v", rd.Committed)
	}
	c.Advance(rd)
	if err := c.Propose([]byte("y")); err != nil {
		t.Fatalf("queue did not drain: %v", err)
	}
}

// TestProposalQueueBytes bounds the uncommitted suffix in bytes, so that a
// phase-1 reply carrying all of it stays within PhaseOneBytesMax however
// large the commands are; one entry is always accepted into an empty queue.
func TestProposalQueueBytes(t *testing.T) {
	c := singleLeader(t, func(cfg *Config) {
		cfg.Limits.EntryBytesMax = 100
		cfg.ProposalQueueBytesMax = 150
		cfg.PhaseOneBytesMax = 400
	})
	if err := c.Propose(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := c.Propose(make([]byte, 40)); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal past the byte bound: %v", err)
	}
	if err := c.Propose(make([]byte, 10)); err != nil {
		t.Fatalf("proposal within the byte bound: %v", err)
	}
	rd := c.Ready()
	c.Advance(rd)
	rd = c.Ready()
	if len(rd.Committed) != 2 {
		t.Fatalf("committed %v", rd.Committed)
	}
	c.Advance(rd)
	if err := c.Propose(make([]byte, 100)); err != nil {
		t.Fatalf("byte bound did not drain on commit: %v", err)
	}
}

func TestNotLeaderErrorCarriesHint(t *testing.T) {
	c, _ := New(testConfig(1, 1, 2, 3), Restored{})
	b := Ballot{1, 2}
	if err := c.Step(Message{Type: MsgHeartbeat, From: 2, To: 1, Ballot: b}); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{c.Propose([]byte("x")), c.ReadIndex([]byte("r")), c.ProposeConfChange(ConfChange{Op: AddMember, ID: 4})} {
		var nl *NotLeaderError
		if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.Leader != 2 {
			t.Fatalf("err = %v, want a NotLeaderError naming 2", err)
		}
	}
	if st := c.Status(); st.Leader != 2 {
		t.Fatalf("status leader %s", st.Leader)
	}
}

func TestReadyWithoutAdvanceIsABug(t *testing.T) {
	c := singleLeader(t, nil)
	_ = c.Propose([]byte("x"))
	_ = c.Ready()
	defer func() {
		if _, ok := recover().(invariant.Violation); !ok {
			t.Fatal("a second Ready before Advance did not trip an assertion")
		}
	}()
	_ = c.Ready()
}

func TestCompactRules(t *testing.T) {
	c := singleLeader(t, nil)
	if err := c.Compact(2); !errors.Is(err, ErrCompaction) {
		t.Fatalf("compacting beyond applied: %v", err)
	}
	if err := c.Compact(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(1); !errors.Is(err, ErrCompaction) {
		t.Fatalf("compacting twice: %v", err)
	}
	if st := c.Status(); st.SnapshotSlot != 1 || st.LastSlot != 1 {
		t.Fatalf("after compaction: %+v", st)
	}
}

func TestConfChangeRules(t *testing.T) {
	c := singleLeader(t, nil)
	if err := c.ProposeConfChange(ConfChange{Op: RemoveMember, ID: 1}); !errors.Is(err, ErrBadConfChange) {
		t.Fatalf("removing the last member: %v", err)
	}
	if err := c.ProposeConfChange(ConfChange{Op: AddMember, ID: 1}); !errors.Is(err, ErrBadConfChange) {
		t.Fatalf("adding a member twice: %v", err)
	}
	if err := c.ProposeConfChange(ConfChange{Op: AddMember, ID: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.ProposeConfChange(ConfChange{Op: AddMember, ID: 3}); !errors.Is(err, ErrConfigChangePending) {
		t.Fatalf("second change while one is pending: %v", err)
	}
	if st := c.Status(); !st.Members.Equal(peer.MustSet(1, 2)) || st.Q2 != 2 {
		t.Fatalf("the change is not in force on append: %+v", st)
	}
}

// TestBatchingAndWindow: with batches of 3 entries and 5 entries in flight
// per follower, ten proposals leave the leader as batches of at most 3, and
// at most 5 unacknowledged entries per follower until answers come back.
func TestBatchingAndWindow(t *testing.T) {
	c := newCluster(1, nil)
	c.base.BatchEntriesMax = 3
	c.base.InflightEntriesMax = 5
	for _, id := range []peer.ID{1, 2, 3} {
		if err := c.addMember(id, peer.MustSet(1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.members[1].core.Campaign()
	if err := c.stabilize(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := c.members[1].core.Propose([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.processReady(1)
	sent := map[peer.ID]int{}
	for _, m := range c.net {
		if m.Type != MsgAccept {
			continue
		}
		if len(m.Entries) > 3 {
			t.Fatalf("batch of %d entries: %v", len(m.Entries), m)
		}
		sent[m.To] += len(m.Entries)
	}
	if sent[2] != 5 || sent[3] != 5 {
		t.Fatalf("entries in flight per follower: %v, want 5 each", sent)
	}
	if err := c.stabilize(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []peer.ID{1, 2, 3} {
		if got := c.members[id].sm.applied; got != 11 {
			t.Fatalf("member %s applied up to %d, want 11", id, got)
		}
	}
	if len(c.violations) > 0 {
		t.Fatal(c.violations)
	}
}

// BenchmarkCommitThreeMembers measures the core's cost per committed
// command in a three-member cluster driven in memory (no I/O, no codec): one
// proposal, the Ready/Advance cycles and message steps until all apply it.
func BenchmarkCommitThreeMembers(b *testing.B) {
	benchCommit(b, 1)
}

// BenchmarkCommitThreeMembersBatch64 proposes 64 commands per round trip,
// so the per-command cost shows what batching saves.
func BenchmarkCommitThreeMembersBatch64(b *testing.B) {
	benchCommit(b, 64)
}

func benchCommit(b *testing.B, perRound int) {
	cores := map[peer.ID]*Core{}
	for _, id := range []peer.ID{1, 2, 3} {
		cfg := testConfig(id, 1, 2, 3)
		c, err := New(cfg, Restored{})
		if err != nil {
			b.Fatal(err)
		}
		cores[id] = c
	}
	var net []Message
	pump := func() {
		for moved := true; moved; {
			moved = false
			for _, id := range []peer.ID{1, 2, 3} {
				if c := cores[id]; c.HasReady() {
					rd := c.Ready()
					net = append(net, rd.Messages...)
					c.Advance(rd)
					moved = true
				}
			}
			for len(net) > 0 {
				m := net[0]
				net = net[1:]
				if err := cores[m.To].Step(m); err != nil {
					b.Fatal(err)
				}
				moved = true
			}
		}
	}
	_ = cores[1].Campaign()
	pump()
	data := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perRound {
		for range perRound {
			if err := cores[1].Propose(data); err != nil {
				b.Fatal(err)
			}
		}
		pump()
		if i%1024 == 0 {
			for _, c := range cores {
				st := c.Status()
				if st.Applied > 1 {
					_ = c.Compact(st.Applied)
				}
			}
		}
	}
}

// TestPromiseRefusedOverPhaseOneLimit: an acceptor whose accepted suffix
// above the candidate's commit is over PhaseOneEntriesMax refuses to promise
// rather than send an oversized Promise; with the candidate's commit closer,
// it promises.
func TestPromiseRefusedOverPhaseOneLimit(t *testing.T) {
	cfg := testConfig(1, 1, 2, 3)
	cfg.ProposalQueueMax, cfg.PhaseOneEntriesMax = 3, 4
	var entries []Entry
	for s := uint64(1); s <= 5; s++ {
		entries = append(entries, Entry{Slot: s, Ballot: Ballot{1, 2}, Type: EntryNoop})
	}
	c, err := New(cfg, Restored{HardState: HardState{Promised: Ballot{1, 2}}, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Step(Message{Type: MsgPrepare, From: 3, To: 1, Ballot: Ballot{2, 3}, Commit: 0})
	rd := c.Ready()
	if len(rd.Messages) != 1 || !rd.Messages[0].Reject || rd.HardState != nil {
		t.Fatalf("five entries over a limit of four: want a refusal and no promise, got %v", rd.Messages)
	}
	c.Advance(rd)
	// The candidate's commit can be 1 although ours is 0: the suffix is 4.
	_ = c.Step(Message{Type: MsgPrepare, From: 3, To: 1, Ballot: Ballot{2, 3}, Commit: 1})
	rd = c.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Reject || len(rd.Messages[0].Entries) != 4 || rd.HardState == nil {
		t.Fatalf("four entries: want a promise carrying them, got %v", rd.Messages)
	}
}
