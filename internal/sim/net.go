package sim

import (
	"container/heap"
	"fmt"
	"hash"
	"hash/fnv"
	"io"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
)

// endpoint names a member (its peer.ID, 1..Members) or a client
// (clientEndpointBase + index).
type endpoint uint64

const clientEndpointBase endpoint = 1000

func (e endpoint) String() string {
	if e >= clientEndpointBase {
		return fmt.Sprintf("c%d", e-clientEndpointBase)
	}
	return peer.ID(e).String()
}

// clientMsgKind says what a client-member message is.
type clientMsgKind uint8

const (
	reqPut clientMsgKind = iota + 1
	reqGet
	repOK        // put applied / get served (value in Value)
	repNotLeader // redirect: Leader is the member's hint
	repBusy      // back-pressure: retry later
	repRefused   // the member is down: its host refused the connection
)

func (k clientMsgKind) String() string {
	return [...]string{"?", "put", "get", "ok", "not-leader", "busy", "refused"}[k]
}

// clientMsg is a request from a client to a member or its reply.
type clientMsg struct {
	Kind   clientMsgKind
	Client uint32
	Seq    uint64 // the client's operation
	Key    string
	Value  string
	Leader peer.ID
}

func (m clientMsg) String() string {
	return fmt.Sprintf("%s c%d#%d k=%q v=%q hint=%s", m.Kind, m.Client, m.Seq, m.Key, m.Value, m.Leader)
}

// envelope is a message in flight. Paxos messages travel encoded, as on a
// real wire: the receiver decodes its own copy, so a duplicate never aliases
// the sender's buffers and the codec is exercised on every delivery.
type envelope struct {
	at       int64  // step of delivery
	seq      uint64 // insertion order, to break ties deterministically
	from, to endpoint
	paxos    []byte // encoded paxos.Message, or nil
	client   *clientMsg
}

// flight is the priority queue of messages in flight, by (at, seq).
type flight []*envelope

func (f flight) Len() int { return len(f) }
func (f flight) Less(i, j int) bool {
	if f[i].at != f[j].at {
		return f[i].at < f[j].at
	}
	return f[i].seq < f[j].seq
}
func (f flight) Swap(i, j int) { f[i], f[j] = f[j], f[i] }
func (f *flight) Push(x any)   { *f = append(*f, x.(*envelope)) }
func (f *flight) Pop() any {
	old := *f
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*f = old[:len(old)-1]
	return e
}

// netConfig is the per-run network behaviour, drawn from the seed.
type netConfig struct {
	lossPct      int   // per message, percent (0 after the faults stop)
	dupPct       int   // per message
	delayStepMax int64 // a normal delivery takes 1..delayStepMax steps
	slowPct      int   // a message is slow (up to slowFactor*delayStepMax): reordering
}

// slowFactor is how much later than normal a slow message may arrive.
const slowFactor = 10

// network carries messages between endpoints with seeded delay, loss,
// duplication and reordering, and member-to-member partitions. Clients are
// never partitioned (they reach every member), but their messages are
// delayed, lost and duplicated like any other.
type network struct {
	cfg      netConfig
	q        flight
	seq      uint64
	inFlight int
	// blocked[from][to] cuts the link from member from to member to (both
	// 1-based; index 0 unused). A symmetric partition cuts both directions.
	blocked [][]bool
}

// inFlightMax bounds the messages in flight; past it new messages are
// dropped, which the protocol must tolerate like any other loss. A healthy
// run stays far below it.
const inFlightMax = 100_000

func newNetwork(members int, cfg netConfig) *network {
	n := &network{cfg: cfg, blocked: make([][]bool, members+1)}
	for i := range n.blocked {
		n.blocked[i] = make([]bool, members+1)
	}
	return n
}

func (n *network) push(e *envelope) bool {
	if n.inFlight >= inFlightMax {
		return false
	}
	n.seq++
	e.seq = n.seq
	heap.Push(&n.q, e)
	n.inFlight++
	return true
}

// next pops the first message due at or before step, or nil.
func (n *network) next(step int64) *envelope {
	if len(n.q) == 0 || n.q[0].at > step {
		return nil
	}
	n.inFlight--
	return heap.Pop(&n.q).(*envelope)
}

func (n *network) cut(from, to endpoint) bool {
	if from >= clientEndpointBase || to >= clientEndpointBase {
		return false
	}
	return n.blocked[from][to]
}

func (n *network) heal() {
	for _, row := range n.blocked {
		clear(row)
	}
}

// tracer appends every event of a run to an FNV-64a hash and, when asked,
// to a writer. Two runs of one seed must produce the same hash.
type tracer struct {
	h   hash.Hash64
	w   io.Writer
	buf []byte
}

func newTracer(w io.Writer) *tracer { return &tracer{h: fnv.New64a(), w: w} }

func (t *tracer) event(step int64, format string, args ...any) {
	t.buf = fmt.Appendf(t.buf[:0], "%8d ", step)
	t.buf = fmt.Appendf(t.buf, format, args...)
	t.buf = append(t.buf, '\n')
	t.h.Write(t.buf)
	if t.w != nil {
		t.w.Write(t.buf)
	}
}

// message records a message event. The hash takes the encoded bytes, which
// is cheap; the text (decoding the message again) is made only when the
// trace is written out.
func (t *tracer) message(step int64, what string, from, to endpoint, p []byte, cm *clientMsg) {
	t.buf = fmt.Appendf(t.buf[:0], "%8d %s %s->%s ", step, what, from, to)
	if cm != nil {
		t.buf = fmt.Appendf(t.buf, "%s", cm)
	} else {
		t.buf = append(t.buf, p...)
	}
	t.h.Write(t.buf)
	if t.w == nil {
		return
	}
	t.buf = fmt.Appendf(t.buf[:0], "%8d %s %s->%s ", step, what, from, to)
	if cm != nil {
		t.buf = fmt.Appendf(t.buf, "%s\n", cm)
	} else if m, err := paxos.DecodeMessage(p, paxos.DefaultLimits); err != nil {
		t.buf = fmt.Appendf(t.buf, "undecodable: %v\n", err)
	} else {
		t.buf = fmt.Appendf(t.buf, "%s\n", m)
	}
	t.w.Write(t.buf)
}
