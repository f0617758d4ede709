package sim

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/peer"
)

// Client behaviour, in steps.
const (
	// opTimeoutSteps: a client gives up on an operation after 30 ticks. A
	// put given up on is "unknown" (it may or may not take effect); a get
	// given up on had no effect and leaves the history.
	opTimeoutSteps = 30 * stepsPerTick
	// attemptSteps: a request unanswered for 8 ticks is sent again to the
	// next member. Reads have no effect, so retrying them is safe; a put
	// carries (client, seq), so the store applies it at most once however
	// often it is proposed.
	attemptSteps = 8 * stepsPerTick
	// thinkStepsMax: the pause between a client's operations.
	thinkStepsMax = 30
	// redirectStepsMax and busyStepsMax: back-off before re-sending after
	// a redirect or back-pressure.
	redirectStepsMax = 10
	busyStepsMax     = 30
	// livenessOps: after the faults stop, each client runs a put then a
	// get, which must both succeed within Options.HealTicksMax.
	livenessOps = 2
)

type opStatus uint8

const (
	opPending   opStatus = iota + 1
	opOK                 // the client got the answer
	opUnknown            // a put the client gave up on: may or may not have taken effect
	opAbandoned          // a get the client gave up on: no effect, not checked
)

// opRecord is one operation of the history: who, what, when it was invoked
// and when it returned (on the world's event clock), and what it returned.
type opRecord struct {
	client   uint32
	seq      uint64
	put      bool
	key      string
	value    string // the put's value, or the get's result
	call     int64
	ret      int64
	status   opStatus
	liveness bool
}

func (o *opRecord) String() string {
	if o == nil {
		return "none"
	}
	kind := "get"
	if o.put {
		kind = "put"
	}
	return fmt.Sprintf("c%d#%d %s(%q)=%q [%d,%d] status %d", o.client, o.seq, kind, o.key, o.value, o.call, o.ret, o.status)
}

// client is a simulated client: one operation at a time, sent to the member
// it believes leads, redirected by NotLeaderError hints.
type client struct {
	id     uint32
	leader peer.ID // where requests go
	seq    uint64
	op     *opRecord

	nextOpAt   int64
	deadline   int64
	resendAt   int64 // 0: nothing to re-send
	attemptEnd int64 // when to try the next member

	livenessLeft int
}

func (w *world) nextClock() int64 {
	w.clock++
	return w.clock
}

func (w *world) runClients() {
	for _, c := range w.clients {
		c.act(w)
	}
}

func (c *client) act(w *world) {
	if c.op == nil {
		if w.step < c.nextOpAt {
			return
		}
		switch {
		case w.phase == phaseFaulty:
			c.invoke(w, w.rng.IntN(2) == 0, false)
		case c.livenessLeft > 0:
			c.invoke(w, c.livenessLeft == livenessOps, true)
		}
		return
	}
	switch {
	case w.step >= c.deadline:
		c.giveUp(w)
	case c.resendAt != 0 && w.step >= c.resendAt:
		c.resendAt = 0
		c.sendRequest(w)
	case c.resendAt == 0 && w.step >= c.attemptEnd:
		c.leader = c.nextMember(w, c.leader)
		c.sendRequest(w)
	}
}

func (c *client) invoke(w *world, put bool, liveness bool) {
	c.seq++
	op := &opRecord{client: c.id, seq: c.seq, put: put, key: fmt.Sprintf("k%d", w.rng.IntN(w.opts.Keys)),
		status: opPending, liveness: liveness}
	if put {
		op.value = fmt.Sprintf("c%d.%d", c.id, c.seq) // unique: recognisable when applied
	}
	op.call = w.nextClock()
	c.op = op
	w.history = append(w.history, op)
	w.stats.OpsInvoked++
	c.deadline = w.step + opTimeoutSteps
	if liveness {
		c.deadline = w.step + int64(w.opts.HealTicksMax)*stepsPerTick
	}
	c.resendAt = 0
	w.trace("c%d invoke %s", c.id, op)
	c.sendRequest(w)
}

func (c *client) sendRequest(w *world) {
	kind := reqGet
	if c.op.put {
		kind = reqPut
	}
	c.attemptEnd = w.step + attemptSteps
	w.send(clientEndpointBase+endpoint(c.id), endpoint(c.leader), nil,
		&clientMsg{Kind: kind, Client: c.id, Seq: c.op.seq, Key: c.op.key, Value: c.op.value})
}

func (c *client) giveUp(w *world) {
	op := c.op
	if op.put {
		op.status = opUnknown
		w.stats.OpsUnknown++
	} else {
		op.status = opAbandoned
		w.stats.ReadsAbandoned++
	}
	if op.liveness {
		w.fail("liveness", "client c%d: %s not answered %d ticks after the faults stopped", c.id, op, w.opts.HealTicksMax)
		c.livenessLeft = 0
	}
	w.trace("c%d give up %s", c.id, op)
	c.finish(w)
}

func (c *client) finish(w *world) {
	c.op = nil
	c.nextOpAt = w.step + 1 + w.rng.Int64N(thinkStepsMax)
}

// receive handles a member's reply; replies to earlier operations (late or
// duplicated) are ignored.
func (c *client) receive(w *world, from endpoint, m clientMsg) {
	w.tr.message(w.step, "deliver", from, clientEndpointBase+endpoint(c.id), nil, &m)
	if c.op == nil || m.Seq != c.op.seq {
		return
	}
	switch m.Kind {
	case repOK:
		op := c.op
		op.ret = w.nextClock()
		op.status = opOK
		if !op.put {
			op.value = m.Value
		}
		w.stats.OpsOK++
		if op.liveness {
			c.livenessLeft--
		}
		w.trace("c%d return %s", c.id, op)
		c.leader = peer.ID(from)
		c.finish(w)
	case repNotLeader, repRefused:
		if m.Leader != peer.None && m.Leader != peer.ID(from) {
			c.leader = m.Leader
		} else {
			c.leader = c.nextMember(w, peer.ID(from))
		}
		c.resendAt = w.step + 1 + w.rng.Int64N(redirectStepsMax)
	case repBusy:
		c.resendAt = w.step + 1 + w.rng.Int64N(busyStepsMax)
	}
}

func (c *client) nextMember(w *world, after peer.ID) peer.ID {
	return peer.ID(int(after)%w.opts.Members + 1)
}
