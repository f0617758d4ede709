package sim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime/debug"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vfs"
)

// Simulated time. A step is the simulator's unit; members tick every
// stepsPerTickMin..stepsPerTickMax steps, each at its own fixed rate drawn
// from the seed (clock drift of up to ±10 %), and messages take steps.
const (
	stepsPerTickMin = 9
	stepsPerTickMax = 11
	stepsPerTick    = 10 // nominal, to convert tick budgets to steps
)

// The fault schedule of the faulty phase. Rates are "one in N steps" on
// average; every fault is bounded by what Paxos claims to survive.
const (
	crashEverySteps     = 250
	diskFaultEverySteps = 200
	partitionEverySteps = 600
	// restartDelayStepsMin/Max: how long a crashed member stays down.
	restartDelayStepsMin = 20
	restartDelayStepsMax = 1000
	// partitionStepsMin/Max: how long one partition lasts.
	partitionStepsMin = 100
	partitionStepsMax = 2500
	// corruptPct: the share of crashes after which a bit of a synced WAL
	// record is flipped (that member is then lost for the run); at most
	// corruptionsMax per run.
	corruptPct     = 8
	corruptionsMax = 1
	// diskFaultAfterMax: an armed fault lets up to this many matching
	// operations through before it fires.
	diskFaultAfterMax = 8
	// powerCutAfterMax: a power cut comes within this many fsyncs, while
	// the situation that armed it (a partition, a leader change) lasts.
	powerCutAfterMax = 2
	// tornBytesMax: a torn write writes at most this many bytes.
	tornBytesMax = 300
)

// tuning is the configuration of the code under test for one run, drawn
// from the seed so that sweeps cover the corners of the config space: a
// heartbeat every tick or every few, one-entry batches (every Accept a
// probe-sized message) or large ones, shallow or deep pipelines, a
// proposal queue small enough for back-pressure to bite, and WAL segments
// small enough to roll over and be removed by compaction many times a run.
type tuning struct {
	electionTicks      int
	heartbeatTicks     int
	batchEntriesMax    int
	inflightEntriesMax int
	proposalQueueMax   int
	readQueueMax       int
	segmentBytesMax    int64
	// Snapshots of the simulated store are a few hundred bytes to a few
	// KiB: chunks this small make most transfers span many chunks.
	snapshotChunkBytes int
	snapshotWindow     int
}

func drawTuning(rng *rand.Rand) tuning {
	t := tuning{electionTicks: 6 + rng.IntN(10)}
	t.heartbeatTicks = 1 + rng.IntN(min(3, t.electionTicks/3))
	t.batchEntriesMax = []int{1, 4, 16}[rng.IntN(3)]
	t.inflightEntriesMax = t.batchEntriesMax * []int{1, 4, 16}[rng.IntN(3)]
	t.proposalQueueMax = []int{8, 64}[rng.IntN(2)]
	t.readQueueMax = []int{4, 32}[rng.IntN(2)]
	// The largest Ready (a phase-1 recovery of a full proposal queue, or a
	// snapshot install's entries) is a few KiB; node splits larger ones.
	seg := rng.IntN(3)
	t.segmentBytesMax = []int64{16 << 10, 64 << 10, 256 << 10}[seg]
	// Derived from draws already made, so that adding them did not shift
	// the random stream (and every other choice) of each seed.
	t.snapshotChunkBytes = []int{32, 128, 1 << 20}[seg]
	t.snapshotWindow = 1 + t.readQueueMax%3
	return t
}

// apply sets the tuned fields of a member's core config.
func (t tuning) apply(cfg *paxos.Config) {
	cfg.ElectionTicks = t.electionTicks
	cfg.HeartbeatTicks = t.heartbeatTicks
	cfg.BatchEntriesMax = t.batchEntriesMax
	cfg.InflightEntriesMax = t.inflightEntriesMax
	cfg.ProposalQueueMax = t.proposalQueueMax
	cfg.ReadQueueMax = t.readQueueMax
	// Room for a full proposal queue plus the no-ops of a few failed
	// leaderships (paxos requires it to exceed ProposalQueueMax).
	cfg.PhaseOneEntriesMax = t.proposalQueueMax + 64
	cfg.SnapshotChunkBytes = t.snapshotChunkBytes
	cfg.SnapshotInflightChunksMax = t.snapshotWindow
}

