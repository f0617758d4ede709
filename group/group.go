package group

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vsync"
	"github.com/chorus-project/chorus/internal/wire"
)

// Group is this process's membership in one group: the shell that runs the
// vsync core with a goroutine, a ticker and the Host's transport.
type Group struct {
	cfg  Config
	h    Handler
	host *Host
	log  *slog.Logger

	inbox   chan wire.Envelope
	reqs    chan *request
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	joined  chan struct{} // closed when the member first holds a restored view
	joinErr error         // set before joined is closed if the join failed

	mu   sync.Mutex
	view View
	err  error // why the member stopped; nil while running

	// Owned by the run goroutine.
	node        *vsync.Node
	incarnation uint64
	attempts    int // joins after the first (rejoins, failed transfers)
	leaving     *request
	addrs       map[MemberID]string
	ticks       uint64
	waiting     []*request
	queries     map[queryID]*pendingQuery
	donors      []*donorTransfer
	rs          *restore
	lastView    View
	isJoined    bool
	buf         []byte
}

type requestKind uint8

const (
	reqSend requestKind = iota
	reqQuery
	reqLeave
)

type request struct {
	kind     requestKind
	payload  []byte // framed: tag byte, then the caller's bytes
	order    order.Order
	replies  int
	canceled atomic.Bool
	res      chan result // buffered, 1
}

type result struct {
	replies []Reply
	err     error
}

// Reply is one member's answer to a query.
type Reply struct {
	From    MemberID
	Payload []byte
}

type pendingQuery struct {
	req     *request
	want    int // 0: every member of the delivery view still in the group
	replies []Reply
	// expected is set when the querier delivers its own query: the members
	// of that view, less those that left the group since.
	expected []MemberID
}

// Join makes this process a member of the group cfg.GroupID: a new group
// with this process alone (cfg.Bootstrap), or an existing one through
// cfg.Contacts, with the application state restored from a member. It
// returns once the member holds a view and a restored state, or with ctx's
// error (the attempt is then abandoned).
func Join(ctx context.Context, cfg Config, h Handler) (*Group, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil Handler", ErrConfig)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	g := &Group{
		cfg:     cfg,
		h:       h,
		host:    cfg.Host,
		log:     cfg.Host.log.With("group", cfg.GroupID, "member", cfg.Host.cfg.ID),
		inbox:   make(chan wire.Envelope, cfg.Host.cfg.InboxMax),
		reqs:    make(chan *request, cfg.SendQueueMax),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		joined:  make(chan struct{}),
		addrs:   map[MemberID]string{cfg.Host.cfg.ID: cfg.Host.Addr()},
		queries: make(map[queryID]*pendingQuery),
	}
	for _, c := range append(slices.Clone(cfg.Contacts), cfg.Founders...) {
		if c.ID != cfg.Host.cfg.ID {
			g.learn(c.ID, c.Addr)
		}
	}
	if err := g.start(cfg.Incarnation); err != nil {
		return nil, err
	}
	if err := g.host.register(g); err != nil {
		return nil, err
	}
	go g.run()
	select {
	case <-g.joined:
		if g.joinErr != nil {
			g.Close()
			return nil, g.joinErr
		}
		return g, nil
	case <-ctx.Done():
		g.Close()
		return nil, fmt.Errorf("group: join %d: %w", cfg.GroupID, ctx.Err())
	}
}

