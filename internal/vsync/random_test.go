package vsync

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/quorum"
)

var (
	seedFlag  = flag.Uint64("vsync.seed", 0, "run only this seed of TestRandomized")
	seedsFlag = flag.Int("vsync.seeds", 0, "number of seeds of TestRandomized (0: 30 with -short, 150 without)")
	seedBase  = flag.Uint64("vsync.seedbase", 0, "TestRandomized runs seeds seedbase+1 to seedbase+seeds")
)

// randomRun is one seeded history: founders, then steps of sends, message
// deliveries in random order (with loss and duplication), ticks, and, when
// faults is set, crashes (never of a majority of a view), partitions and
// heals, joins, leaves and rejoins of stopped processes. Then the faults
// stop, the network heals, and the group must settle.
type randomRun struct {
	h       *harness
	rng     *rand.Rand
	nextID  peer.ID
	sent    int
	settled bool
}

func newRandomRun(seed uint64, plant func(*Node)) (*randomRun, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cfg := testConfig()
	// A third of the seeds each: order's stability reports only on the
	// clock, and early reports every 1 or 2 messages.
	cfg.Order.ReportEveryMessages = int(seed % 3)
	h, err := newHarness(cfg, 3+rng.IntN(3), plant)
	if err != nil {
		return nil, err
	}
	return &randomRun{h: h, rng: rng, nextID: peer.ID(len(h.nodes) + 1)}, nil
}

func (r *randomRun) pick(hs []*hnode) *hnode {
	if len(hs) == 0 {
		return nil
	}
	return hs[r.rng.IntN(len(hs))]
}

// canCrash reports whether crashing one more process leaves a majority of
// every view a live process is in alive: the protocol's assumption.
func (r *randomRun) canCrash(victim *hnode) bool {
	for _, hn := range r.h.live() {
		v, ok := hn.n.View()
		if !ok {
			continue
		}
		alive := 0
		for _, m := range v.Members {
			if o := r.h.nodes[m.ID]; o != nil && o != victim && !o.crashed && o.proc.member == m {
				alive++
			}
		}
		if alive < quorum.Majority(len(v.Members))+1 {
			return false
		}
	}
	return true
}

// contacts are the live processes other than id, as an operator would
// list the group's known addresses.
func (r *randomRun) contacts(id peer.ID) []peer.ID {
	var out []peer.ID
	for _, hn := range r.h.live() {
		if hn.id != id && len(hn.proc.installs) > 0 {
			out = append(out, hn.id)
		}
	}
	return out
}

func (r *randomRun) step(faults bool) {
	h, rng := r.h, r.rng
	live := h.live()
	switch x := rng.IntN(100); {
	case x < 25:
		hn := r.pick(live)
		if hn == nil {
			return
		}
		o := order.Order(1 + rng.IntN(4))
		r.sent++
		_ = h.send(hn.id, o, fmt.Sprintf("m%d", r.sent))
	case x < 65:
		if len(h.queue) == 0 {
			return
		}
		i := rng.IntN(len(h.queue))
		m := h.queue[i]
		switch y := rng.IntN(100); {
		case y < 4: // lost
			h.queue = slices.Delete(h.queue, i, i+1)
		case y < 7: // duplicated: delivered, and a copy stays queued
			h.deliver(m)
		default:
			h.queue = slices.Delete(h.queue, i, i+1)
			h.deliver(m)
		}
	case x < 90:
		for _, hn := range live {
			if rng.IntN(3) > 0 {
				h.tick(hn)
			}
		}
	case !faults:
	case x < 92:
		// Only installed members crash: a joiner that dies before it is
		// added would still be added, and enough of them would take
		// the majority of the next view, which the protocol assumes.
		if hn := r.pick(live); hn != nil && r.canCrash(hn) && len(hn.proc.installs) > 0 {
			hn.crashed, hn.proc.crashed = true, true
		}
	case x < 93:
		if h.group == nil {
			h.group = map[peer.ID]int{}
			for _, id := range h.ids() {
				h.group[id] = rng.IntN(2)
			}
		} else {
			h.group = nil
		}
	case x < 95:
		if len(h.nodes) < h.cfg.MembersMax-2 {
			if cs := r.contacts(r.nextID); len(cs) > 0 {
				_ = h.join(r.nextID, cs)
				r.nextID++
			}
		}
	case x < 96:
		if hn := r.pick(live); hn != nil && len(live) > 3 && r.canCrash(hn) {
			_ = hn.n.Leave()
			h.collect(hn)
		}
	case x < 98:
		// A stopped (excluded or departed) or crashed process comes
		// back as a new incarnation; a crashed member may still be in
		// the view, and is replaced.
		for _, id := range h.ids() {
			hn := h.nodes[id]
			if hn.crashed || hn.n.Stopped() != nil {
				if cs := r.contacts(id); len(cs) > 0 {
					_ = h.join(id, cs)
				}
				break
			}
		}
	default:
		h.group = nil
	}
}