type phase uint8

const (
	phaseFaulty phase = iota + 1
	phaseHeal
)

// chosenEntry is what the first member to apply a slot applied there.
type chosenEntry struct {
	set  bool
	typ  paxos.EntryType
	data string
	by   peer.ID
}

type stateAt struct {
	set  bool
	hash uint64
	by   peer.ID
}

// world is one run: members, network, clients, checkers, all driven by one
// goroutine from one seeded generator.
type world struct {
	opts       Options
	rng        *rand.Rand
	step       int64
	phase      phase
	members    []*member // index i holds member id i+1
	membersSet peer.Set
	net        *network
	tune       tuning
	clients    []*client
	tr         *tracer

	// Partition in force, and when it ends (0: none).
	partitionEnd int64
	corruptions  int

	// Checkers' state.
	chosen        []chosenEntry // by slot
	states        []stateAt     // by slot: state hash after applying it
	appliedValues map[string]bool
	history       []*opRecord
	clock         int64 // orders invocations and returns for porcupine
	failures      []Failure
	stats         Stats
	leaderID      peer.ID
}

// Run runs one simulated cluster for opts.Seed and checks it. It never
// panics: a panic of the code under test (a broken invariant) is reported
// as a failure of checker "panic".
func Run(opts Options) (res Result) {
	o, err := opts.withDefaults()
	res = Result{Seed: opts.Seed, Members: o.Members, Bugs: opts.Bugs}
	if err != nil {
		res.Failures = []Failure{{Checker: "options", Detail: err.Error()}}
		return res
	}
	w := newWorld(o)
	defer func() {
		if p := recover(); p != nil {
			w.failures = append(w.failures, Failure{Checker: "panic", Step: w.step,
				Detail: fmt.Sprintf("%v\n%s", p, debug.Stack())})
		}
		w.shutdown()
		w.stats.Steps = w.step
		res.TraceHash = w.tr.h.Sum64()
		res.Failures = w.failures
		res.Stats = w.stats
	}()
	w.run()
	return res
}

func newWorld(o Options) *world {
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed_c0de_1234_abcd))
	w := &world{opts: o, rng: rng, phase: phaseFaulty, tr: newTracer(o.Trace), appliedValues: map[string]bool{}}
	ids := make([]peer.ID, o.Members)
	for i := range ids {
		ids[i] = peer.ID(i + 1)
	}
	w.membersSet = peer.MustSet(ids...)
	w.net = newNetwork(o.Members, netConfig{
		lossPct:      rng.IntN(6),
		dupPct:       rng.IntN(4),
		delayStepMax: 2 + rng.Int64N(14),
		slowPct:      rng.IntN(6),
	})
	w.tune = drawTuning(rng)
	w.trace("seed %d members %d clients %d keys %d bugs %q net %+v tuning %+v", o.Seed, o.Members, o.Clients, o.Keys, o.Bugs, w.net.cfg, w.tune)
	for _, id := range ids {
		m := &member{
			id:             id,
			mem:            vfs.NewMem(),
			tickEverySteps: stepsPerTickMin + rng.Int64N(stepsPerTickMax-stepsPerTickMin+1),
			snapEveryAdds:  uint64(20 + rng.IntN(60)),
		}
		w.members = append(w.members, m)
		w.trace("%s ticks every %d steps, compacts every %d slots", id, m.tickEverySteps, m.snapEveryAdds)
	}
	for i := range o.Clients {
		w.clients = append(w.clients, &client{
			id:     uint32(i),
			leader: ids[rng.IntN(len(ids))],
		})
	}
	return w
}