// start makes the core of a new incarnation: a founder's or a joiner's.
func (g *Group) start(incarnation uint64) error {
	if incarnation == 0 {
		incarnation = uint64(time.Now().UnixNano())
	}
	incarnation = max(incarnation, g.incarnation+1)
	g.incarnation = incarnation
	self := peer.Member{ID: peer.ID(g.host.cfg.ID), Incarnation: peer.Incarnation(incarnation)}
	var err error
	switch {
	case g.cfg.Bootstrap && g.attempts == 0:
		g.node, err = vsync.New(g.cfg.VSync, self, vsync.View{ID: 1, Members: []peer.Member{self}})
	case len(g.cfg.Founders) > 0 && g.attempts == 0:
		initial := vsync.View{ID: 1}
		for _, f := range g.cfg.Founders {
			initial.Members = append(initial.Members, peer.Member{ID: peer.ID(f.ID), Incarnation: peer.Incarnation(f.Incarnation)})
		}
		g.node, err = vsync.New(g.cfg.VSync, self, initial)
	default:
		g.node, err = vsync.NewJoiner(g.cfg.VSync, self, g.contactIDs())
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// contactIDs: the members of the last view (a rejoin), then the configured
// contacts, without this process.
func (g *Group) contactIDs() []peer.ID {
	var ids []peer.ID
	add := func(id MemberID) {
		if id != g.host.cfg.ID && !slices.Contains(ids, peer.ID(id)) {
			ids = append(ids, peer.ID(id))
		}
	}
	for _, m := range g.lastView.Members {
		add(m.ID)
	}
	for _, c := range g.cfg.Contacts {
		add(c.ID)
	}
	for _, c := range g.cfg.Founders {
		add(c.ID)
	}
	return ids
}

// View returns the view this member installed last (ID 0 before the
// first).
func (g *Group) View() View {
	g.mu.Lock()
	defer g.mu.Unlock()
	v := g.view
	v.Members = slices.Clone(v.Members)
	return v
}

// Err reports why the member stopped, or nil while it runs.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Done is closed when the member has stopped (Close, Leave, or a failure
// that Err reports).
func (g *Group) Done() <-chan struct{} { return g.done }

// Send multicasts payload to the group with order o. It returns once the
// message is queued for the group's goroutine, which hands it to the
// protocol in call order as the send window allows (or once the view
// change in progress, or this member's join, is over); while
// Config.SendQueueMax messages wait, Send blocks until ctx ends. Like
// JGroups' send, it does not wait for the message to be ordered: a message
// still queued when this member stops (Close, a crash, an exclusion it
// does not survive) is lost as in a crash. Once this member multicasts it,
// every member of the view it is sent in that stays in the group delivers
// it, this member included.
func (g *Group) Send(ctx context.Context, payload []byte, o Order) error {
	if o < FIFO || o > Safe {
		return fmt.Errorf("%w: order %d", ErrConfig, o)
	}
	if len(payload) > g.cfg.PayloadBytesMax() {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), g.cfg.PayloadBytesMax())
	}
	return g.enqueue(ctx, &request{kind: reqSend, payload: frame(payloadMessage, payload), order: order.Order(o)})
}

// enqueue hands r to the group's goroutine, waiting while the queue is
// full.
func (g *Group) enqueue(ctx context.Context, r *request) error {
	select {
	case <-g.done:
		return g.stoppedErr()
	default:
	}
	select {
	case g.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.done:
		return g.stoppedErr()
	}
}

// reply answers a caller that waits (Query, Leave); Send does not.
func (r *request) reply(res result) {
	if r.res != nil {
		r.res <- res
	}
}

// Query multicasts payload in total order and gathers the replies that
// every member's Handler.Deliver returns for it: the first replies of
// them, or, with replies ≤ 0, one from every member of the view it was
// delivered in that is still in the group. This member's own reply is
// among them. Replies travel point to point, best effort: a lost reply is
// waited for until ctx ends.
func (g *Group) Query(ctx context.Context, payload []byte, replies int) ([]Reply, error) {
	return g.do(ctx, &request{kind: reqQuery, payload: frame(payloadQuery, payload), order: order.Total, replies: replies}, len(payload))
}

// Leave removes this member from the group: it takes part in the view
// change, delivers the rest of its view, and stops. The Host stays open.
func (g *Group) Leave(ctx context.Context) error {
	_, err := g.do(ctx, &request{kind: reqLeave}, 0)
	if err == nil || errors.Is(err, vsync.ErrLeft) {
		g.Close()
		return nil
	}
	return err
}

func frame(tag byte, p []byte) []byte {
	b := make([]byte, 1+len(p))
	b[0] = tag
	copy(b[1:], p)
	return b
}

