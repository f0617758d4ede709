package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/node"
	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vfs"
	"github.com/chorus-project/chorus/internal/wal"
)

// Member state and disk layout.
const (
	dataDir   = "/data"
	clusterID = 0xc40705
	// readyRoundsMax bounds how often one member's Ready loop may go round
	// in one step. A core hands out at most a few Readys in a row (the
	// Advance of one may make a commit that the next carries); more means
	// the core never settles, which is a bug.
	readyRoundsMax = 64
)

// member is one simulated process: a paxos core and its node.Disk on its own
// in-memory file system, and the key-value store it applies to.
type member struct {
	id  peer.ID
	mem *vfs.Mem // survives crashes (replaced by its crash clone)

	// Alive only while up; nil while down.
	disk *node.Disk
	core *paxos.Core
	kv   *kvStore

	up bool
	// lost: the member refused to start (corrupted synced data) and stays
	// down for the rest of the run.
	lost        bool
	incarnation int
	restartAt   int64
	// faultArmed: a disk fault is armed on mem; it counts against the
	// crash budget until it fires or the faults are cleared.
	faultArmed bool
	// corruptPending: a bit flip was planted on the crashed disk.
	corruptPending bool
	// Power cut at an fsync: when syncsToCut reaches 0 the Mem's hook
	// takes the crash clone just before that sync (cutRand decides what
	// un-synced data survives), and cut is set. From then on the member is
	// dead: nothing it sends or answers leaves, and once the call into the
	// disk returns, the simulator finishes the crash with the clone.
	syncsToCut int
	cutArmed   bool
	cut        bool
	cutRand    *rand.Rand
	cutClone   *vfs.Mem

	// savedHS is what the member's last Save that returned without error
	// and without a power cut made durable (node.Disk.DurableHardState), so
	// every later start must restore at least it.
	savedHS paxos.HardState

	tickEverySteps int64 // this member's clock rate (drift)
	nextTick       int64
	snapEveryAdds  uint64 // compact after this many applied slots

	// Requests from clients in progress on this incarnation.
	pendingPuts  map[putKey]endpoint
	pendingReads map[string]clientMsg // by read ctx
	readsReady   []readReady          // released, waiting for apply
	readCount    uint64
}

type putKey struct {
	client uint32
	seq    uint64
}

type readReady struct {
	index uint64
	req   clientMsg
}

// kvApplier adapts a member's store to node.Applier and runs the
// cross-member checks on every slot it applies.
type kvApplier struct {
	w *world
	m *member
}

// Restore implements node.Applier.
func (a kvApplier) Restore(meta paxos.SnapshotMeta, r io.Reader) error {
	p, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	kv, err := restoreKV(p, meta)
	if err != nil {
		return err
	}
	a.m.kv = kv
	a.w.stats.SnapshotsInstalled++
	a.w.trace("%s install snapshot %s", a.m.id, meta)
	a.w.checkState(a.m)
	return nil
}

// Apply implements node.Applier.
func (a kvApplier) Apply(e paxos.Entry) {
	w, m := a.w, a.m
	if e.Slot != m.kv.applied+1 {
		w.fail("apply-order", "%s applied slot %d after %d", m.id, e.Slot, m.kv.applied)
	}
	w.checkChosen(m, e)
	c, took, err := m.kv.apply(e)
	if err != nil {
		w.fail("command", "%s: %v", m.id, err)
		return
	}
	w.checkState(m)
	if c == nil {
		return
	}
	if took {
		w.appliedValues[c.value] = true
	}
	// A duplicate that did not take effect still answers the request if
	// the put it repeats did (the client re-sent it here).
	if to, ok := m.pendingPuts[putKey{c.client, c.seq}]; ok && m.kv.done(c.client, c.seq) {
		delete(m.pendingPuts, putKey{c.client, c.seq})
		if m.cut {
			return // the process died at an fsync: nothing leaves it
		}
		w.send(endpoint(m.id), to, nil, &clientMsg{Kind: repOK, Client: c.client, Seq: c.seq, Key: c.key, Value: c.value})
	}
}