func (w *world) trace(format string, args ...any) { w.tr.event(w.step, format, args...) }

// fail records a broken property.
func (w *world) fail(checker, format string, args ...any) {
	f := Failure{Checker: checker, Step: w.step, Detail: fmt.Sprintf(format, args...)}
	w.trace("FAIL %s", f)
	if len(w.failures) < failuresMax {
		w.failures = append(w.failures, f)
	}
}

// failuresMax bounds the failures one run records; the first is what
// matters.
const failuresMax = 20

func (w *world) shutdown() {
	for _, m := range w.members {
		if m.up {
			m.disk.Close()
			m.up = false
		}
	}
}

func (w *world) run() {
	for _, m := range w.members {
		if err := w.start(m); err != nil {
			w.fail("restart", "%s: first start: %v", m.id, err)
			return
		}
	}
	faultEnd := int64(w.opts.FaultTicks) * stepsPerTick
	var healEnd int64
	for ; ; w.step++ {
		if w.phase == phaseFaulty && w.step >= faultEnd {
			w.beginHeal()
			healEnd = w.step + int64(w.opts.HealTicksMax)*stepsPerTick
		}
		if w.phase == phaseHeal {
			if w.healed() {
				w.trace("healed: all operations finished, members converged")
				break
			}
			if w.step >= healEnd {
				w.reportNotHealed()
				break
			}
		}
		w.deliver()
		w.tick()
		w.runClients()
		if w.phase == phaseFaulty {
			w.nemesis()
		}
		w.restarts()
		for _, m := range w.members {
			if m.up {
				w.handleReady(m)
			}
		}
		w.noteLeader()
		if w.safetyBroken() {
			break // the first safety failure is the one to debug
		}
	}
	w.checkLinearizable()
}

func (w *world) safetyBroken() bool {
	for _, f := range w.failures {
		switch f.Checker {
		case "agreement", "state", "apply-order", "command", "panic", "disk", "codec", "durability":
			return true
		}
	}
	return false
}

// send puts a message on the network (paxos bytes, or a client message),
// with the run's loss, duplication, delay and reordering.
func (w *world) send(from, to endpoint, p []byte, cm *clientMsg) {
	w.stats.MessagesSent++
	cfg := w.net.cfg
	if w.phase == phaseFaulty && w.rng.IntN(100) < cfg.lossPct {
		w.stats.MessagesDropped++
		w.tr.message(w.step, "lose", from, to, p, cm)
		return
	}
	copies := 1
	if w.phase == phaseFaulty && w.rng.IntN(100) < cfg.dupPct {
		copies = 2
		w.stats.MessagesDuplicated++
	}
	for range copies {
		delay := 1 + w.rng.Int64N(cfg.delayStepMax)
		if w.phase == phaseFaulty && w.rng.IntN(100) < cfg.slowPct {
			delay = 1 + w.rng.Int64N(cfg.delayStepMax*slowFactor)
		}
		if !w.net.push(&envelope{at: w.step + delay, from: from, to: to, paxos: p, client: cm}) {
			w.stats.MessagesDropped++
		}
		w.tr.message(w.step, fmt.Sprintf("send+%d", delay), from, to, p, cm)
	}
}

// deliver hands every message due now to its receiver.
func (w *world) deliver() {
	for e := w.net.next(w.step); e != nil; e = w.net.next(w.step) {
		if e.to >= clientEndpointBase {
			w.clients[e.to-clientEndpointBase].receive(w, e.from, *e.client)
			continue
		}
		m := w.members[e.to-1]
		if !m.up && e.client != nil {
			// No process listens: the client's connection is refused at
			// once, so it knows the request was not proposed.
			rep := *e.client
			rep.Kind = repRefused
			w.send(e.to, e.from, nil, &rep)
			continue
		}
		if !m.up || w.net.cut(e.from, e.to) {
			w.stats.MessagesDropped++
			w.tr.message(w.step, "drop", e.from, e.to, e.paxos, e.client)
			continue
		}
		if e.paxos != nil {
			w.deliverPaxos(m, e)
		} else {
			w.deliverRequest(m, e)
		}
	}
}

