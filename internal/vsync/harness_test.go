package vsync

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/chorus-project/chorus/internal/liveness"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// testConfig keeps every timer short so that scenarios stay readable:
// a member silent for 6 ticks is suspected and, after 4 more, faulty.
func testConfig() Config {
	return Config{
		Order:                      order.Config{SendWindowMax: 8, PayloadBytesMax: 256, BatchEntriesMax: 16, NakTicks: 2, StabilityTicks: 3},
		Liveness:                   liveness.Config{HeartbeatTicks: 2, SuspectTicks: 6, VerifyTicks: 4, IndirectProbes: 1},
		MembersMax:                 16,
		RetryTicks:                 3,
		ChangeTimeoutTicks:         30,
		JoinsPendingMax:            8,
		ChunkBytesMax:              64,
		TransferWindowChunks:       2,
		TransferTimeoutTicks:       20,
		RestoreBufferDeliveriesMax: 256,
		RestoreBufferBytesMax:      1 << 16,
	}
}

// harness runs one vsync Node per live process over a network the test
// controls: messages wait in a queue until the test delivers or drops
// them. Every message goes through the envelope and the codec on its way.
// Each process has an application whose state is the list of deliveries
// it applied; that list is what a donor snapshots and a joiner restores,
// so the checkers see a joiner's state, not only its own deliveries.
type harness struct {
	cfg   Config
	nodes map[peer.ID]*hnode
	queue []Message
	group map[peer.ID]int // partition; nil when healed
	hist  *history
	out   *strings.Builder
	trace bool
	plant func(*Node) // applied to every Node created
	stats map[string]int
	// lose, if set, drops the messages it returns true for.
	lose func(Message) bool
	// errLog, if set, sees every Step error.
	errLog func(string)
}

type hnode struct {
	id      peer.ID
	n       *Node
	proc    *proc
	crashed bool
	// Application state: the records applied, restored ones included.
	state []record
	// A joiner's restore in progress.
	restoreBuf []byte
	// Snapshots being streamed by this donor.
	xfers []*xfer
}

type xfer struct {
	joiner   peer.ID
	transfer uint64
	chunks   [][]byte
	next     int
}

// record is one applied delivery.
type record struct {
	View    uint64
	Sender  peer.ID
	Seq     uint64
	Order   order.Order
	Global  uint64
	Payload string
}

func (r record) key() msgKey { return msgKey{r.View, r.Sender, r.Seq} }

type msgKey struct {
	view   uint64
	sender peer.ID
	seq    uint64
}

// proc is the history of one incarnation of one process.
type proc struct {
	member   peer.Member
	installs []View
	node     *hnode
	stopped  error
	crashed  bool
	joiner   bool
	restored bool
}

type history struct {
	procs []*proc
	sends map[msgKey]string // payload of every message sent
}

func newHarness(cfg Config, n int, plant func(*Node)) (*harness, error) {
	h := &harness{cfg: cfg, nodes: map[peer.ID]*hnode{}, hist: &history{sends: map[msgKey]string{}},
		out: &strings.Builder{}, plant: plant, stats: map[string]int{}}
	v := View{ID: 1}
	for i := 1; i <= n; i++ {
		v.Members = append(v.Members, peer.Member{ID: peer.ID(i)})
	}
	for _, m := range v.Members {
		node, err := New(cfg, m, v)
		if err != nil {
			return nil, err
		}
		h.add(node, false)
	}
	for _, id := range h.ids() {
		h.collect(h.nodes[id])
	}
	return h, nil
}

func (h *harness) add(node *Node, joiner bool) *hnode {
	if h.plant != nil {
		h.plant(node)
	}
	hn := &hnode{id: node.Self().ID, n: node}
	hn.proc = &proc{member: node.Self(), node: hn, joiner: joiner, restored: !joiner}
	h.hist.procs = append(h.hist.procs, hn.proc)
	h.nodes[hn.id] = hn
	return hn
}

