// Package liveness is a tick-driven failure detector with verified suspicion.
//
// Each member runs one Detector per view. Every HeartbeatTicks it sends a
// heartbeat to every other member. Any message from a peer (a heartbeat, a
// probe answer, or any other protocol traffic the caller reports with Heard)
// proves the peer alive. A peer not heard from for SuspectTicks becomes
// suspected, and the suspicion is verified before anyone acts on it, the way
// JGroups' VERIFY_SUSPECT and SWIM (Das, Gupta, Motivala, DSN 2002, section
// 4.2) do:
//
//  1. the detector pings the suspect directly, and asks IndirectProbes other
//     members (PingReq) to ping it on its behalf, so that one lossy link does
//     not condemn a live member;
//  2. an answer (Ack), a relayed answer (IndirectAck) or any other message
//     from the suspect clears the suspicion;
//  3. a suspect still silent VerifyTicks after the probe is reported Faulty.
//
// Faulty is final for the detector: the caller (vsync) proposes to exclude
// the member, and a member excluded while alive rejoins as a new incarnation
// with a new detector (DESIGN.md section 3). Messages from a faulty peer are
// still accepted (they are answered) but do not revive it.
//
// The detector is a pure value: time is the number of Tick calls, output is
// collected with Ready and acknowledged with Advance (see Ready for the
// caller's contract), and peers are visited in ascending id order so the
// output is deterministic.
//
// Encoded form of a Message (the envelope carries From and To):
//
//	offset  size   field
//	0       1      type: 1 heartbeat, 2 ping, 3 ack, 4 ping-req, 5 indirect-ack
//	1       1..10  subject, uvarint peer.ID (0 when the type has none)
package liveness

import (
	"errors"
	"fmt"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// WireKind is the envelope kind of liveness messages (the 0x02xx range is
// group communication's; see wire.Kind).
const WireKind wire.Kind = 0x0220

// IndirectProbesMax bounds Config.IndirectProbes: SWIM's analysis shows a
// handful of helpers already makes a false suspicion from one bad link
// unlikely, and each helper costs four messages per suspicion.
const IndirectProbesMax = 8

// Errors. Bad input from a peer is reported with one of these, wrapped.
var (
	ErrConfig        = errors.New("liveness: invalid config")
	ErrUnknownMember = errors.New("liveness: not a member")
	ErrMalformed     = errors.New("liveness: malformed message")
)

// Config sets the detector's timing, in ticks of the caller's clock.
type Config struct {
	// HeartbeatTicks is the interval between two heartbeats to each peer.
	HeartbeatTicks int
	// SuspectTicks is the silence after which a peer is suspected. It
	// must exceed HeartbeatTicks, or a peer would be suspected between two
	// of its own heartbeats.
	SuspectTicks int
	// VerifyTicks is how long a suspect has to answer the probe before it
	// is reported Faulty.
	VerifyTicks int
	// IndirectProbes is the number of other members asked to ping a
	// suspect on our behalf (0 disables indirect probing), at most
	// IndirectProbesMax.
	IndirectProbes int
}

// DefaultConfig suits a LAN with a 100 ms tick: heartbeats every 0.5 s, a
// suspicion after 3 s (six heartbeats lost in a row, which loss alone does
// not explain), 2 s to answer the probe, and two helpers so one broken link
// does not exclude a live member. Detection takes about 5 s.
func DefaultConfig() Config {
	return Config{HeartbeatTicks: 5, SuspectTicks: 30, VerifyTicks: 20, IndirectProbes: 2}
}

// Validate reports the first field out of range, wrapping ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.HeartbeatTicks < 1:
		return fmt.Errorf("%w: HeartbeatTicks %d < 1", ErrConfig, c.HeartbeatTicks)
	case c.SuspectTicks <= c.HeartbeatTicks:
		return fmt.Errorf("%w: SuspectTicks %d must exceed HeartbeatTicks %d", ErrConfig, c.SuspectTicks, c.HeartbeatTicks)
	case c.VerifyTicks < 1:
		return fmt.Errorf("%w: VerifyTicks %d < 1", ErrConfig, c.VerifyTicks)
	case c.IndirectProbes < 0 || c.IndirectProbes > IndirectProbesMax:
		return fmt.Errorf("%w: IndirectProbes %d not in [0, %d]", ErrConfig, c.IndirectProbes, IndirectProbesMax)
	}
	return nil
}

// MessageType says what a Message is.
type MessageType uint8

// The message types. Subject's meaning depends on the type.
const (
	// Heartbeat: "I am alive". Subject is None.
	Heartbeat MessageType = 1 + iota
	// Ping asks To to answer with an Ack. Subject is None for a direct
	// probe, or the member on whose behalf From pings (after a PingReq).
	Ping
	// Ack answers a Ping; Subject echoes the Ping's Subject.
	Ack
	// PingReq asks To to ping Subject, a suspect of From, and relay the
	// answer.
	PingReq
	// IndirectAck tells To that Subject answered a Ping sent on its behalf.
	IndirectAck
)

