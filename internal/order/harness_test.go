package order

import (
	"fmt"
	"strings"

	"github.com/chorus-project/chorus/internal/peer"
)

// harness runs one order Instance per member of a view over a network the
// test controls: messages wait in a queue until the test delivers, drops,
// duplicates or reorders them. Every message goes through the codec on its
// way, so the scripted and randomized tests exercise it too.
type harness struct {
	cfg   Config
	ids   []peer.ID // rank order
	nodes []*node   // by rank
	queue []Message
	group map[peer.ID]int // partition: members in different groups cannot talk; nil when healed
	sent  map[Ref]Message // every message some member sent, by ref
	errs  []error         // errors from Step (an honest run has none)
	out   *strings.Builder
	// verbose prints every message a member emits, not only deliveries.
	verbose bool
	// stats counts events worth knowing a randomized run exercised.
	stats map[string]int
	// lazy: delivering a message does not collect the receiver's Ready;
	// the test collects when it chooses, so output accumulates over
	// several inputs (and the sequencer batches) as in a real shell.
	lazy bool
	// flushed records the last flush: its cut and what FinishFlush left
	// undelivered at each survivor.
	flushed *flushRecord
}

type flushRecord struct {
	cut   Digest
	stuck map[peer.ID][]Ref
}

type node struct {
	id       peer.ID
	e        *Instance
	log      []record
	observed int // deliveries of the pending Ready already logged
	crashed  bool
}

// record is one delivery and what was true of the group when it happened.
type record struct {
	Delivery
	// heldByAll: every member of the view held the message contiguously at
	// the moment of delivery (what safe delivery promises).
	heldByAll bool
	inFlush   bool
}

func newHarness(cfg Config, n int, view uint64) (*harness, error) {
	h := &harness{cfg: cfg, sent: map[Ref]Message{}, out: &strings.Builder{}, stats: map[string]int{}}
	for i := 1; i <= n; i++ {
		h.ids = append(h.ids, peer.ID(i))
	}
	for _, id := range h.ids {
		e, err := New(cfg, view, h.ids, id)
		if err != nil {
			return nil, err
		}
		h.nodes = append(h.nodes, &node{id: id, e: e})
	}
	return h, nil
}

func (h *harness) node(id peer.ID) *node { return h.nodes[int(id)-1] }

func (h *harness) printf(format string, args ...any) {
	if h.out != nil {
		fmt.Fprintf(h.out, format, args...)
	}
}

// observe logs the deliveries a member produced since the last call. It
// runs right after every input, so heldByAll describes the group at the
// moment of delivery even when the Ready is collected later.
func (h *harness) observe(n *node, inFlush bool) {
	for _, d := range n.e.deliveries[n.observed:] {
		held := true
		rank := int(d.Sender) - 1
		for _, o := range h.nodes {
			if o.e.senders[rank].contig < d.Seq {
				held = false
			}
		}
		n.log = append(n.log, record{Delivery: d, heldByAll: held, inFlush: inFlush})
		h.printf("%s: deliver %s\n", n.id, d)
	}
	n.observed = len(n.e.deliveries)
}

// collect takes a member's Ready: messages go to the queue (encoded and
// decoded on the way); deliveries were logged by observe.
func (h *harness) collect(n *node, inFlush bool) {
	h.observe(n, inFlush)
	rd := n.e.Ready()
	for _, m := range rd.Messages {
		enc := AppendMessage(nil, m)
		dec, err := DecodeMessage(enc, h.cfg.Limits(len(h.ids)))
		if err != nil {
			panic(fmt.Sprintf("harness: %v does not decode: %v", m, err))
		}
		dec.From, dec.To = m.From, m.To
		h.stats[dec.Type.String()]++
		if dec.Type == MsgData && dec.From != dec.Sender {
			h.stats["retransmitted by another member"]++
		}
		if h.verbose {
			h.printf("%s: send %s\n", n.id, dec)
		}
		h.queue = append(h.queue, dec)
	}
	n.e.Advance(rd)
	n.observed -= len(rd.Deliveries)
}

func (h *harness) send(from peer.ID, o Order, payload string) (uint64, error) {
	n := h.node(from)
	seq, err := n.e.Send([]byte(payload), o)
	if err != nil {
		return 0, err
	}
	m, _ := n.e.Message(from, seq)
	h.sent[Ref{from, seq}] = m
	h.collect(n, false)
	return seq, nil
}

// connected reports whether a message can go from a to b now.
func (h *harness) connected(a, b peer.ID) bool {
	if h.node(b).crashed || h.node(a).crashed {
		return false
	}
	return h.group == nil || h.group[a] == h.group[b]
}

// deliver hands m to its destination, unless a crash or a partition is in
// the way, and reports whether it arrived.
func (h *harness) deliver(m Message) bool {
	if !h.connected(m.From, m.To) {
		return false
	}
	n := h.node(m.To)
	if err := n.e.Step(m); err != nil {
		h.errs = append(h.errs, fmt.Errorf("%s: step %s: %w", n.id, m, err))
		h.printf("%s: step error: %v\n", n.id, err)
	}
	if h.lazy {
		h.observe(n, false)
	} else {
		h.collect(n, false)
	}
	return true
}

func (h *harness) tick(id peer.ID) {
	n := h.node(id)
	if n.crashed {
		return
	}
	n.e.Tick()
	h.collect(n, false)
}