// start opens the member's disk and builds its core from what the disk
// holds, as a restarted process would.
func (w *world) start(m *member) error {
	disk, rec, err := node.OpenDisk(node.DiskOptions{
		FS:       m.mem,
		Dir:      dataDir,
		Identity: node.Identity{ClusterID: clusterID, MemberID: m.id},
		WAL:      wal.Options{SegmentBytesMax: w.tune.segmentBytesMax},
		Bugs:     node.DiskBugs{ForgetPromise: w.opts.Bugs.ForgetPromise},
	})
	if err != nil {
		return err
	}
	cfg := paxos.DefaultConfig(m.id, w.membersSet, rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64())))
	w.tune.apply(&cfg)
	cfg.Snapshots = disk
	cfg.Bugs = paxos.PlantedBugs{
		CommitOneShort:         w.opts.Bugs.CommitOneShort,
		ReadWithoutQuorumRound: w.opts.Bugs.ReadWithoutQuorumRound,
	}
	core, err := paxos.New(cfg, rec.Restored)
	if err != nil {
		disk.Close()
		return fmt.Errorf("paxos.New: %w", err)
	}
	kv, err := restoreKV(nil, rec.Restored.Snapshot)
	if err == nil {
		err = disk.ReadSnapshot(func(meta paxos.SnapshotMeta, r io.Reader) error {
			p, err := io.ReadAll(r)
			if err == nil {
				kv, err = restoreKV(p, meta)
			}
			return err
		})
	}
	if err != nil {
		disk.Close()
		return err
	}
	m.disk, m.core, m.kv, m.up = disk, core, kv, true
	m.incarnation++
	m.pendingPuts = map[putKey]endpoint{}
	m.pendingReads = map[string]clientMsg{}
	m.readsReady = nil
	m.nextTick = w.step + 1 + w.rng.Int64N(m.tickEverySteps)
	hs := rec.Restored.HardState
	w.trace("%s start #%d: %s, %d entries, snapshot %d, torn tail %v", m.id, m.incarnation, hs,
		len(rec.Restored.Entries), rec.Restored.Snapshot.Slot, rec.WAL.TornTail)
	if hs.Promised.Less(m.savedHS.Promised) || hs.Commit < m.savedHS.Commit {
		// A promise forgotten is a promise broken (paxos.HardState).
		w.fail("durability", "%s restarted with %s, but had durably saved %s", m.id, hs, m.savedHS)
	}
	if rec.Restored.Snapshot.Slot > 0 {
		w.checkState(m)
	}
	return nil
}

// crash cuts the member's power: the WAL is closed (its goroutine stops),
// the core, store and requests in progress are gone, and the disk becomes
// what a power cut leaves of it: un-synced writes lost or torn.
func (w *world) crash(m *member, why string) {
	invariant.Check(m.up, "crash of %s, which is down", m.id)
	if err := m.disk.Close(); err != nil {
		w.trace("%s close: %v", m.id, err)
	}
	if m.cut {
		m.mem = m.cutClone
	} else {
		crng := rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))
		m.mem = m.mem.CrashClone(vfs.CrashConfig{Rand: crng})
	}
	m.cutArmed, m.cut, m.cutClone, m.cutRand = false, false, nil, nil
	m.disk, m.core, m.kv, m.up = nil, nil, nil, false
	m.pendingPuts, m.pendingReads, m.readsReady = nil, nil, nil
	m.faultArmed = false
	m.restartAt = w.step + restartDelayStepsMin + w.rng.Int64N(restartDelayStepsMax-restartDelayStepsMin)
	w.stats.Crashes++
	w.trace("%s crash (%s), restart at %d", m.id, why, m.restartAt)
}

// restart starts a crashed member again. A member whose synced data was
// damaged must refuse to start with a corruption error; it then stays down
// for the rest of the run (repairing it from a peer is out of scope).
func (w *world) restart(m *member) {
	err := w.start(m)
	corrupt := m.corruptPending
	m.corruptPending = false
	switch {
	case err == nil:
		w.stats.Restarts++
		if corrupt {
			// The flip hit a record recovery does not read again (one
			// below the log's front, in a live segment): harmless.
			w.trace("%s started despite the planted bit flip", m.id)
		}
	case corrupt && (errors.Is(err, wal.ErrCorrupt) || errors.Is(err, node.ErrCorruptState)):
		w.stats.CorruptionsDetected++
		m.lost = true
		w.trace("%s refuses to start: %v", m.id, err)
	default:
		w.fail("restart", "%s cannot restart: %v", m.id, err)
		m.lost = true
	}
}

