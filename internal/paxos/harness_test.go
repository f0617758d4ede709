package paxos

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/chorus-project/chorus/internal/peer"
)

// The interaction harness: a cluster of cores driven by hand (datadriven
// scripts in testdata/) or by a seeded random driver (the property test).
// Each member has an in-memory disk that holds only what the harness
// persisted from a Ready, so crashing a member loses exactly what a real
// crash between receiving and persisting a Ready would lose.

// memDisk is what survives a crash.
type memDisk struct {
	hs      HardState
	snap    Snapshot
	entries []Entry // above snap.Meta.Slot, contiguous
	// recv is the snapshot being received, as chunks arrive. A restart
	// discards it, as the shell discards its file.
	recv []byte
}

// persist carries out duty 1 of the Ready contract.
func (d *memDisk) persist(rd Ready) {
	for _, ch := range rd.SnapshotChunks {
		if ch.Offset == 0 {
			d.recv = nil
		}
		if uint64(len(d.recv)) != ch.Offset {
			panic(fmt.Sprintf("chunk at %d appended to %d bytes", ch.Offset, len(d.recv)))
		}
		d.recv = append(d.recv, ch.Data...)
	}
	if rd.Snapshot != nil {
		d.snap = Snapshot{Meta: *rd.Snapshot, Data: d.recv}
		d.recv = nil
		kept := d.entries[:0:0]
		for _, e := range d.entries {
			if e.Slot > rd.Snapshot.Slot {
				kept = append(kept, e)
			}
		}
		d.entries = kept
	}
	if rd.EntriesFrom != 0 {
		kept := d.entries[:0:0]
		for _, e := range d.entries {
			if e.Slot < rd.EntriesFrom {
				kept = append(kept, e)
			}
		}
		d.entries = append(kept, cloneEntries(rd.Entries)...)
	}
	if rd.HardState != nil {
		d.hs = *rd.HardState
	}
}

// stateMachine is the application: the list of applied commands.
type stateMachine struct {
	applied uint64
	cmds    []string // "slot:data"
}

func (sm *stateMachine) snapshotData() []byte { return []byte(strings.Join(sm.cmds, ",")) }

func restoreSM(s Snapshot) stateMachine {
	sm := stateMachine{applied: s.Meta.Slot}
	if len(s.Data) > 0 {
		sm.cmds = strings.Split(string(s.Data), ",")
	}
	return sm
}

type member struct {
	id   peer.ID
	cfg  Config
	core *Core // nil while crashed
	disk *memDisk
	sm   stateMachine
	// snapshots taken by compact, by slot: what the SnapshotSource serves.
	lastCommit uint64 // for the monotonic-commit check, per incarnation
}

// SnapshotInfo and SnapshotChunk serve the snapshot the member's disk holds.
func (m *member) SnapshotInfo(slot uint64) (SnapshotInfo, error) {
	if m.disk.snap.Meta.Slot != slot {
		return SnapshotInfo{}, fmt.Errorf("no snapshot at %d (have %d)", slot, m.disk.snap.Meta.Slot)
	}
	return SnapshotInfo{TotalBytes: uint64(len(m.disk.snap.Data)), Checksum: ChecksumBytes(m.disk.snap.Data)}, nil
}

func (m *member) SnapshotChunk(slot, offset uint64, n int) ([]byte, error) {
	if m.disk.snap.Meta.Slot != slot {
		return nil, fmt.Errorf("no snapshot at %d (have %d)", slot, m.disk.snap.Meta.Slot)
	}
	return m.disk.snap.Data[offset : offset+uint64(n)], nil
}

type cluster struct {
	seed    uint64
	base    Config // template for members' configs
	members map[peer.ID]*member
	net     []Message
	// groups is the current partition: members of different groups cannot
	// talk. nil means fully connected.
	groups map[peer.ID]int

	// Safety checks across the run.
	chosen     map[uint64]Entry   // slot -> the value applied there first
	leaders    map[Ballot]peer.ID // ballot -> the member that led it
	violations []string
	out        *strings.Builder // transcript; nil to run quietly
	// processReadyHook, if set, sees each Ready before it is carried out.
	processReadyHook func(Ready)
}

func newCluster(seed uint64, out *strings.Builder) *cluster {
	base := DefaultConfig(0, peer.Set{}, nil)
	base.ElectionTicks = 10
	base.HeartbeatTicks = 1
	return &cluster{
		seed: seed, base: base, members: map[peer.ID]*member{},
		chosen: map[uint64]Entry{}, leaders: map[Ballot]peer.ID{}, out: out,
	}
}

func (c *cluster) printf(format string, args ...any) {
	if c.out != nil {
		fmt.Fprintf(c.out, format, args...)
	}
}