func (t MessageType) String() string {
	switch t {
	case Heartbeat:
		return "heartbeat"
	case Ping:
		return "ping"
	case Ack:
		return "ack"
	case PingReq:
		return "ping-req"
	case IndirectAck:
		return "indirect-ack"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is one liveness message between two members.
type Message struct {
	Type     MessageType
	From, To peer.ID
	Subject  peer.ID
}

func (m Message) String() string {
	if m.Subject == peer.None {
		return fmt.Sprintf("%s->%s %s", m.From, m.To, m.Type)
	}
	return fmt.Sprintf("%s->%s %s %s", m.From, m.To, m.Type, m.Subject)
}

// AppendMessage appends the encoding of m (without From and To, which the
// envelope carries) to dst.
func AppendMessage(dst []byte, m Message) []byte {
	w := wire.NewBuffer(dst)
	w.Uint8(uint8(m.Type))
	w.Uvarint(uint64(m.Subject))
	return w.Bytes()
}

// DecodeMessage decodes a message that fills p exactly. From and To are left
// zero: the caller sets them from the envelope. Errors wrap ErrMalformed and,
// for codec failures, the wire error.
func DecodeMessage(p []byte) (Message, error) {
	r := wire.NewReader(p)
	m := Message{Type: MessageType(r.Uint8()), Subject: peer.ID(r.Uvarint())}
	if err := r.Done(); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if m.Type < Heartbeat || m.Type > IndirectAck {
		return Message{}, fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	switch {
	case m.Type == Heartbeat && m.Subject != peer.None,
		(m.Type == PingReq || m.Type == IndirectAck) && m.Subject == peer.None:
		return Message{}, fmt.Errorf("%w: %s with subject %s", ErrMalformed, m.Type, m.Subject)
	}
	return m, nil
}

// State is what the detector believes about one peer.
type State uint8

// The peer states. Alive -> Suspected -> Faulty, and Suspected -> Alive when
// the peer is heard from.
const (
	Alive State = iota
	Suspected
	Faulty
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspected:
		return "suspected"
	case Faulty:
		return "faulty"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Ready is the detector's output since the last Advance. The caller must
// send Messages (best effort: liveness tolerates loss by design) and act on
// Faulty (each peer appears there once, when verification fails), then call
// Advance with the same Ready.
type Ready struct {
	Messages []Message
	Faulty   []peer.ID
}

type peerState struct {
	id          peer.ID
	state       State
	heardTick   uint64 // last tick anything was heard from the peer
	suspectTick uint64 // tick the suspicion started, when state == Suspected
}

// relay is a ping sent on behalf of requester to target, whose Ack must be
// relayed back until expiresTick.
type relay struct {
	requester, target peer.ID
	expiresTick       uint64
}

// Detector watches the other members of one view.
type Detector struct {
	cfg    Config
	self   peer.ID
	peers  []peerState // ascending id, without self
	relays []relay     // at most one per (requester, target)
	now    uint64

	msgs   []Message
	faulty []peer.ID
}

// New returns a detector for self among members (which must contain self).
// Every peer starts alive, as if heard at tick 0.
func New(cfg Config, self peer.ID, members peer.Set) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !members.Contains(self) {
		return nil, fmt.Errorf("%w: self %s not in %s", ErrConfig, self, members)
	}
	d := &Detector{cfg: cfg, self: self}
	for id := range members.All() {
		if id != self {
			d.peers = append(d.peers, peerState{id: id})
		}
	}
	return d, nil
}

func (d *Detector) peer(id peer.ID) *peerState {
	for i := range d.peers {
		if d.peers[i].id == id {
			return &d.peers[i]
		}
	}
	return nil
}

// Status reports what the detector believes about id; ok is false when id
// is not a peer.
func (d *Detector) Status(id peer.ID) (s State, ok bool) {
	if p := d.peer(id); p != nil {
		return p.state, true
	}
	return 0, false
}

// Heard records that something arrived from id: any message proves the
// sender alive (FD_ALL3's rule), so the caller reports every message of
// every protocol here, not only liveness ones. It clears a suspicion of id.
// Ids that are not peers are ignored.
func (d *Detector) Heard(id peer.ID) {
	p := d.peer(id)
	if p == nil || p.state == Faulty {
		return
	}
	p.heardTick = d.now
	p.state = Alive
}

// Step handles a liveness message. It counts as hearing from m.From. A
// message from a non-member is dropped with ErrUnknownMember, one not
// addressed to us or of an unknown type with ErrMalformed.
func (d *Detector) Step(m Message) error {
	if m.To != d.self {
		return fmt.Errorf("%w: addressed to %s, we are %s", ErrMalformed, m.To, d.self)
	}
	if d.peer(m.From) == nil {
		return fmt.Errorf("%w: message from %s", ErrUnknownMember, m.From)
	}
	d.Heard(m.From)
	switch m.Type {
	case Heartbeat:
	case Ping:
		d.send(Ack, m.From, m.Subject)
	case Ack:
		if m.Subject != peer.None {
			d.relayAck(m.Subject, m.From)
		}
	case PingReq:
		return d.stepPingReq(m)
	case IndirectAck:
		if m.Subject == d.self || d.peer(m.Subject) == nil {
			return fmt.Errorf("%w: indirect ack for %s", ErrUnknownMember, m.Subject)
		}
		d.Heard(m.Subject)
	default:
		return fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	return nil
}

func (d *Detector) stepPingReq(m Message) error {
	if m.Subject == d.self || m.Subject == m.From || d.peer(m.Subject) == nil {
		return fmt.Errorf("%w: ping-req for %s", ErrUnknownMember, m.Subject)
	}
	expires := d.now + uint64(d.cfg.VerifyTicks)
	for i := range d.relays {
		if d.relays[i].requester == m.From && d.relays[i].target == m.Subject {
			d.relays[i].expiresTick = expires
			d.send(Ping, m.Subject, m.From)
			return nil
		}
	}
	d.relays = append(d.relays, relay{requester: m.From, target: m.Subject, expiresTick: expires})
	invariant.Check(len(d.relays) <= len(d.peers)*len(d.peers), "liveness: %d relays for %d peers", len(d.relays), len(d.peers))
	d.send(Ping, m.Subject, m.From)
	return nil
}

// relayAck forwards target's answer to requester if we pinged on its
// behalf; an Ack nobody asked for is ignored, so a peer cannot make us
// spray IndirectAcks.
func (d *Detector) relayAck(requester, target peer.ID) {
	for i, r := range d.relays {
		if r.requester == requester && r.target == target {
			d.relays = append(d.relays[:i], d.relays[i+1:]...)
			d.send(IndirectAck, requester, target)
			return
		}
	}
}

// Tick advances time by one tick: heartbeats when due, new suspicions and
// their probes, and verdicts on suspects whose time ran out.
func (d *Detector) Tick() {
	d.now++
	if d.now%uint64(d.cfg.HeartbeatTicks) == 0 {
		for _, p := range d.peers {
			if p.state != Faulty {
				d.send(Heartbeat, p.id, peer.None)
			}
		}
	}
	// Update every state before probing, so that a peer suspected in this
	// same tick is not picked as a helper for another suspect.
	for i := range d.peers {
		p := &d.peers[i]
		switch p.state {
		case Alive:
			if d.now-p.heardTick >= uint64(d.cfg.SuspectTicks) {
				p.state, p.suspectTick = Suspected, d.now
			}
		case Suspected:
			if d.now-p.suspectTick >= uint64(d.cfg.VerifyTicks) {
				p.state = Faulty
				d.faulty = append(d.faulty, p.id)
			}
		}
	}
	for i, p := range d.peers {
		if p.state == Suspected && p.suspectTick == d.now {
			d.probe(i)
		}
	}
	kept := d.relays[:0]
	for _, r := range d.relays {
		if r.expiresTick > d.now {
			kept = append(kept, r)
		}
	}
	d.relays = kept
}

// probe pings the suspect d.peers[i] and asks up to IndirectProbes alive
// peers, those that follow it in id order (wrapping), to ping it too. The
// choice depends on the suspect, so different suspects load different
// helpers, and it is deterministic.
func (d *Detector) probe(i int) {
	suspect := d.peers[i].id
	d.send(Ping, suspect, peer.None)
	asked := 0
	for j := 1; j < len(d.peers) && asked < d.cfg.IndirectProbes; j++ {
		h := d.peers[(i+j)%len(d.peers)]
		if h.state == Alive {
			d.send(PingReq, h.id, suspect)
			asked++
		}
	}
}

func (d *Detector) send(t MessageType, to, subject peer.ID) {
	d.msgs = append(d.msgs, Message{Type: t, From: d.self, To: to, Subject: subject})
}

// HasReady reports whether Ready has anything to hand out.
func (d *Detector) HasReady() bool { return len(d.msgs) > 0 || len(d.faulty) > 0 }

// Ready returns the output accumulated since the last Advance. The slices
// belong to the caller.
func (d *Detector) Ready() Ready {
	return Ready{Messages: append([]Message(nil), d.msgs...), Faulty: append([]peer.ID(nil), d.faulty...)}
}

// Advance acknowledges rd, a value returned by Ready: its messages and
// verdicts are dropped from the detector's output. Output produced after
// that Ready (by Step or Tick in between) is kept for the next one.
func (d *Detector) Advance(rd Ready) {
	invariant.Check(len(rd.Messages) <= len(d.msgs) && len(rd.Faulty) <= len(d.faulty),
		"liveness: Advance with %d messages and %d verdicts, %d and %d pending",
		len(rd.Messages), len(rd.Faulty), len(d.msgs), len(d.faulty))
	d.msgs = append(d.msgs[:0], d.msgs[len(rd.Messages):]...)
	d.faulty = append(d.faulty[:0], d.faulty[len(rd.Faulty):]...)
}