// handleReady drives the member's core through node.HandleReady until it
// has nothing more to hand out. A disk error crashes the member, as a real
// one stops after a failed fsync.
func (w *world) handleReady(m *member) {
	for round := 0; m.up && m.core.HasReady(); round++ {
		if round == readyRoundsMax {
			w.fail("liveness", "%s: core still has a Ready after %d rounds in one step", m.id, round)
			return
		}
		rd := m.core.Ready()
		w.traceReady(m, rd)
		send := func(msgs []paxos.Message) {
			if m.cut {
				w.trace("%s: %d messages lost in the power cut", m.id, len(msgs))
				return
			}
			for _, msg := range msgs {
				w.send(endpoint(m.id), endpoint(msg.To), paxos.EncodeMessage(msg), nil)
			}
		}
		reads, err := node.HandleReady(context.Background(), m.core, rd, m.disk, send, kvApplier{w, m},
			node.ReadyBugs{SendBeforePersist: w.opts.Bugs.SendBeforePersist})
		if m.cut {
			w.finishCut(m)
			return
		}
		if err != nil {
			w.diskError(m, "handle ready", err)
			return
		}
		m.savedHS = m.disk.DurableHardState()
		for _, rs := range reads {
			if req, ok := m.pendingReads[string(rs.Ctx)]; ok {
				delete(m.pendingReads, string(rs.Ctx))
				m.readsReady = append(m.readsReady, readReady{index: rs.Index, req: req})
			}
		}
		w.serveReads(m)
		w.maybeCompact(m)
	}
}

// armPowerCut makes the member lose power just before its n-th next fsync
// (n from 0): the moment a shell that sends before persisting has already
// let its acknowledgements out. The hook runs on the WAL's flusher goroutine
// while the simulator's goroutine waits in Save or Compact, so it is still
// one thread of control.
func (w *world) armPowerCut(m *member, n int) {
	m.syncsToCut, m.cutArmed, m.faultArmed = n, true, true
	m.cutRand = nil // keep exactly what was synced: the batch being synced is lost
	if w.rng.IntN(2) == 0 {
		// ... or, as a kernel may have flushed some pages already, keep,
		// lose or tear each un-synced write.
		m.cutRand = rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))
	}
	fsys := m.mem
	fsys.SetHook(func(op vfs.Op, _ string) {
		if op != vfs.OpSync || !m.cutArmed || m.cut {
			return
		}
		if m.syncsToCut > 0 {
			m.syncsToCut--
			return
		}
		m.cutClone = fsys.CrashClone(vfs.CrashConfig{Rand: m.cutRand})
		m.cut = true
	})
}

// finishCut completes a power cut that happened inside a disk call.
func (w *world) finishCut(m *member) {
	w.stats.DiskFaultCrashes++
	w.crash(m, "power cut at fsync")
}

// diskError handles an error from the member's disk: an injected fault
// crashes the member; anything else is a failure of the code under test.
func (w *world) diskError(m *member, op string, err error) {
	if errors.Is(err, vfs.ErrInjected) {
		w.stats.DiskFaultCrashes++
		w.crash(m, fmt.Sprintf("%s: %v", op, err))
		return
	}
	w.fail("disk", "%s %s: %v", m.id, op, err)
	w.crash(m, "disk error")
}

func (w *world) traceReady(m *member, rd paxos.Ready) {
	if rd.HardState != nil {
		w.trace("%s persist %s", m.id, *rd.HardState)
	}
	for _, ch := range rd.SnapshotChunks {
		w.stats.SnapshotChunksWritten++
		w.trace("%s write snapshot %d bytes %d..%d of %d", m.id, ch.Meta.Slot, ch.Offset, ch.Offset+uint64(len(ch.Data)), ch.Info.TotalBytes)
		if ch.Offset > 0 && ch.Offset+uint64(len(ch.Data)) == ch.Info.TotalBytes && rd.Snapshot != nil {
			w.stats.MultiChunkInstalls++
		}
	}
	if rd.Snapshot != nil {
		w.trace("%s persist snapshot %s", m.id, *rd.Snapshot)
	}
	if rd.EntriesFrom != 0 {
		w.trace("%s persist log from %d: %d entries", m.id, rd.EntriesFrom, len(rd.Entries))
	}
	if n := len(rd.Committed); n > 0 {
		w.trace("%s apply %d..%d", m.id, rd.Committed[0].Slot, rd.Committed[n-1].Slot)
	}
}

// serveReads answers the released reads whose index the store has applied.
func (w *world) serveReads(m *member) {
	keep := m.readsReady[:0]
	for _, r := range m.readsReady {
		if m.kv.applied < r.index {
			keep = append(keep, r)
			continue
		}
		rep := r.req
		rep.Kind, rep.Value = repOK, m.kv.data[r.req.Key]
		w.send(endpoint(m.id), clientEndpointBase+endpoint(r.req.Client), nil, &rep)
	}
	m.readsReady = keep
}