func (g *Group) do(ctx context.Context, r *request, payloadBytes int) ([]Reply, error) {
	if payloadBytes > g.cfg.PayloadBytesMax() {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, payloadBytes, g.cfg.PayloadBytesMax())
	}
	r.res = make(chan result, 1)
	if err := g.enqueue(ctx, r); err != nil {
		return nil, err
	}
	select {
	case res := <-r.res:
		return res.replies, res.err
	case <-ctx.Done():
		r.canceled.Store(true)
		return nil, ctx.Err()
	case <-g.done:
		return nil, g.stoppedErr()
	}
}

func (g *Group) stoppedErr() error {
	if err := g.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Close stops this member at once, as a crash would: it does not leave
// (the group excludes it after its failure detector's timeout). Use Leave
// to depart cleanly.
func (g *Group) Close() error {
	g.once.Do(func() { close(g.closing) })
	<-g.done
	return nil
}

// run is the member's goroutine: it feeds the core and carries out its
// Readys (send, apply, stream state), one event at a time.
func (g *Group) run() {
	defer g.shutdown()
	ticker := time.NewTicker(g.cfg.TickInterval)
	defer ticker.Stop()
	g.gossip()
	for {
		// A full waiting list stops intake (nil channel): callers then
		// queue in g.reqs, and beyond it Send and Query block.
		reqs := g.reqs
		if len(g.waiting) >= g.cfg.SendQueueMax {
			reqs = nil
		}
		select {
		case <-g.closing:
			g.stop(ErrClosed)
			return
		case env := <-g.inbox:
			g.receive(env)
			g.intake()
		case r := <-reqs:
			g.waiting = append(g.waiting, r)
			g.intake()
		case <-ticker.C:
			g.ticks++
			g.node.Tick()
			if g.ticks%uint64(g.cfg.AddrGossipTicks) == 0 || (!g.isJoined && g.ticks%uint64(g.cfg.VSync.RetryTicks) == 0) {
				g.gossip()
			}
		}
		if !g.step() {
			return
		}
	}
}

// intakeEnvelopesMax bounds the envelopes one intake takes before the
// member handles its Ready: enough that replies, acknowledgements and
// deliveries batch under load, few enough that a flood of input does not
// hold back this member's own output for long.
const intakeEnvelopesMax = 256

// intake takes, without blocking, what else has arrived (envelopes and
// requests) before the member handles its Ready, so that everything that
// arrived together is served by one Ready: under load, one ordering batch,
// one stability pass and one transport hand-off cover many messages
// instead of one each. Requests are taken while the waiting list has room
// (SendQueueMax); the rest stay in g.reqs.
func (g *Group) intake() {
	for range intakeEnvelopesMax {
		select {
		case env := <-g.inbox:
			g.receive(env)
			continue
		default:
		}
		break
	}
	for len(g.waiting) < g.cfg.SendQueueMax {
		select {
		case r := <-g.reqs:
			g.waiting = append(g.waiting, r)
			continue
		default:
		}
		break
	}
}

// step serves waiting requests and handles the core's output until it has
// none. It returns false once the member has stopped for good.
func (g *Group) step() bool {
	for {
		g.serve()
		g.pumpDonors()
		if !g.node.HasReady() {
			return true
		}
		if !g.handleReady(g.node.Ready()) {
			return false
		}
	}
}

func (g *Group) receive(env wire.Envelope) {
	switch env.Kind {
	case kindAddrs:
		recs, err := decodeAddrs(env.Payload)
		if err != nil {
			g.log.Warn("group: dropped addrs", "from", env.From, "err", err)
			return
		}
		fresh := false
		for _, r := range recs {
			if r.ID != g.host.cfg.ID && g.learn(r.ID, r.Addr) {
				fresh = true
			}
		}
		if fresh {
			g.gossip()
		}
	case kindReply:
		q, reply, err := decodeReply(env.Payload, g.cfg.PayloadBytesMax())
		if err != nil {
			g.log.Warn("group: dropped reply", "from", env.From, "err", err)
			return
		}
		g.addReply(q, Reply{From: MemberID(env.From), Payload: reply})
	case vsync.WireKind:
		m, err := vsync.DecodeMessage(env.Payload, g.cfg.VSync.Limits())
		if err != nil {
			g.log.Warn("group: dropped message", "from", env.From, "err", err)
			return
		}
		m.From, m.To = env.From, env.To
		if err := g.node.Step(m); err != nil && !errors.Is(err, vsync.ErrStopped) {
			g.log.Debug("group: refused message", "from", env.From, "type", m.Type, "err", err)
		}
	}
}

// learn records an address; it reports whether it was new.
func (g *Group) learn(id MemberID, addr string) bool {
	if g.addrs[id] == addr {
		return false
	}
	const addrsMax = 4 * vsync.MembersMaxMax
	if _, ok := g.addrs[id]; !ok && len(g.addrs) >= addrsMax {
		return false
	}
	g.addrs[id] = addr
	g.host.setPeer(id, addr)
	return true
}

// gossip sends the addresses this member knows to the members of its view,
// or, while it joins, its own address to its contacts: the member that
// decides a view must reach the joiners it adds.
func (g *Group) gossip() {
	var recs []addrRecord
	ids := slices.Sorted(maps.Keys(g.addrs))
	for _, id := range ids {
		if len(recs) == addrsPerMessageMax {
			break
		}
		recs = append(recs, addrRecord{ID: id, Addr: g.addrs[id]})
	}
	p := appendAddrs(nil, recs)
	var to []peer.ID
	if v, ok := g.node.View(); ok {
		to = v.IDs()
	} else {
		to = g.contactIDs()
	}
	for _, id := range to {
		if MemberID(id) != g.host.cfg.ID {
			g.host.send(wire.Envelope{Kind: kindAddrs, Channel: g.cfg.GroupID, From: peer.ID(g.host.cfg.ID), To: id, Payload: p})
		}
	}
}

// serve hands waiting requests to the core, in arrival order, until one
// has to wait (window full, view change, not yet a member).
func (g *Group) serve() {
	for len(g.waiting) > 0 {
		r := g.waiting[0]
		if r.canceled.Load() {
			g.waiting = g.waiting[1:]
			continue
		}
		if r.kind == reqLeave {
			err := g.node.Leave()
			if err != nil && !errors.Is(err, vsync.ErrLeaving) {
				if errors.Is(err, vsync.ErrNotMember) {
					return // not installed yet: wait
				}
				r.reply(result{err: err})
			} else {
				g.leaving = r
			}
			g.waiting = g.waiting[1:]
			continue
		}
		if r.kind == reqQuery && len(g.queries) >= g.cfg.QueriesPendingMax {
			return
		}
		payload, n := g.pack()
		seq, err := g.node.Send(payload, r.order)
		switch {
		case errors.Is(err, order.ErrWindowFull), errors.Is(err, order.ErrPaused), errors.Is(err, vsync.ErrNotMember),
			errors.Is(err, order.ErrFinished):
			return
		case err != nil:
			for _, w := range g.waiting[:n] {
				w.reply(result{err: err})
			}
		case r.kind == reqQuery:
			v, _ := g.node.View()
			g.queries[queryID{View: v.ID, Seq: seq}] = &pendingQuery{req: r, want: r.replies}
		default:
			for _, w := range g.waiting[:n] {
				w.reply(result{})
			}
		}
		g.waiting = g.waiting[n:]
	}
}

// pack returns the payload of the next multicast and how many waiting
// requests it carries: the first request's own, or, when Sends of the same
// order wait behind it, those packed together up to PackBytesMax.
func (g *Group) pack() ([]byte, int) {
	first := g.waiting[0]
	if first.kind != reqSend {
		return first.payload, 1
	}
	n := 1
	size := 1 + wire.UvarintLen(2) + wire.UvarintLen(uint64(len(first.payload)-1)) + len(first.payload) - 1
	for n < len(g.waiting) {
		r := g.waiting[n]
		if r.kind != reqSend || r.order != first.order {
			break
		}
		grown := size + wire.UvarintLen(uint64(len(r.payload)-1)) + len(r.payload) - 1 + 1 // +1: the count may grow a byte
		if grown > g.cfg.PackBytesMax {
			break
		}
		size = grown
		n++
	}
	if n == 1 {
		return first.payload, 1
	}
	parts := make([][]byte, n)
	for i, r := range g.waiting[:n] {
		parts[i] = r.payload[1:] // without its tag
	}
	p := appendPacked(make([]byte, 0, packedBytes(parts)), parts)
	invariant.Check(len(p) <= g.cfg.PackBytesMax, "group: packed %d bytes over PackBytesMax %d", len(p), g.cfg.PackBytesMax)
	return p, n
}

// handleReady carries out one Ready: send, apply in view order, stream
// and restore state, then Advance. It returns false if the member stopped.
func (g *Group) handleReady(rd vsync.Ready) bool {
	for i, m := range rd.Messages {
		// A multicast leaves as one copy per member, next to each other
		// and differing only in To, which the envelope carries: encode
		// it once. The transport copies the payload into its queue.
		if i == 0 || !sameEncoding(&rd.Messages[i-1], &rd.Messages[i]) {
			g.buf = vsync.AppendMessage(g.buf[:0], m)
		}
		g.host.send(wire.Envelope{Kind: vsync.WireKind, Channel: g.cfg.GroupID, From: m.From, To: m.To, Payload: g.buf})
	}
	vcs := rd.ViewChanges
	for _, d := range rd.Deliveries {
		for len(vcs) > 0 && vcs[0].View.ID <= d.View {
			g.installed(vcs[0])
			vcs = vcs[1:]
		}
		g.deliver(d)
	}
	for _, vc := range vcs {
		g.installed(vc)
	}
	for _, ti := range rd.TransferInstructions {
		g.donate(ti)
	}
	for _, c := range rd.Chunks {
		if c.Index == 0 {
			if g.rs != nil {
				g.rs.abort()
			}
			g.rs = startRestore(g.h)
		}
		if g.rs == nil {
			continue // a chunk of an attempt this member gave up
		}
		finished, err := g.rs.feed(c)
		if finished {
			g.rs = nil
		}
		if err != nil {
			// Never Advance past a failed restore: this incarnation is
			// abandoned and a new one joins, or the member gives up.
			g.log.Warn("group: state transfer failed", "err", err)
			return g.restart(err)
		}
	}
	if rd.Stopped != nil {
		return g.stopped(rd.Stopped)
	}
	g.node.Advance(rd)
	if !g.isJoined && g.node.Restored() {
		if _, ok := g.node.View(); ok {
			g.isJoined = true
			g.attempts = 0
			g.markJoined(nil)
		}
	}
	return true
}

// sameEncoding reports whether a and b, order messages of one Ready,
// encode to the same bytes because they are copies of one multicast (data,
// ordering batch or stability report) that share their slices. It errs
// towards false: anything else is encoded again.
func sameEncoding(a, b *vsync.Message) bool {
	if a.Type != vsync.MsgOrder || b.Type != vsync.MsgOrder || a.View != b.View {
		return false
	}
	x, y := &a.Order, &b.Order
	if x.Type != y.Type || x.View != y.View {
		return false
	}
	switch x.Type {
	case order.MsgData:
		return x.Sender == y.Sender && x.Seq == y.Seq && x.StableSeq == y.StableSeq && x.Order == y.Order &&
			sameSlice(x.Clock, y.Clock) && sameSlice(x.Payload, y.Payload)
	case order.MsgOrder:
		return x.Global == y.Global && sameSlice(x.Entries, y.Entries)
	case order.MsgStable:
		return x.Ordered == y.Ordered && sameSlice(x.Received, y.Received) && sameSlice(x.Delivered, y.Delivered)
	}
	return false
}

// sameSlice reports whether a and b are the same slice (same array, same
// length), not merely equal contents.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (g *Group) installed(vc vsync.ViewChange) {
	v := View{ID: vc.View.ID, Rank: vc.Rank, Members: make([]Member, len(vc.View.Members))}
	for i, m := range vc.View.Members {
		v.Members[i] = Member{ID: MemberID(m.ID), Incarnation: uint64(m.Incarnation), Addr: g.addrs[MemberID(m.ID)]}
	}
	g.mu.Lock()
	g.view = v
	g.mu.Unlock()
	g.lastView = v
	g.h.ViewChange(v)
	g.viewChangedQueries(v)
	g.gossip()
}

