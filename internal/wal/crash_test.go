package wal

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/chorus-project/chorus/internal/vfs"
)

var (
	crashSeeds = flag.Int("wal.crashseeds", 8,
		"seeded CrashConfig.Rand crashes per crash point in TestCrash (more for a longer run)")
	crashRounds = flag.Int("wal.crashrounds", 4,
		"runs of the TestCrash workload; goroutine scheduling differs from run to run")
)

// ident names one record a crash workload appended: appender a's s-th.
type ident struct{ a, s int }

// crashRecord is ident's record: its data starts with the identity, so a
// recovered record says which append it came from, and the rest is a
// function of it, so its content can be checked.
func crashRecord(id ident) Record {
	data := []byte(fmt.Sprintf("c%d.%d|", id.a, id.s))
	r := rand.New(rand.NewPCG(uint64(id.a), uint64(id.s)))
	for range r.IntN(60) {
		data = append(data, byte(r.Uint32()))
	}
	return Record{Type: uint8(id.a), Data: data}
}

func parseIdent(data []byte) (ident, bool) {
	s := string(data)
	if !strings.HasPrefix(s, "c") {
		return ident{}, false
	}
	head, _, ok := strings.Cut(s[1:], "|")
	if !ok {
		return ident{}, false
	}
	as, ss, ok := strings.Cut(head, ".")
	if !ok {
		return ident{}, false
	}
	a, err1 := strconv.Atoi(as)
	sq, err2 := strconv.Atoi(ss)
	return ident{a, sq}, err1 == nil && err2 == nil
}

// model is what the workload knows at an instant: the acknowledged records
// still in the log, and what recovery may and may not show.
type model struct {
	acked   map[uint64]ident // index -> record, for acknowledged records not truncated away
	started map[ident]bool   // every Append begun
	dead    map[ident]bool   // dropped by a TruncateBack that returned: must never reappear
	// frontDone is the first index set by the last TruncateFront that
	// returned; frontPending, if not 0, that of one in flight.
	frontDone, frontPending uint64
	// backPending: a TruncateBack(backTo) is in flight, so acknowledged
	// records above backTo may be gone (all or part of the suffix).
	backPending bool
	backTo      uint64
}

func (m *model) clone() *model {
	return &model{
		acked: maps.Clone(m.acked), started: maps.Clone(m.started), dead: maps.Clone(m.dead),
		frontDone: m.frontDone, frontPending: m.frontPending, backPending: m.backPending, backTo: m.backTo,
	}
}

// crashPoint is one crash: the disk at that instant and what had been
// acknowledged by then.
type crashPoint struct {
	at    string // the operation about to run
	disk  *vfs.Mem
	model *model
	cfg   string
}

// workload drives a log through appends from several goroutines, roll-overs,
// a TruncateFront inside the log, a TruncateBack across segments and a
// TruncateFront past the end, recording the model as it goes.
type workload struct {
	mu    sync.Mutex
	model model
	seq   []int // next seq per appender
}

func (w *workload) snapshot() *model {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.model.clone()
}