// drain delivers every queued message (including those that delivery
// produces) in queue order, until the queue is empty.
func (h *harness) drain() {
	for len(h.queue) > 0 {
		m := h.queue[0]
		h.queue = h.queue[1:]
		h.deliver(m)
	}
}

// settled reports whether nothing is left to do: no member lacks, holds
// back or has yet to learn the stability of anything.
func (h *harness) settled() bool {
	if len(h.queue) > 0 {
		return false
	}
	for _, n := range h.nodes {
		if n.crashed {
			continue
		}
		e := n.e
		for r, s := range e.senders {
			if s.known != s.contig || s.contig != e.delivered[r] || s.stableD != e.delivered[r] {
				return false
			}
		}
		if e.knownGlobal != e.contigGlobal || e.deliveredG != e.contigGlobal || e.stableGlobal != e.contigGlobal || len(e.pending) > 0 {
			return false
		}
	}
	return true
}

// stabilize alternates draining the network and ticking every member
// until the group settles, and reports whether it did within roundsMax.
func (h *harness) stabilize(roundsMax int) (int, bool) {
	for round := 0; round < roundsMax; round++ {
		h.drain()
		if h.settled() {
			return round, true
		}
		for _, n := range h.nodes {
			h.tick(n.id)
		}
	}
	h.drain()
	return roundsMax, h.settled()
}

// flush runs the flush hooks the way vsync will, among survivors: pause,
// gather digests, agree on the cut (their maximum), forward what each
// lacks from a survivor that holds it, and finish. It returns the
// undelivered refs of each survivor.
func (h *harness) flush(survivors []peer.ID) (map[peer.ID][]Ref, error) {
	var digests []Digest
	for _, id := range survivors {
		n := h.node(id)
		n.e.Pause()
		d := n.e.Digest()
		h.printf("%s: digest %s\n", id, d)
		digests = append(digests, d)
	}
	cut, err := MaxDigest(digests...)
	if err != nil {
		return nil, err
	}
	h.printf("cut %s\n", cut)
	for _, id := range survivors {
		n := h.node(id)
		miss, err := n.e.Missing(cut)
		if err != nil {
			return nil, err
		}
		for _, ref := range miss.Data {
			m, from, ok := h.findHolder(survivors, func(o *node) (Message, bool) { return o.e.Message(ref.Sender, ref.Seq) })
			if !ok {
				return nil, fmt.Errorf("no survivor holds %s", ref)
			}
			h.printf("%s: forward %s from %s\n", id, ref, from)
			if err := n.e.Add(m); err != nil {
				return nil, err
			}
		}
		for _, rg := range miss.Orders {
			for g := rg.First; g <= rg.Last; g++ {
				m, from, ok := h.findHolder(survivors, func(o *node) (Message, bool) {
					bs := o.e.OrderBatches(Range{g, g})
					if len(bs) == 0 {
						return Message{}, false
					}
					return bs[0], true
				})
				if !ok {
					return nil, fmt.Errorf("no survivor holds global %d", g)
				}
				h.printf("%s: forward global %d from %s\n", id, g, from)
				if err := n.e.Add(m); err != nil {
					return nil, err
				}
			}
		}
		h.collect(n, true)
	}
	stuck := map[peer.ID][]Ref{}
	for _, id := range survivors {
		n := h.node(id)
		s, err := n.e.FinishFlush(cut)
		if err != nil {
			return nil, err
		}
		h.collect(n, true)
		if len(s) > 0 {
			h.printf("%s: undeliverable %v\n", id, s)
			h.stats["undeliverable after flush"] += len(s)
		}
		stuck[id] = s
	}
	h.flushed = &flushRecord{cut: cut, stuck: stuck}
	return stuck, nil
}

func (h *harness) findHolder(survivors []peer.ID, get func(*node) (Message, bool)) (Message, peer.ID, bool) {
	for _, id := range survivors {
		if m, ok := get(h.node(id)); ok {
			return m, id, true
		}
	}
	return Message{}, 0, false
}

// state prints one member's view of every stream.
func (h *harness) state(id peer.ID) string {
	e := h.node(id).e
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", id)
	if e.paused {
		b.WriteString(" paused")
	}
	if e.finished {
		b.WriteString(" finished")
	}
	b.WriteString("\n")
	for r, s := range e.senders {
		held := make([]uint64, 0, len(s.held))
		for seq := s.gcSeq + 1; seq <= s.stableD+e.window(); seq++ {
			if _, ok := s.held[seq]; ok {
				held = append(held, seq)
			}
		}
		fmt.Fprintf(&b, "  from %s: contig=%d delivered=%d stable-recv=%d stable-deliv=%d held=%v\n",
			h.ids[r], s.contig, e.delivered[r], s.stableR, s.stableD, held)
	}
	globals := make([]uint64, 0, len(e.orders))
	for g := e.gcGlobal + 1; g <= e.contigGlobal+e.orderWindow(); g++ {
		if _, ok := e.orders[g]; ok {
			globals = append(globals, g)
		}
	}
	fmt.Fprintf(&b, "  global: contig=%d delivered=%d stable=%d held=%v\n", e.contigGlobal, e.deliveredG, e.stableGlobal, globals)
	return b.String()
}