// maybeCompact snapshots the store every snapEveryAdds applied slots:
// Disk.Compact first (the snapshot file, then the WAL's front), then
// Core.Compact, the order the node package documents.
func (w *world) maybeCompact(m *member) {
	st := m.core.Status()
	if !m.up || m.kv.applied < st.SnapshotSlot+m.snapEveryAdds || m.kv.applied != st.Applied {
		return
	}
	meta := paxos.SnapshotMeta{Slot: m.kv.applied, Ballot: m.kv.ballot, Members: st.Members}
	snap := m.kv.snapshot()
	err := m.disk.Compact(context.Background(), meta, func(w io.Writer) error { _, err := w.Write(snap); return err })
	if m.cut {
		w.finishCut(m)
		return
	}
	if err != nil {
		w.diskError(m, "compact", err)
		return
	}
	if err := m.core.Compact(meta.Slot); err != nil {
		w.fail("disk", "%s core compact at %d: %v", m.id, meta.Slot, err)
		return
	}
	w.stats.Compactions++
	w.trace("%s compact at %d", m.id, meta.Slot)
}

// deliverPaxos hands a message to its member's core.
func (w *world) deliverPaxos(m *member, e *envelope) {
	msg, err := paxos.DecodeMessage(e.paxos, paxos.DefaultLimits)
	if err != nil {
		w.fail("codec", "%s -> %s: decode: %v", e.from, e.to, err)
		return
	}
	w.tr.message(w.step, "deliver", e.from, e.to, e.paxos, nil)
	if err := m.core.Step(msg); err != nil {
		// Invalid input is dropped by the core with an error; from our own
		// members it means the sender broke the protocol.
		w.fail("protocol", "%s refused %s: %v", m.id, msg, err)
	}
}

// deliverRequest serves a client request on member m.
func (w *world) deliverRequest(m *member, e *envelope) {
	req := *e.client
	w.tr.message(w.step, "deliver", e.from, e.to, nil, e.client)
	reply := func(kind clientMsgKind, hint peer.ID) {
		rep := req
		rep.Kind, rep.Leader = kind, hint
		w.send(endpoint(m.id), e.from, nil, &rep)
	}
	var err error
	switch req.Kind {
	case reqPut:
		k := putKey{req.Client, req.Seq}
		if _, dup := m.pendingPuts[k]; dup {
			return // a duplicated request: already proposed here
		}
		if m.kv.done(req.Client, req.Seq) {
			// Already applied here (a re-sent put): answer from the
			// session table, as a real service's response cache would.
			reply(repOK, m.id)
			return
		}
		err = m.core.Propose(command{client: req.Client, seq: req.Seq, key: req.Key, value: req.Value}.encode())
		if err == nil {
			m.pendingPuts[k] = e.from
		}
	case reqGet:
		m.readCount++
		ctx := fmt.Appendf(nil, "%d/%d/%d", req.Client, req.Seq, m.readCount)
		err = m.core.ReadIndex(ctx)
		if err == nil {
			m.pendingReads[string(ctx)] = req
		}
	}
	var nl *paxos.NotLeaderError
	switch {
	case err == nil:
	case errors.As(err, &nl):
		reply(repNotLeader, nl.Leader)
	case errors.Is(err, paxos.ErrProposalDropped):
		reply(repBusy, peer.None)
	default:
		w.fail("client", "%s: %s: %v", m.id, req, err)
	}
}

// upMembers returns the members that are up, in id order.
func (w *world) upMembers() []*member {
	var up []*member
	for _, m := range w.members {
		if m.up {
			up = append(up, m)
		}
	}
	return up
}

// atRisk counts members that are down, lost, or may crash at any moment
// (an armed disk fault): the fault budget bounds it by a minority.
func (w *world) atRisk() int {
	n := 0
	for _, m := range w.members {
		if !m.up || m.faultArmed {
			n++
		}
	}
	return n
}

func (w *world) leader() *member {
	var best *member
	for _, m := range w.members {
		if m.up && m.core.Status().Role == paxos.Leader {
			if best == nil || best.core.Status().Promised.Less(m.core.Status().Promised) {
				best = m
			}
		}
	}
	return best
}

// walSegments lists the member's WAL segment files in name order.
func walSegments(fsys *vfs.Mem) []string {
	names, err := fsys.List(dataDir + "/wal")
	if err != nil {
		return nil
	}
	var segs []string
	for _, n := range names {
		if len(n) == 20 && n[16:] == ".wal" {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	return segs
}