func (w *workload) appendPhase(t *testing.T, l *Log, appenders, each int) {
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for k := range each {
				// Every third append carries two records.
				n := 1 + min(1, k%3/2)
				ids := make([]ident, n)
				recs := make([]Record, n)
				w.mu.Lock()
				for i := range n {
					ids[i] = ident{a, w.seq[a]}
					w.seq[a]++
					w.model.started[ids[i]] = true
					recs[i] = crashRecord(ids[i])
				}
				w.mu.Unlock()
				last, err := l.Append(context.Background(), recs...)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				w.mu.Lock()
				for i, id := range ids {
					w.model.acked[last-uint64(n-1-i)] = id
				}
				w.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func (w *workload) truncateFront(t *testing.T, l *Log, index uint64) {
	w.mu.Lock()
	w.model.frontPending = index
	w.mu.Unlock()
	if err := l.TruncateFront(index); err != nil {
		t.Errorf("TruncateFront(%d): %v", index, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.model.frontDone, w.model.frontPending = index, 0
	for i := range w.model.acked {
		if i < index {
			delete(w.model.acked, i)
		}
	}
}

func (w *workload) truncateBack(t *testing.T, l *Log, index uint64) {
	w.mu.Lock()
	w.model.backPending, w.model.backTo = true, index
	w.mu.Unlock()
	if err := l.TruncateBack(index); err != nil {
		t.Errorf("TruncateBack(%d): %v", index, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.model.backPending = false
	for i, id := range w.model.acked {
		if i > index {
			delete(w.model.acked, i)
			w.model.dead[id] = true
		}
	}
}

func (w *workload) run(t *testing.T, l *Log) {
	w.appendPhase(t, l, 4, 16)
	w.truncateFront(t, l, l.LastIndex()/2+1)
	w.appendPhase(t, l, 4, 10)
	w.truncateBack(t, l, midSegment(l, l.LastIndex()-12))
	w.appendPhase(t, l, 4, 10)
	w.truncateFront(t, l, l.LastIndex()+4)
	w.appendPhase(t, l, 3, 6)
}

// midSegment returns index, or the one before it if index ends its
// segment, so that a TruncateBack to it cuts a segment file as well as
// removing the later ones.
func midSegment(l *Log, index uint64) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		if s.lastIndex() == index {
			return index - 1
		}
	}
	return index
}

// crashOptions: tiny segments so the workload rolls over a dozen times.
func crashOptions(fs vfs.FS) Options {
	return Options{FS: fs, Dir: testDir, SegmentBytesMax: 400, RecordBytesMax: 100, BatchBytesMax: 300}
}

// collectCrashes runs the workload on a fresh Mem and crashes it before
// every mutating operation (so also after each one: the state before the
// next), once keeping exactly what was synced and seeds times with
// un-synced writes lost, kept or torn at random. The hook runs on the
// goroutine doing the operation; synctest.Wait first lets every appender
// that has been acknowledged record it, so the model at the crash is exact.
func collectCrashes(t *testing.T, seeds int) []crashPoint {
	var points []crashPoint
	synctest.Test(t, func(t *testing.T) {
		mem := vfs.NewMem()
		w := &workload{seq: make([]int, 4)}
		w.model = model{acked: map[uint64]ident{}, started: map[ident]bool{}, dead: map[ident]bool{}, frontDone: 1}
		rng := rand.New(rand.NewPCG(1, 2))
		n := 0
		crash := func(at string) {
			synctest.Wait()
			m := w.snapshot()
			points = append(points, crashPoint{at: at, disk: mem.CrashClone(vfs.CrashConfig{}), model: m, cfg: "synced only"})
			for s := range seeds {
				seed := rng.Uint64()
				disk := mem.CrashClone(vfs.CrashConfig{Rand: rand.New(rand.NewPCG(seed, 0)), TearSectorBytes: 16 << (s % 3)})
				points = append(points, crashPoint{at: at, disk: disk, model: m, cfg: fmt.Sprintf("seed %d, sectors %d", seed, 16<<(s%3))})
			}
		}
		mem.SetHook(func(op vfs.Op, path string) {
			if op == vfs.OpRead {
				return
			}
			n++
			crash(fmt.Sprintf("#%d before %v %s", n, op, path))
		})
		l, _ := mustOpen(t, crashOptions(mem))
		w.run(t, l)
		mustClose(t, l)
		mem.SetHook(nil)
		crash("the end")
	})
	return points
}

// crashStats counts what the recoveries had to do, to show the crash points
// exercise them.
type crashStats struct {
	tornTails, leftoversRemoved, suffixKept, frontInFlight int
	// recoveryCrashes counts the crashes taken during a recovery that
	// repaired something, each recovered again.
	recoveryCrashes int
}

// checkCrash recovers one crash point and returns what is wrong with it.
// Each problem starts with a kind: "open", "lost", "wrong", "invented",
// "resurrected", "front", "order", "second crash".
func checkCrash(p crashPoint, stats *crashStats) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	// Crash the recovery itself before each of its operations: Open's
	// repairs must be idempotent.
	var during []*vfs.Mem
	p.disk.SetHook(func(op vfs.Op, _ string) {
		if op != vfs.OpRead {
			during = append(during, p.disk.CrashClone(vfs.CrashConfig{}))
		}
	})
	l, rec, err := Open(crashOptions(p.disk))
	p.disk.SetHook(nil)
	if rec.TornTail != nil {
		stats.tornTails++
	}
	if len(rec.Removed) > 0 {
		stats.leftoversRemoved++
	}
	if err != nil {
		bad("open: %v", err)
		return problems
	}
	defer func() {
		if l != nil {
			l.Close()
		}
	}()
	first, last := l.FirstIndex(), l.LastIndex()
	m := p.model
	if m.frontPending != 0 && first != m.frontDone {
		stats.frontInFlight++
	}
	if first < m.frontDone || first > max(m.frontDone, m.frontPending) {
		bad("front: first index %d, want %d (or %d, in flight)", first, m.frontDone, m.frontPending)
	}
	for _, idx := range slices.Sorted(maps.Keys(m.acked)) {
		id := m.acked[idx]
		if idx < first {
			if m.frontPending <= idx {
				bad("lost: acknowledged record %v at %d is below first index %d", id, idx, first)
			}
			continue
		}
		if m.backPending && idx > m.backTo && idx > last {
			continue // cut by the TruncateBack in flight
		}
		if m.backPending && idx > m.backTo {
			stats.suffixKept++
		}
		r, err := l.Get(idx)
		if err != nil {
			bad("lost: acknowledged record %v at %d: %v", id, idx, err)
			continue
		}
		if !sameRecord(r, crashRecord(id)) {
			bad("wrong: index %d holds %q, acknowledged %v", idx, r.Data, id)
		}
	}
	ackedAt := map[ident]uint64{}
	for idx, id := range m.acked {
		ackedAt[id] = idx
	}
	prevSeq := map[int]int{}
	recovered := map[uint64]Record{}
	for idx := first; idx <= last; idx++ {
		r, err := l.Get(idx)
		if err != nil {
			bad("wrong: Get(%d) in [%d, %d]: %v", idx, first, last, err)
			continue
		}
		recovered[idx] = r
		id, ok := parseIdent(r.Data)
		switch {
		case !ok || !m.started[id] || !sameRecord(r, crashRecord(id)):
			bad("invented: index %d holds %q, never appended", idx, r.Data)
			continue
		case m.dead[id]:
			bad("resurrected: index %d holds %v, dropped by a TruncateBack that returned", idx, id)
		}
		if at, ok := ackedAt[id]; ok && at != idx {
			bad("wrong: %v acknowledged at %d, recovered at %d", id, at, idx)
		}
		if s, ok := prevSeq[id.a]; ok && id.s <= s {
			bad("order: index %d holds %v after seq %d of the same appender", idx, id, s)
		}
		prevSeq[id.a] = id.s
	}
	if len(problems) > 0 {
		return problems
	}
	if rec.TornTail != nil || len(rec.Removed) > 0 {
		for i, d := range during {
			stats.recoveryCrashes++
			problems = append(problems, checkSameLog(d, first, last, recovered, fmt.Sprintf("recovery crash: crash %d of the recovery", i))...)
		}
	}
	// The recovered log takes appends and survives a second crash.
	for k := range 3 {
		rec := crashRecord(ident{9, k})
		idx, err := l.Append(context.Background(), rec)
		if err != nil || idx != last+uint64(k)+1 {
			bad("second crash: append after recovery got %d, %v; want %d", idx, err, last+uint64(k)+1)
			return problems
		}
		recovered[idx] = rec
	}
	last += 3
	l.Close()
	l = nil
	return append(problems, checkSameLog(p.disk.CrashClone(vfs.CrashConfig{}), first, last, recovered, "second crash")...)
}

// checkSameLog opens disk and reports, under kind, how it differs from the
// log [first, last] holding want.
func checkSameLog(disk *vfs.Mem, first, last uint64, want map[uint64]Record, kind string) []string {
	l, _, err := Open(crashOptions(disk))
	if err != nil {
		return []string{fmt.Sprintf("%s: open: %v", kind, err)}
	}
	defer l.Close()
	if l.FirstIndex() != first || l.LastIndex() != last {
		return []string{fmt.Sprintf("%s: [%d, %d], want [%d, %d]", kind, l.FirstIndex(), l.LastIndex(), first, last)}
	}
	for idx := first; idx <= last; idx++ {
		if r, err := l.Get(idx); err != nil || !sameRecord(r, want[idx]) {
			return []string{fmt.Sprintf("%s: index %d: %v %q, want %q", kind, idx, err, r.Data, want[idx].Data)}
		}
	}
	return nil
}

// crashResults checks every point and returns the problems, keyed by kind.
func crashResults(t *testing.T, points []crashPoint) (map[string][]string, crashStats) {
	byKind := map[string][]string{}
	var stats crashStats
	for _, p := range points {
		for _, problem := range checkCrash(p, &stats) {
			kind, _, _ := strings.Cut(problem, ":")
			byKind[kind] = append(byKind[kind], fmt.Sprintf("crash %s (%s): %s", p.at, p.cfg, problem))
		}
	}
	return byKind, stats
}

// TestCrash crashes the workload at every step and recovers each disk.
func TestCrash(t *testing.T) {
	seeds, rounds := *crashSeeds, *crashRounds
	switch {
	case testing.Short():
		seeds, rounds = 1, 1
	case raceEnabled:
		seeds, rounds = 2, 1
	}
	var points []crashPoint
	for range rounds {
		points = append(points, collectCrashes(t, seeds)...)
	}
	ops := len(points) / (1 + seeds)
	if ops < 100*rounds {
		t.Fatalf("only %d crash points in %d rounds: the workload is not exercising the log", ops, rounds)
	}
	kinds := map[string]int{}
	for _, p := range points {
		op, _, _ := strings.Cut(strings.TrimPrefix(p.at, "#"), " ")
		_ = op
		for _, k := range []string{"sync ", "syncdir ", "write ", "create ", "rename ", "remove ", "truncate "} {
			if strings.Contains(p.at, "before "+k) {
				kinds[strings.TrimSpace(k)]++
			}
		}
	}
	byKind, stats := crashResults(t, points)
	for kind, problems := range byKind {
		t.Errorf("%d %q problems; first ones:\n%s", len(problems), kind, strings.Join(problems[:min(5, len(problems))], "\n"))
	}
	t.Logf("%d crash points (%d rounds, %d operations, x %d disks each), %v by operation", len(points), rounds, ops, 1+seeds, kinds)
	t.Logf("recoveries: %d cut a torn tail, %d removed leftovers, %d kept acknowledged records above an in-flight TruncateBack, %d kept the old front during an in-flight TruncateFront; %d crashes during repairing recoveries, each recovered again",
		stats.tornTails, stats.leftoversRemoved, stats.suffixKept, stats.frontInFlight, stats.recoveryCrashes)
	if stats.tornTails == 0 || stats.leftoversRemoved == 0 || stats.suffixKept == 0 || stats.frontInFlight == 0 || stats.recoveryCrashes == 0 {
		t.Errorf("some recovery path never ran: %+v", stats)
	}
}

// plantedCase runs the crash test with a planted bug and returns its
// problems.
func plantedCase(t *testing.T, plant *bool) map[string][]string {
	*plant = true
	defer func() { *plant = false }()
	problems, _ := crashResults(t, collectCrashes(t, 0))
	return problems
}

// TestCrashCatchesAckBeforeSync: acknowledging a batch before its Sync loses
// acknowledged records at the crash points between the two.
func TestCrashCatchesAckBeforeSync(t *testing.T) {
	problems := plantedCase(t, &plantAckBeforeSync)
	if len(problems["lost"]) == 0 {
		t.Fatalf("the crash test missed the planted ack-before-sync bug; problems: %v", problems)
	}
	t.Logf("caught: %d lost acknowledged records, e.g. %s", len(problems["lost"]), problems["lost"][0])
}

// TestCrashCatchesSkippedDirSync: a new segment whose directory entry was
// never synced vanishes in a crash, with the acknowledged records in it.
func TestCrashCatchesSkippedDirSync(t *testing.T) {
	problems := plantedCase(t, &plantSkipDirSync)
	if len(problems["lost"]) == 0 {
		t.Fatalf("the crash test missed the planted skipped-SyncDir bug; problems: %v", problems)
	}
	t.Logf("caught: %d lost acknowledged records, e.g. %s", len(problems["lost"]), problems["lost"][0])
}

// TestCrashModelSanity: the checker itself flags a disk that lost an
// acknowledged record or holds one never appended.
func TestCrashModelSanity(t *testing.T) {
	mem := vfs.NewMem()
	l, _ := mustOpen(t, crashOptions(mem))
	m := &model{acked: map[uint64]ident{}, started: map[ident]bool{}, dead: map[ident]bool{}, frontDone: 1}
	for s := range 3 {
		id := ident{0, s}
		idx := mustAppend(t, l, crashRecord(id))
		m.acked[idx], m.started[id] = id, true
	}
	mustClose(t, l)
	if p := checkCrash(crashPoint{disk: mem.CrashClone(vfs.CrashConfig{}), model: m}, &crashStats{}); len(p) != 0 {
		t.Fatalf("a good disk has problems: %v", p)
	}
	m2 := m.clone()
	m2.acked[4], m2.started[ident{0, 3}] = ident{0, 3}, true
	if p := checkCrash(crashPoint{disk: mem.CrashClone(vfs.CrashConfig{}), model: m2}, &crashStats{}); len(p) == 0 || !strings.HasPrefix(p[0], "lost") {
		t.Fatalf("a missing acknowledged record went unnoticed: %v", p)
	}
	m3 := m.clone()
	delete(m3.started, ident{0, 2})
	delete(m3.acked, 3)
	if p := checkCrash(crashPoint{disk: mem.CrashClone(vfs.CrashConfig{}), model: m3}, &crashStats{}); len(p) == 0 || !strings.HasPrefix(p[0], "invented") {
		t.Fatalf("a record never appended went unnoticed: %v", p)
	}
	m4 := m.clone()
	m4.dead[ident{0, 2}] = true
	delete(m4.acked, 3)
	if p := checkCrash(crashPoint{disk: mem.CrashClone(vfs.CrashConfig{}), model: m4}, &crashStats{}); len(p) == 0 || !strings.HasPrefix(p[0], "resurrected") {
		t.Fatalf("a truncated record coming back went unnoticed: %v", p)
	}
	if errors.Is(nil, ErrCorrupt) {
		t.Fatal("unreachable")
	}
}