func (g *Group) deliver(d vsync.Delivery) {
	if len(d.Payload) > 0 && d.Payload[0] == payloadPacked {
		parts, err := decodePacked(d.Payload[1:], g.cfg.PayloadBytesMax())
		if err != nil {
			g.log.Error("group: delivered packed payload does not decode", "sender", d.Sender, "seq", d.Seq, "err", err)
			return
		}
		for i, p := range parts {
			g.h.Deliver(Message{View: d.View, Sender: MemberID(d.Sender), Seq: d.Seq, Part: i, Order: Order(d.Order),
				Global: d.Global, Payload: p})
		}
		return
	}
	if len(d.Payload) == 0 || d.Payload[0] > payloadQuery {
		// Every member skips the same message: peers run this code, so
		// this is a bug, not an attack; say so loudly.
		g.log.Error("group: delivered payload without a valid tag", "sender", d.Sender, "seq", d.Seq)
		return
	}
	m := Message{View: d.View, Sender: MemberID(d.Sender), Seq: d.Seq, Order: Order(d.Order), Global: d.Global,
		Query: d.Payload[0] == payloadQuery, Payload: d.Payload[1:]}
	reply := g.h.Deliver(m)
	if !m.Query {
		return
	}
	q := queryID{View: d.View, Seq: d.Seq}
	if len(reply) > g.cfg.PayloadBytesMax() {
		g.log.Error("group: reply over PayloadBytesMax dropped", "bytes", len(reply), "querier", d.Sender)
		return
	}
	if m.Sender == g.host.cfg.ID {
		if pq := g.queries[q]; pq != nil && pq.expected == nil {
			for _, mem := range g.lastView.Members {
				pq.expected = append(pq.expected, mem.ID)
			}
		}
		g.addReply(q, Reply{From: g.host.cfg.ID, Payload: slices.Clone(reply)})
		return
	}
	g.host.send(wire.Envelope{Kind: kindReply, Channel: g.cfg.GroupID, From: peer.ID(g.host.cfg.ID), To: d.Sender,
		Payload: appendReply(nil, q, reply)})
}