// ids returns the ids of every process, in ascending order.
func (h *harness) ids() []peer.ID {
	var ids []peer.ID
	for id := range h.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (h *harness) live() []*hnode {
	var out []*hnode
	for _, id := range h.ids() {
		if hn := h.nodes[id]; !hn.crashed && hn.n.Stopped() == nil {
			out = append(out, hn)
		}
	}
	return out
}

func (h *harness) printf(format string, args ...any) {
	if h.out != nil {
		fmt.Fprintf(h.out, format, args...)
	}
}

// join starts a new incarnation of id (one above the last) joining via
// contacts.
func (h *harness) join(id peer.ID, contacts []peer.ID) error {
	inc := peer.Incarnation(0)
	if old, ok := h.nodes[id]; ok {
		if !old.crashed && old.n.Stopped() == nil {
			return fmt.Errorf("process %s is running", id)
		}
		inc = old.proc.member.Incarnation + 1
	}
	node, err := NewJoiner(h.cfg, peer.Member{ID: id, Incarnation: inc}, contacts)
	if err != nil {
		return err
	}
	hn := h.add(node, true)
	h.collect(hn)
	return nil
}

func (h *harness) send(from peer.ID, o order.Order, payload string) error {
	hn := h.nodes[from]
	if hn == nil || hn.crashed {
		return fmt.Errorf("no process %s", from)
	}
	seq, err := hn.n.Send([]byte(payload), o)
	if err != nil {
		return err
	}
	v, _ := hn.n.View()
	h.hist.sends[msgKey{v.ID, from, seq}] = payload
	h.collect(hn)
	return nil
}

// collect handles a node's Ready the way a shell does: messages to the
// network, deliveries and installs to the application and the history,
// snapshots streamed, chunks restored, then Advance.
func (h *harness) collect(hn *hnode) {
	for hn.n.HasReady() || h.pumpXfers(hn) {
		rd := hn.n.Ready()
		for _, m := range rd.Messages {
			h.enqueue(m)
		}
		// The caller's contract: a delivery of view v is applied after
		// the install of v and before the install of any later view.
		ds := rd.Deliveries
		apply := func(upTo uint64) {
			for len(ds) > 0 && ds[0].View < upTo {
				d := ds[0]
				ds = ds[1:]
				hn.state = append(hn.state, record{View: d.View, Sender: d.Sender, Seq: d.Seq, Order: d.Order, Global: d.Global, Payload: string(d.Payload)})
				h.printf("%s: deliver %s\n", hn.proc.member, d)
			}
		}
		for _, vc := range rd.ViewChanges {
			apply(vc.View.ID)
			hn.proc.installs = append(hn.proc.installs, vc.View)
			h.printf("%s: install %s rank %d\n", hn.proc.member, vc.View, vc.Rank)
		}
		apply(^uint64(0))
		for _, c := range rd.Chunks {
			if c.Index == 0 {
				hn.restoreBuf = nil
			}
			hn.restoreBuf = append(hn.restoreBuf, c.Data...)
			if c.Last {
				st, err := decodeState(hn.restoreBuf)
				if err != nil {
					panic(fmt.Sprintf("harness: restore of %s: %v", hn.id, err))
				}
				hn.state = st
				hn.proc.restored = true
				h.printf("%s: restored %d records\n", hn.proc.member, len(st))
			}
		}
		for _, ti := range rd.TransferInstructions {
			snap := encodeState(hn.state)
			x := &xfer{joiner: ti.Joiner, transfer: ti.Transfer}
			for len(snap) > h.cfg.ChunkBytesMax {
				x.chunks = append(x.chunks, snap[:h.cfg.ChunkBytesMax])
				snap = snap[h.cfg.ChunkBytesMax:]
			}
			x.chunks = append(x.chunks, snap)
			hn.xfers = slices.DeleteFunc(hn.xfers, func(o *xfer) bool { return o.joiner == ti.Joiner })
			hn.xfers = append(hn.xfers, x)
			h.printf("%s: snapshot for %s (t%d, %d records, %d chunks)\n", hn.proc.member, ti.Joiner, ti.Transfer, len(hn.state), len(x.chunks))
		}
		if rd.Stopped != nil {
			hn.proc.stopped = rd.Stopped
			h.printf("%s: stopped: %v\n", hn.proc.member, rd.Stopped)
		}
		hn.n.Advance(rd)
	}
}

// pumpXfers feeds pending snapshot chunks to the node and reports whether
// it took any.
func (h *harness) pumpXfers(hn *hnode) bool {
	took := false
	for _, x := range hn.xfers {
		for x.next < len(x.chunks) {
			err := hn.n.SendChunk(x.joiner, x.transfer, x.chunks[x.next], x.next == len(x.chunks)-1)
			if err != nil {
				if !errors.Is(err, ErrTransferWindowFull) {
					x.next = len(x.chunks) // replaced or over
				}
				break
			}
			x.next++
			took = true
		}
	}
	hn.xfers = slices.DeleteFunc(hn.xfers, func(x *xfer) bool { return x.next == len(x.chunks) })
	return took
}

// enqueue puts m on the network after a round trip through the envelope
// and the codec.
func (h *harness) enqueue(m Message) {
	env := wire.Envelope{Kind: WireKind, From: m.From, To: m.To, Payload: AppendMessage(nil, m)}
	b := wire.AppendEnvelope(nil, env)
	env, err := wire.DecodeEnvelope(b, 1<<20)
	if err != nil {
		panic(fmt.Sprintf("harness: envelope of %s: %v", m, err))
	}
	dec, err := DecodeMessage(env.Payload, h.cfg.Limits())
	if err != nil {
		panic(fmt.Sprintf("harness: %s does not decode: %v", m, err))
	}
	dec.From, dec.To = env.From, env.To
	h.stats[dec.Type.String()]++
	if h.trace && dec.Type != MsgOrder && dec.Type != MsgLiveness {
		h.printf("  %s\n", dec)
	}
	h.queue = append(h.queue, dec)
}

func (h *harness) connected(a, b peer.ID) bool {
	na, nb := h.nodes[a], h.nodes[b]
	if na == nil || nb == nil || na.crashed || nb.crashed {
		return false
	}
	return h.group == nil || h.group[a] == h.group[b]
}

// deliver hands m to its destination unless a crash or a partition is in
// the way, and reports whether it arrived.
func (h *harness) deliver(m Message) bool {
	if !h.connected(m.From, m.To) || (h.lose != nil && h.lose(m)) {
		return false
	}
	hn := h.nodes[m.To]
	if hn.n.Stopped() != nil {
		return false
	}
	if err := hn.n.Step(m); err != nil {
		h.stats["step error"]++
		if h.errLog != nil {
			h.errLog(fmt.Sprintf("%s: %v", m.Type, err))
		}
		if h.trace {
			h.printf("%s: step %s: %v\n", hn.id, m.Type, err)
		}
	}
	h.collect(hn)
	return true
}

func (h *harness) drain() {
	for i := 0; len(h.queue) > 0; i++ {
		if i > 1_000_000 {
			panic("harness: network never drains")
		}
		m := h.queue[0]
		h.queue = h.queue[1:]
		h.deliver(m)
	}
}

// deliverBackground delivers queued order and liveness messages (and those
// their delivery produces), leaving the view-change protocol's queued.
func (h *harness) deliverBackground(livenessOnly bool) {
	for i := 0; ; i++ {
		j := slices.IndexFunc(h.queue, func(m Message) bool { return (m.Type == MsgOrder && !livenessOnly) || m.Type == MsgLiveness })
		if j < 0 || i > 1_000_000 {
			return
		}
		m := h.queue[j]
		h.queue = slices.Delete(h.queue, j, j+1)
		h.deliver(m)
	}
}

func (h *harness) tick(hn *hnode) {
	if hn.crashed || hn.n.Stopped() != nil {
		return
	}
	hn.n.Tick()
	h.collect(hn)
}

// settled reports whether the group is quiet: the network is empty, every
// live process has installed the same view, whose members are exactly the
// live processes, nobody is paused, changing, fetching or restoring.
func (h *harness) settled() bool {
	if len(h.queue) > 0 {
		return false
	}
	live := h.live()
	if len(live) == 0 {
		return true
	}
	v0, ok := live[0].n.View()
	if !ok {
		return false
	}
	if len(v0.Members) != len(live) {
		return false
	}
	for _, hn := range live {
		n := hn.n
		v, ok := n.View()
		if !ok || !v.Equal(v0) || !v.Contains(n.Self()) || n.ord.Paused() || n.prop != nil || n.fetch != nil ||
			!n.xfer.restored || len(n.sessions) > 0 || len(n.joins) > 0 || len(n.leaves) > 0 || n.leaving {
			return false
		}
	}
	return true
}

// stabilize alternates draining the network and ticking every live process
// until the group settles, and reports the rounds it took.
func (h *harness) stabilize(roundsMax int) (int, bool) {
	for round := 0; round < roundsMax; round++ {
		h.drain()
		if h.settled() {
			return round, true
		}
		for _, hn := range h.live() {
			h.tick(hn)
		}
	}
	h.drain()
	return roundsMax, h.settled()
}

// encodeState and decodeState are the test application's snapshot format:
// a count, then per record view, sender, seq, order, global and payload.
func encodeState(st []record) []byte {
	w := wire.NewBuffer(nil)
	w.Uvarint(uint64(len(st)))
	for _, r := range st {
		w.Uvarint(r.View)
		w.Uvarint(uint64(r.Sender))
		w.Uvarint(r.Seq)
		w.Uint8(uint8(r.Order))
		w.Uvarint(r.Global)
		w.String(r.Payload)
	}
	return w.Bytes()
}

func decodeState(p []byte) ([]record, error) {
	r := wire.NewReader(p)
	n := r.Count(1<<20, 6)
	st := make([]record, 0, n)
	for range n {
		st = append(st, record{View: r.Uvarint(), Sender: peer.ID(r.Uvarint()), Seq: r.Uvarint(),
			Order: order.Order(r.Uint8()), Global: r.Uvarint(), Payload: r.String(1 << 20)})
	}
	return st, r.Done()
}

// status prints each process's view and state.
func (h *harness) status() {
	for _, id := range h.ids() {
		hn := h.nodes[id]
		n := hn.n
		var flags []string
		switch {
		case hn.crashed:
			flags = append(flags, "crashed")
		case n.Stopped() != nil:
			flags = append(flags, "stopped")
		}
		if n.ord != nil && n.ord.Paused() && !hn.crashed && n.Stopped() == nil {
			flags = append(flags, "paused")
		}
		if !n.Restored() {
			flags = append(flags, "restoring")
		}
		v, ok := n.View()
		vs := "joining"
		if ok {
			vs = v.String()
		}
		if h.trace && n.view.ID != 0 {
			flags = append(flags, fmt.Sprintf("promised=%s faulty=%s", n.promised, n.faulty))
			if n.prop != nil {
				flags = append(flags, fmt.Sprintf("prop=%s/phase%d parts=%v promises=%d accepted=%s", n.prop.ballot, n.prop.phase, n.prop.participants, len(n.prop.promises), n.prop.accepted))
			}
			if n.decided != nil {
				flags = append(flags, "decided="+n.decided.String())
			}
			if n.fetch != nil {
				flags = append(flags, "fetching")
			}
			if n.pendingAccept != nil {
				flags = append(flags, "pending-accept")
			}
			if len(n.sessions)+len(n.joins)+len(n.leaves) > 0 || n.leaving {
				flags = append(flags, fmt.Sprintf("sessions=%d joins=%v leaves=%v leaving=%v", len(n.sessions), n.joins, n.leaves, n.leaving))
			}
		}
		h.printf("%s: %s %s\n", hn.proc.member, vs, strings.Join(flags, " "))
	}
}