// restartStrandedJoiners gives a joiner whose contacts are all gone (left,
// excluded, crashed) a new incarnation with live contacts, as an operator
// would: a joiner only knows the addresses it was given.
func (r *randomRun) restartStrandedJoiners() {
	for _, hn := range r.h.live() {
		if len(hn.proc.installs) > 0 {
			continue
		}
		stranded := true
		for _, c := range hn.n.contacts {
			if o := r.h.nodes[c]; o != nil && !o.crashed && o.n.Stopped() == nil && len(o.proc.installs) > 0 {
				stranded = false
			}
		}
		if cs := r.contacts(hn.id); stranded && len(cs) > 0 {
			hn.crashed, hn.proc.crashed = true, true
			_ = r.h.join(hn.id, cs)
		}
	}
}

// run plays steps with faults, heals, and stabilizes.
func (r *randomRun) run(steps int) []string {
	for range steps {
		r.step(true)
	}
	r.h.group = nil
	for range steps / 4 {
		r.step(false)
	}
	// Leaves requested under faults complete now, so a joiner's contacts
	// may go away while the group settles: restart stranded joiners
	// between stabilization rounds.
	for range 3 {
		if _, r.settled = r.h.stabilize(1000); r.settled {
			break
		}
		r.restartStrandedJoiners()
	}
	return checkHistory(r.h, true)
}

func seeds(t *testing.T) []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	n := *seedsFlag
	if n == 0 {
		n = 150
		if testing.Short() {
			n = 30
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = *seedBase + uint64(i+1)
	}
	return out
}

// TestRandomized runs seeded histories and checks every property on each,
// liveness included (the group settles once faults stop). A failing seed
// prints its replay command.
func TestRandomized(t *testing.T) {
	total := map[string]int{}
	var vs0 []string
	for _, seed := range seeds(t) {
		r, err := newRandomRun(seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		// An honest run makes no Step fail: every refusal is for bad
		// input, and stale input is dropped silently.
		r.h.errLog = func(e string) { vs0 = append(vs0, "step error: "+e) }
		vs := append(r.run(1500), vs0...)
		vs0 = nil
		if len(vs) > 0 || !r.settled {
			r.h.out.Reset()
			r.h.trace = true
			r.h.status()
			t.Fatalf("seed %d: settled=%v, violations:\n%v\nstatus:\n%s\nreplay: go test ./internal/vsync -run TestRandomized -vsync.seed=%d",
				seed, r.settled, vs, r.h.out.String(), seed)
		}
		for k, v := range r.h.stats {
			total[k] += v
		}
		for _, p := range r.h.hist.procs {
			total["installs"] += len(p.installs)
			if p.stopped != nil {
				total["stopped: "+p.stopped.Error()]++
			}
			if p.joiner && p.restored {
				total["restored joiners"]++
			}
		}
	}
	t.Logf("totals over %d seeds: %v", len(seeds(t)), total)
}