func (g *Group) addReply(q queryID, r Reply) {
	pq := g.queries[q]
	if pq == nil || slices.ContainsFunc(pq.replies, func(x Reply) bool { return x.From == r.From }) {
		return // late, duplicate, or not ours
	}
	pq.replies = append(pq.replies, r)
	g.checkQuery(q, pq)
}

func (g *Group) checkQuery(q queryID, pq *pendingQuery) {
	if pq.req.canceled.Load() {
		delete(g.queries, q)
		return
	}
	done := false
	switch {
	case pq.want > 0:
		done = len(pq.replies) >= pq.want
	case pq.expected != nil:
		done = true
		for _, id := range pq.expected {
			if !slices.ContainsFunc(pq.replies, func(x Reply) bool { return x.From == id }) {
				done = false
				break
			}
		}
	}
	if done {
		pq.req.reply(result{replies: pq.replies})
		delete(g.queries, q)
	}
}

// viewChangedQueries stops waiting for members that are no longer in the
// group; a query asking for more replies than members remain gets what
// there is.
func (g *Group) viewChangedQueries(v View) {
	for _, q := range slices.SortedFunc(maps.Keys(g.queries), func(a, b queryID) int {
		if a.View != b.View {
			return int(a.View - b.View)
		}
		return int(a.Seq - b.Seq)
	}) {
		pq := g.queries[q]
		if pq.expected != nil {
			pq.expected = slices.DeleteFunc(pq.expected, func(id MemberID) bool {
				return !slices.ContainsFunc(v.Members, func(m Member) bool { return m.ID == id })
			})
		}
		if pq.want > len(v.Members) {
			pq.want = len(v.Members)
		}
		g.checkQuery(q, pq)
	}
}