func (w *world) tick() {
	for _, m := range w.members {
		if m.up && w.step >= m.nextTick {
			m.core.Tick()
			m.nextTick += m.tickEverySteps
			w.stats.Ticks++
		}
	}
}

func (w *world) restarts() {
	for _, m := range w.members {
		if !m.up && !m.lost && (w.phase == phaseHeal || w.step >= m.restartAt) {
			w.restart(m)
		}
	}
}

func (w *world) noteLeader() {
	l := w.leader()
	if l != nil && l.id != w.leaderID {
		w.stats.LeaderChanges++
		w.leaderID = l.id
		w.trace("leader is now %s (%s)", l.id, l.core.Status().Promised)
	}
}

// ---- nemesis ----

// faultBudget is how many members may be down (crashed, lost, or with a
// disk fault armed) at once: a minority, what Paxos survives.
func (w *world) faultBudget() int { return (w.opts.Members - 1) / 2 }

func (w *world) nemesis() {
	if w.rng.IntN(crashEverySteps) == 0 {
		w.nemesisCrash()
	}
	if w.rng.IntN(diskFaultEverySteps) == 0 {
		w.nemesisDiskFault()
	}
	if w.partitionEnd != 0 && w.step >= w.partitionEnd {
		w.net.heal()
		w.partitionEnd = 0
		w.trace("partition healed")
	}
	if w.partitionEnd == 0 && w.rng.IntN(partitionEverySteps) == 0 {
		w.nemesisPartition()
	}
}