func (c *cluster) ids() []peer.ID {
	ids := make([]peer.ID, 0, len(c.members))
	for id := range c.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// addMember creates a member with bootstrap membership boot (empty for one
// that joins later).
func (c *cluster) addMember(id peer.ID, boot peer.Set) error {
	if c.members[id] != nil {
		return fmt.Errorf("member %s exists", id)
	}
	m := &member{id: id, disk: &memDisk{}}
	m.cfg = c.base
	m.cfg.ID = id
	m.cfg.Members = boot
	m.cfg.Snapshots = m
	m.cfg.Rand = rand.New(rand.NewPCG(c.seed, uint64(id)))
	core, err := New(m.cfg, Restored{})
	if err != nil {
		return err
	}
	m.core = core
	c.members[id] = m
	return nil
}

func (c *cluster) crash(id peer.ID) {
	m := c.members[id]
	m.core = nil
	m.sm = stateMachine{}
}

func (c *cluster) restart(id peer.ID) error {
	m := c.members[id]
	if m.core != nil {
		return fmt.Errorf("member %s is up", id)
	}
	// Each life draws other timeouts, as a real restart would.
	m.cfg.Rand = rand.New(rand.NewPCG(c.seed+uint64(len(c.violations))+m.disk.hs.Commit+7, uint64(id)))
	m.disk.recv = nil // the shell discards a partly received snapshot
	core, err := New(m.cfg, Restored{HardState: m.disk.hs, Entries: cloneEntries(m.disk.entries), Snapshot: m.disk.snap.Meta})
	if err != nil {
		return err
	}
	m.core = core
	m.sm = restoreSM(m.disk.snap)
	m.lastCommit = core.Status().Commit
	return nil
}

func (c *cluster) connected(from, to peer.ID) bool {
	if c.groups == nil {
		return true
	}
	return c.groups[from] == c.groups[to]
}

// processReady carries out the Ready contract for one member.
func (c *cluster) processReady(id peer.ID) {
	m := c.members[id]
	rd := m.core.Ready()
	if c.processReadyHook != nil {
		c.processReadyHook(rd)
	}
	if rd.HardState != nil {
		c.printf("%s: persist %s\n", id, *rd.HardState)
	}
	for _, ch := range rd.SnapshotChunks {
		c.printf("%s: write snapshot %d bytes %d..%d\n", id, ch.Meta.Slot, ch.Offset, ch.Offset+uint64(len(ch.Data)))
	}
	if rd.Snapshot != nil {
		c.printf("%s: persist snapshot %s\n", id, rd.Snapshot)
	}
	if rd.EntriesFrom != 0 {
		c.printf("%s: persist log from %d: %s\n", id, rd.EntriesFrom, entriesString(rd.Entries))
	}
	m.disk.persist(rd)
	for _, msg := range rd.Messages {
		c.printf("%s: send %s\n", id, msg)
		c.net = append(c.net, msg)
	}
	if rd.Snapshot != nil {
		m.sm = restoreSM(m.disk.snap)
		c.printf("%s: install snapshot at %d\n", id, rd.Snapshot.Slot)
	}
	for _, e := range rd.Committed {
		c.apply(m, e)
	}
	if len(rd.Committed) > 0 {
		c.printf("%s: apply %s\n", id, entriesString(rd.Committed))
	}
	for _, rs := range rd.ReadStates {
		// Duty 4: serve once applied >= Index; here everything committed
		// was just applied, so it can be served at once.
		c.printf("%s: read-state ctx=%q index=%d (applied %d)\n", id, rs.Ctx, rs.Index, m.sm.applied)
	}
	m.core.Advance(rd)
	c.check(m)
}

// apply applies one committed entry and checks that no other member applied
// a different value at that slot.
func (c *cluster) apply(m *member, e Entry) {
	if e.Slot != m.sm.applied+1 {
		c.violations = append(c.violations, fmt.Sprintf("member %s: applied slot %d after %d", m.id, e.Slot, m.sm.applied))
	}
	m.sm.applied = e.Slot
	if e.Type == EntryNormal {
		m.sm.cmds = append(m.sm.cmds, fmt.Sprintf("%d:%s", e.Slot, e.Data))
	}
	if prev, ok := c.chosen[e.Slot]; ok {
		if prev.Type != e.Type || string(prev.Data) != string(e.Data) {
			c.violations = append(c.violations, fmt.Sprintf("slot %d: member %s applied %s, another applied %s", e.Slot, m.id, e, prev))
		}
	} else {
		c.chosen[e.Slot] = Entry{Slot: e.Slot, Type: e.Type, Data: e.Data}
	}
}

// check runs the per-step safety checks on one member.
func (c *cluster) check(m *member) {
	st := m.core.Status()
	if st.Commit < m.lastCommit {
		c.violations = append(c.violations, fmt.Sprintf("member %s: commit went from %d to %d", m.id, m.lastCommit, st.Commit))
	}
	m.lastCommit = st.Commit
	if st.Role == Leader {
		if other, ok := c.leaders[st.Promised]; ok && other != m.id {
			c.violations = append(c.violations, fmt.Sprintf("ballot %s led by %s and %s", st.Promised, other, m.id))
		}
		c.leaders[st.Promised] = m.id
	}
}

// deliver hands the in-flight messages that match to their recipients (or
// drops them). It reports how many it handled.
func (c *cluster) deliver(from, to peer.ID, drop bool) int {
	return c.deliverHow(from, to, drop, false, 0)
}

// deliverHow is deliver, of at most n messages if n > 0; with corrupt, the
// data of every snapshot chunk delivered has one bit flipped on the way.
func (c *cluster) deliverHow(from, to peer.ID, drop, corrupt bool, n int) int {
	var keep, take []Message
	for _, msg := range c.net {
		if (from == peer.None || msg.From == from) && (to == peer.None || msg.To == to) && (n <= 0 || len(take) < n) {
			take = append(take, msg)
		} else {
			keep = append(keep, msg)
		}
	}
	c.net = keep
	for _, msg := range take {
		if corrupt && msg.Chunk != nil && len(msg.Chunk.Data) > 0 {
			ch := *msg.Chunk
			ch.Data = bytes.Clone(ch.Data)
			ch.Data[0] ^= 0x10
			msg.Chunk = &ch
			c.printf("corrupted on the way: ")
		}
		c.deliverOne(msg, drop)
	}
	return len(take)
}

func (c *cluster) deliverOne(msg Message, drop bool) {
	rcpt := c.members[msg.To]
	switch {
	case drop:
		c.printf("dropped %s\n", msg)
	case rcpt == nil || rcpt.core == nil:
		c.printf("lost (down) %s\n", msg)
	case !c.connected(msg.From, msg.To):
		c.printf("lost (partition) %s\n", msg)
	default:
		// Through the codec, as on a real network.
		dec, err := DecodeMessage(EncodeMessage(msg), DefaultLimits)
		if err != nil {
			c.violations = append(c.violations, fmt.Sprintf("codec: %v", err))
			return
		}
		c.printf("%s\n", msg)
		if err := rcpt.core.Step(dec); err != nil {
			c.printf("  step error: %v\n", err)
		}
		c.check(rcpt)
	}
}

// stabilize processes Readys and delivers messages until nothing moves.
func (c *cluster) stabilize() error { return c.stabilizeWith(c.processReady) }

func (c *cluster) stabilizeWith(processReady func(peer.ID)) error {
	for range 10000 {
		moved := false
		for _, id := range c.ids() {
			if m := c.members[id]; m.core != nil && m.core.HasReady() {
				processReady(id)
				moved = true
			}
		}
		if len(c.net) > 0 {
			c.deliver(peer.None, peer.None, false)
			moved = true
		}
		if !moved {
			return nil
		}
	}
	return errors.New("stabilize: no quiescence after 10000 rounds")
}

func (c *cluster) statusLine(id peer.ID) string {
	m := c.members[id]
	if m.core == nil {
		return fmt.Sprintf("%s: down (disk: %s, %d entries, snapshot at %d)", id, m.disk.hs, len(m.disk.entries), m.disk.snap.Meta.Slot)
	}
	st := m.core.Status()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s promised=%s leader=%s commit=%d applied=%d last=%d snap=%d members=%v",
		id, st.Role, st.Promised, st.Leader, st.Commit, st.Applied, st.LastSlot, st.SnapshotSlot, st.Members)
	for _, p := range st.Progress {
		fmt.Fprintf(&b, "\n   %s: match=%d next=%d %s", p.ID, p.Match, p.Next, p.State)
	}
	return b.String()
}

func (c *cluster) logLine(id peer.ID) string {
	m := c.members[id]
	if m.core == nil {
		return fmt.Sprintf("%s: down; disk snap=%d log=%s", id, m.disk.snap.Meta.Slot, entriesString(m.disk.entries))
	}
	st := m.core.Status()
	return fmt.Sprintf("%s: snap=%d log=%s\n%s: applied=%v", id, st.SnapshotSlot,
		entriesString(m.core.Entries(0, st.LastSlot)), id, m.sm.cmds)
}

// parseIDs parses the positional arguments of a command as member ids.
func parseIDs(args []string) ([]peer.ID, error) {
	out := make([]peer.ID, 0, len(args))
	for _, a := range args {
		v, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad member id %q", a)
		}
		out = append(out, peer.ID(v))
	}
	return out, nil
}