// donate snapshots the application state now (after this Ready's
// deliveries) and queues it for streaming.
func (g *Group) donate(ti vsync.TransferInstruction) {
	sp := &spool{memMax: g.cfg.SpoolMemoryBytesMax, dir: g.cfg.SpoolDir}
	if err := g.h.Snapshot(sp); err != nil {
		// The joiner sees no progress and asks another member.
		sp.close()
		g.log.Error("group: Snapshot failed; the joiner will ask another member", "joiner", ti.Joiner, "err", err)
		return
	}
	g.donors = slices.DeleteFunc(g.donors, func(d *donorTransfer) bool {
		if d.joiner == ti.Joiner {
			d.sp.close()
			return true
		}
		return false
	})
	g.donors = append(g.donors, &donorTransfer{joiner: ti.Joiner, transfer: ti.Transfer, sp: sp})
}

// pumpDonors sends chunks as the transfer windows allow.
func (g *Group) pumpDonors() {
	g.donors = slices.DeleteFunc(g.donors, func(d *donorTransfer) bool {
		for {
			if !d.havePending {
				data, last, err := d.sp.next(g.cfg.VSync.ChunkBytesMax)
				if err != nil {
					if err != io.EOF {
						g.log.Error("group: state transfer aborted", "joiner", d.joiner, "err", err)
					}
					d.sp.close()
					return true
				}
				d.pending, d.pendingLast, d.havePending = data, last, true
			}
			err := g.node.SendChunk(d.joiner, d.transfer, d.pending, d.pendingLast)
			switch {
			case err == nil:
				d.havePending = false
				if d.pendingLast {
					d.sp.close()
					return true
				}
			case errors.Is(err, vsync.ErrTransferWindowFull):
				return false
			default: // the joiner moved on, or this member stopped
				d.sp.close()
				return true
			}
		}
	})
}