// pickVictim picks an up member without an armed fault (with
// preferLeader, half the time the leader), or nil if the budget is spent.
func (w *world) pickVictim(preferLeader bool) *member {
	if w.atRisk()+1 > w.faultBudget() {
		return nil
	}
	if l := w.leader(); preferLeader && l != nil && !l.faultArmed && w.rng.IntN(2) == 0 {
		return l
	}
	var cands []*member
	for _, m := range w.members {
		if m.up && !m.faultArmed {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[w.rng.IntN(len(cands))]
}

func (w *world) nemesisCrash() {
	m := w.pickVictim(true)
	if m == nil {
		return
	}
	w.crash(m, "nemesis")
	// A bit flip on synced data makes the member refuse to start: it is
	// lost for the run, so it must fit the budget for good.
	lost := 0
	for _, o := range w.members {
		if o.lost {
			lost++
		}
	}
	if w.corruptions < corruptionsMax && lost+1 <= w.faultBudget() && w.rng.IntN(100) < corruptPct {
		if w.corruptSynced(m) {
			w.corruptions++
			w.stats.Corruptions++
			m.corruptPending = true
		}
	}
}

func (w *world) nemesisDiskFault() {
	// Disk faults hit any member alike: acceptors are the ones whose
	// acknowledgements claim durability.
	m := w.pickVictim(false)
	if m == nil {
		return
	}
	after := w.rng.IntN(diskFaultAfterMax + 1)
	m.faultArmed = true
	switch w.rng.IntN(3) {
	case 0:
		after = w.rng.IntN(powerCutAfterMax + 1)
		w.armPowerCut(m, after)
		w.stats.PowerCuts++
		w.trace("%s arm power cut before sync %d", m.id, after)
		return
	case 1:
		torn := 1 + w.rng.IntN(tornBytesMax)
		m.mem.InjectFault(vfs.Fault{Op: vfs.OpWrite, After: after, Times: 1, TornBytes: torn})
		w.stats.TornWriteFaults++
		w.trace("%s arm torn write (%d bytes) after %d writes", m.id, torn, after)
		return
	}
	m.mem.InjectFault(vfs.Fault{Op: vfs.OpSync, After: after, Times: 1})
	w.stats.FsyncFaults++
	w.trace("%s arm fsync failure after %d syncs", m.id, after)
}

func (w *world) nemesisPartition() {
	n := w.opts.Members
	w.partitionEnd = w.step + partitionStepsMin + w.rng.Int64N(partitionStepsMax-partitionStepsMin)
	w.stats.Partitions++
	switch w.rng.IntN(4) {
	case 3: // bridge: two sides that cannot talk, one member sees both
		// (Jepsen's "bridge"): two leaders can each reach a majority
		// through the bridge, and the bridge must keep their ballots apart.
		bridge := 1 + w.rng.IntN(n)
		var others []int
		for i := 1; i <= n; i++ {
			if i != bridge {
				others = append(others, i)
			}
		}
		side := make([]bool, n+1)
		perm := w.rng.Perm(len(others))
		for _, k := range perm[:1+w.rng.IntN(len(others)-1)] { // neither side empty
			side[others[k]] = true
		}
		for a := 1; a <= n; a++ {
			for b := 1; b <= n; b++ {
				w.net.blocked[a][b] = a != bridge && b != bridge && side[a] != side[b]
			}
		}
		w.trace("partition: bridge %d between %v until %d", bridge, side[1:], w.partitionEnd)
	case 0: // symmetric split: a random side against the rest
		side := make([]bool, n+1)
		for i := 1; i <= n; i++ {
			side[i] = w.rng.IntN(2) == 0
		}
		for a := 1; a <= n; a++ {
			for b := 1; b <= n; b++ {
				w.net.blocked[a][b] = side[a] != side[b]
			}
		}
		w.trace("partition: split %v until %d", side[1:], w.partitionEnd)
	case 1: // isolate the leader (or member 1)
		x := 1
		if l := w.leader(); l != nil {
			x = int(l.id)
		}
		for o := 1; o <= n; o++ {
			if o != x {
				w.net.blocked[x][o], w.net.blocked[o][x] = true, true
			}
		}
		w.trace("partition: isolate %d until %d", x, w.partitionEnd)
	default: // one-way: some directed links cut
		for range 1 + w.rng.IntN(n) {
			a, b := 1+w.rng.IntN(n), 1+w.rng.IntN(n)
			if a != b {
				w.net.blocked[a][b] = true
				w.trace("partition: one-way %d -/-> %d until %d", a, b, w.partitionEnd)
			}
		}
	}
}

// corruptSynced flips one bit of a record of the crashed member's WAL that
// recovery can prove was synced: one in a batch followed by a later batch in
// the same segment (package wal: only the last batch can be torn, so damage
// before a later good batch is corruption, not a torn tail). It reports
// whether it found such a record.
func (w *world) corruptSynced(m *member) bool {
	segs := walSegments(m.mem)
	for _, i := range w.rng.Perm(len(segs)) {
		path := dataDir + "/wal/" + segs[i]
		off, ok := w.pickSyncedOffset(m.mem, path)
		if !ok {
			continue
		}
		mask := byte(1) << w.rng.IntN(8)
		if err := m.mem.Corrupt(path, off, mask); err != nil {
			w.fail("disk", "corrupt %s at %d: %v", path, off, err)
			return false
		}
		w.trace("%s bit flip in %s at byte %d (mask %#x)", m.id, path, off, mask)
		return true
	}
	return false
}

// WAL segment layout (package wal): a 24-byte header, then frames of a
// 21-byte header (CRC32C 4, length 4, type 1, index 8, batch position 4)
// and the data.
const (
	walSegmentHeaderBytes = 24
	walFrameHeaderBytes   = 21
)

// pickSyncedOffset returns the offset of a byte inside a frame that lies in
// a batch followed by another batch in the same file.
func (w *world) pickSyncedOffset(fsys *vfs.Mem, path string) (int64, bool) {
	f, err := fsys.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil || size <= walSegmentHeaderBytes {
		return 0, false
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return 0, false
	}
	type frame struct{ off, end int64 }
	var frames []frame
	lastBatchStart := -1
	for off := int64(walSegmentHeaderBytes); off+walFrameHeaderBytes <= size; {
		n := int64(binary.BigEndian.Uint32(buf[off+4:]))
		end := off + walFrameHeaderBytes + n
		if end > size {
			break
		}
		if binary.BigEndian.Uint32(buf[off+17:]) == 0 {
			lastBatchStart = len(frames)
		}
		frames = append(frames, frame{off, end})
		off = end
	}
	if lastBatchStart <= 0 {
		return 0, false // one batch only: damage to it looks like a torn tail
	}
	fr := frames[w.rng.IntN(lastBatchStart)]
	return fr.off + w.rng.Int64N(fr.end-fr.off), true
}

// ---- heal and liveness ----

// beginHeal stops every fault: partitions heal, no more loss, duplication
// or slow messages, armed disk faults are cleared and crashed members
// restart (those that can). Clients finish what they have in progress,
// then each runs a put and a get that must succeed.
func (w *world) beginHeal() {
	w.phase = phaseHeal
	w.net.heal()
	w.partitionEnd = 0
	for _, m := range w.members {
		m.mem.ClearFaults()
		m.faultArmed, m.cutArmed = false, false
	}
	for _, c := range w.clients {
		c.livenessLeft = livenessOps
	}
	w.trace("faults stop: heal")
}

// healed reports whether the liveness phase reached its goal: every client
// finished its liveness operations and all live members applied the same
// slot, the highest commit, with the same state.
func (w *world) healed() bool {
	for _, c := range w.clients {
		if c.op != nil || c.livenessLeft > 0 {
			return false
		}
	}
	var commit uint64
	up := w.upMembers()
	for _, m := range up {
		commit = max(commit, m.core.Status().Commit)
	}
	for _, m := range up {
		if m.kv.applied != commit || m.kv.stateHash() != up[0].kv.stateHash() {
			return false
		}
	}
	return w.leader() != nil
}

func (w *world) reportNotHealed() {
	if w.leader() == nil {
		w.fail("liveness", "no leader %d ticks after the faults stopped", w.opts.HealTicksMax)
	}
	for _, c := range w.clients {
		if c.op != nil || c.livenessLeft > 0 {
			w.fail("liveness", "client c%d: %d liveness operations left, in progress: %v", c.id, c.livenessLeft, c.op)
		}
	}
	for _, m := range w.upMembers() {
		st := m.core.Status()
		w.fail("convergence", "%s: role %s, commit %d, applied %d, state %016x", m.id, st.Role, st.Commit, m.kv.applied, m.kv.stateHash())
	}
}

// ---- cross-member safety ----

// checkChosen compares the entry m applies at a slot with what every other
// member applied there: consensus means one value per slot.
func (w *world) checkChosen(m *member, e paxos.Entry) {
	for uint64(len(w.chosen)) <= e.Slot {
		w.chosen = append(w.chosen, chosenEntry{})
	}
	w.stats.MaxSlot = max(w.stats.MaxSlot, e.Slot)
	c := &w.chosen[e.Slot]
	if !c.set {
		*c = chosenEntry{set: true, typ: e.Type, data: string(e.Data), by: m.id}
		return
	}
	if c.typ != e.Type || c.data != string(e.Data) {
		w.fail("agreement", "slot %d: %s applied %s %q, %s applied %s %q", e.Slot, c.by, c.typ, c.data, m.id, e.Type, e.Data)
	}
}

// checkState compares m's state after its applied slot with every other
// member's state after that slot (this also checks installed snapshots).
func (w *world) checkState(m *member) {
	slot := m.kv.applied
	for uint64(len(w.states)) <= slot {
		w.states = append(w.states, stateAt{})
	}
	h := m.kv.stateHash()
	s := &w.states[slot]
	if !s.set {
		*s = stateAt{set: true, hash: h, by: m.id}
		return
	}
	if s.hash != h {
		w.fail("state", "after slot %d: %s has state %016x, %s has %016x", slot, s.by, s.hash, m.id, h)
	}
}