// stopped handles the core's stop: a leave completes, an exclusion leads
// to a rejoin as a new incarnation.
func (g *Group) stopped(reason error) bool {
	if errors.Is(reason, vsync.ErrLeft) {
		if g.leaving != nil {
			g.leaving.reply(result{})
		}
		g.stop(fmt.Errorf("%w: %w", ErrStopped, reason))
		return false
	}
	g.log.Warn("group: member stopped; rejoining as a new incarnation", "reason", reason)
	return g.restart(reason)
}

// restart abandons this incarnation and joins as a new one, unless
// JoinAttemptsMax is spent.
func (g *Group) restart(reason error) bool {
	g.attempts++
	if g.rs != nil {
		g.rs.abort()
		g.rs = nil
	}
	for _, d := range g.donors {
		d.sp.close()
	}
	g.donors = nil
	if g.attempts > g.cfg.JoinAttemptsMax || g.leaving != nil {
		g.stop(fmt.Errorf("%w: gave up after %d attempts: %w", ErrStopped, g.attempts, reason))
		return false
	}
	g.isJoined = false
	if err := g.start(0); err != nil {
		g.stop(fmt.Errorf("%w: %w", ErrStopped, err))
		return false
	}
	g.gossip()
	return true
}

// stop records why the member stopped and fails what waits on it.
func (g *Group) stop(reason error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = reason
	}
	g.mu.Unlock()
	g.markJoined(reason)
}

func (g *Group) markJoined(err error) {
	select {
	case <-g.joined:
	default:
		g.joinErr = err
		close(g.joined)
	}
}

func (g *Group) shutdown() {
	if g.rs != nil {
		g.rs.abort()
	}
	for _, d := range g.donors {
		d.sp.close()
	}
	g.host.unregister(g)
	err := g.stoppedErrLocked()
	for _, r := range g.waiting {
		r.reply(result{err: err})
	}
	for _, pq := range g.queries {
		pq.req.reply(result{err: err})
	}
	close(g.done)
}

func (g *Group) stoppedErrLocked() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = ErrClosed
	}
	return g.err
}
