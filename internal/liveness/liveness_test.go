package liveness

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chorus-project/chorus/internal/peer"
)

// step is one input to the detector under test and the output it must
// produce. Exactly one of ticks, heard and msg is set.
type step struct {
	ticks int       // call Tick this many times ...
	alive []peer.ID // ... calling Heard for these before each Tick
	heard peer.ID   // call Heard
	msg   *Message  // call Step
	err   error     // Step's error, tested with errors.Is

	wantMsgs   string    // the messages produced, one per line, in order
	wantFaulty []peer.ID // the verdicts produced
	wantState  map[peer.ID]State
}

// testConfig keeps numbers small: heartbeats at even ticks, suspicion after
// five silent ticks, three ticks to answer, one helper.
var testConfig = Config{HeartbeatTicks: 2, SuspectTicks: 5, VerifyTicks: 3, IndirectProbes: 1}

const hb234 = "1->2 heartbeat\n1->3 heartbeat\n1->4 heartbeat\n"

func TestDetector(t *testing.T) {
	members := peer.MustSet(1, 2, 3, 4)
	// untilSuspect brings peer 2 to suspicion at tick 5 while 3 and 4 keep
	// talking: the detector pings 2 and asks 3 (the next alive peer) to
	// ping it too.
	untilSuspect := []step{
		{ticks: 4, alive: []peer.ID{3, 4}, wantMsgs: hb234 + hb234, wantState: map[peer.ID]State{2: Alive}},
		{ticks: 1, alive: []peer.ID{3, 4}, wantMsgs: "1->2 ping\n1->3 ping-req 2\n", wantState: map[peer.ID]State{2: Suspected, 3: Alive}},
	}
	ack := func(from, subject peer.ID) *Message { return &Message{Type: Ack, From: from, To: 1, Subject: subject} }
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"silent peer is suspected, verified and excluded", testConfig, append(slices.Clone(untilSuspect),
			step{ticks: 2, alive: []peer.ID{3, 4}, wantMsgs: hb234, wantState: map[peer.ID]State{2: Suspected}},
			step{ticks: 1, alive: []peer.ID{3, 4}, wantMsgs: hb234, wantFaulty: []peer.ID{2}, wantState: map[peer.ID]State{2: Faulty, 3: Alive, 4: Alive}},
			// No more heartbeats to a faulty peer, and no second verdict.
			step{ticks: 2, alive: []peer.ID{3, 4}, wantMsgs: "1->3 heartbeat\n1->4 heartbeat\n", wantState: map[peer.ID]State{2: Faulty}},
		)},
		{"peer that answers the probe is not excluded", testConfig, append(slices.Clone(untilSuspect),
			step{msg: ack(2, peer.None), wantState: map[peer.ID]State{2: Alive}},
			step{ticks: 4, alive: []peer.ID{3, 4}, wantMsgs: hb234 + hb234, wantState: map[peer.ID]State{2: Alive}},
		)},
		{"answer relayed by a helper clears the suspicion", testConfig, append(slices.Clone(untilSuspect),
			step{msg: &Message{Type: IndirectAck, From: 3, To: 1, Subject: 2}, wantState: map[peer.ID]State{2: Alive}},
			step{ticks: 3, alive: []peer.ID{3, 4}, wantMsgs: hb234 + hb234, wantState: map[peer.ID]State{2: Alive}},
		)},
		{"any message clears the suspicion", testConfig, append(slices.Clone(untilSuspect),
			step{heard: 2, wantState: map[peer.ID]State{2: Alive}},
			// Heard restarts the silence count: suspected again only
			// five ticks later (tick 10), and probed again.
			step{ticks: 4, alive: []peer.ID{3, 4}, wantMsgs: hb234 + hb234, wantState: map[peer.ID]State{2: Alive}},
			step{ticks: 1, alive: []peer.ID{3, 4}, wantMsgs: hb234 + "1->2 ping\n1->3 ping-req 2\n", wantState: map[peer.ID]State{2: Suspected}},
		)},
		{"a heartbeat is a message too", testConfig, append(slices.Clone(untilSuspect),
			step{msg: &Message{Type: Heartbeat, From: 2, To: 1}, wantState: map[peer.ID]State{2: Alive}},
		)},
		{"faulty is final", testConfig, append(slices.Clone(untilSuspect),
			step{ticks: 3, alive: []peer.ID{3, 4}, wantMsgs: hb234 + hb234, wantFaulty: []peer.ID{2}},
			step{heard: 2, wantState: map[peer.ID]State{2: Faulty}},
			// A faulty peer's ping is still answered: it learns it is
			// alive and can find out it was excluded.
			step{msg: &Message{Type: Ping, From: 2, To: 1}, wantMsgs: "1->2 ack\n", wantState: map[peer.ID]State{2: Faulty}},
		)},
		{"helpers skip suspects and wrap around", testConfig, []step{
			// Only 2 talks; 3 and 4 fall silent together. The helper
			// for 3 is not 4 (suspected in the same tick) but 2,
			// found by wrapping; the helper for 4 is 2 as well.
			{ticks: 5, alive: []peer.ID{2}, wantMsgs: "1->2 heartbeat\n1->3 heartbeat\n1->4 heartbeat\n" +
				"1->2 heartbeat\n1->3 heartbeat\n1->4 heartbeat\n" +
				"1->3 ping\n1->2 ping-req 3\n1->4 ping\n1->2 ping-req 4\n",
				wantState: map[peer.ID]State{2: Alive, 3: Suspected, 4: Suspected}},
			{ticks: 3, alive: []peer.ID{2}, wantMsgs: hb234 + hb234, wantFaulty: []peer.ID{3, 4}},
		}},
		{"no helpers when indirect probing is off", Config{HeartbeatTicks: 2, SuspectTicks: 5, VerifyTicks: 3}, []step{
			{ticks: 4, alive: []peer.ID{3, 4}, wantMsgs: hb234 + hb234},
			{ticks: 1, alive: []peer.ID{3, 4}, wantMsgs: "1->2 ping\n", wantState: map[peer.ID]State{2: Suspected}},
		}},
		{"pings are answered", testConfig, []step{
			{msg: &Message{Type: Ping, From: 3, To: 1}, wantMsgs: "1->3 ack\n"},
			{msg: &Message{Type: Ping, From: 3, To: 1, Subject: 4}, wantMsgs: "1->3 ack 4\n"},
		}},
		{"helper pings on request and relays the answer once", testConfig, []step{
			{msg: &Message{Type: PingReq, From: 3, To: 1, Subject: 2}, wantMsgs: "1->2 ping 3\n"},
			{msg: ack(2, 3), wantMsgs: "1->3 indirect-ack 2\n"},
			{msg: ack(2, 3)}, // the relay is used up
			{msg: ack(2, 4)}, // nobody asked: not relayed
			{msg: &Message{Type: PingReq, From: 3, To: 1, Subject: 2}, wantMsgs: "1->2 ping 3\n"},
			{msg: &Message{Type: PingReq, From: 3, To: 1, Subject: 2}, wantMsgs: "1->2 ping 3\n"}, // refreshed, not doubled
			{msg: ack(2, 3), wantMsgs: "1->3 indirect-ack 2\n"},
			{msg: ack(2, 3)},
		}},
		{"an unanswered relay expires", testConfig, []step{
			{msg: &Message{Type: PingReq, From: 3, To: 1, Subject: 2}, wantMsgs: "1->2 ping 3\n"},
			{ticks: 3, alive: []peer.ID{2, 3, 4}, wantMsgs: hb234},
			{msg: ack(2, 3)},
		}},
		{"bad input is refused", testConfig, []step{
			{msg: &Message{Type: Heartbeat, From: 9, To: 1}, err: ErrUnknownMember},
			{msg: &Message{Type: Heartbeat, From: 2, To: 3}, err: ErrMalformed},
			{msg: &Message{Type: PingReq, From: 2, To: 1, Subject: 1}, err: ErrUnknownMember},
			{msg: &Message{Type: PingReq, From: 2, To: 1, Subject: 2}, err: ErrUnknownMember},
			{msg: &Message{Type: PingReq, From: 2, To: 1, Subject: 9}, err: ErrUnknownMember},
			{msg: &Message{Type: IndirectAck, From: 2, To: 1, Subject: 9}, err: ErrUnknownMember},
			{msg: &Message{Type: 77, From: 2, To: 1}, err: ErrMalformed},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.cfg, 1, members)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				runStep(t, d, s, i)
			}
		})
	}
}

func runStep(t *testing.T, d *Detector, s step, i int) {
	t.Helper()
	switch {
	case s.ticks > 0:
		for range s.ticks {
			for _, id := range s.alive {
				d.Heard(id)
			}
			d.Tick()
		}
	case s.heard != peer.None:
		d.Heard(s.heard)
	case s.msg != nil:
		if err := d.Step(*s.msg); !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
			t.Fatalf("step %d: Step(%v) = %v, want %v", i, *s.msg, err, s.err)
		}
	}
	rd := d.Ready()
	var msgs strings.Builder
	for _, m := range rd.Messages {
		fmt.Fprintln(&msgs, m)
	}
	if msgs.String() != s.wantMsgs {
		t.Fatalf("step %d: messages\n%s\nwant\n%s", i, msgs.String(), s.wantMsgs)
	}
	if !slices.Equal(rd.Faulty, s.wantFaulty) {
		t.Fatalf("step %d: faulty %v, want %v", i, rd.Faulty, s.wantFaulty)
	}
	d.Advance(rd)
	if d.HasReady() {
		t.Fatalf("step %d: output left after Advance", i)
	}
	for id, want := range s.wantState {
		if got, ok := d.Status(id); !ok || got != want {
			t.Fatalf("step %d: peer %s is %v, want %v", i, id, got, want)
		}
	}
}

// TestAdvanceKeepsLaterOutput: output produced between Ready and Advance is
// not lost.
func TestAdvanceKeepsLaterOutput(t *testing.T) {
	d, err := New(testConfig, 1, peer.MustSet(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Step(Message{Type: Ping, From: 2, To: 1}); err != nil {
		t.Fatal(err)
	}
	rd := d.Ready()
	if err := d.Step(Message{Type: Ping, From: 2, To: 1, Subject: 2}); err != nil {
		t.Fatal(err)
	}
	d.Advance(rd)
	if got := d.Ready().Messages; len(got) != 1 || got[0].Subject != 2 {
		t.Fatalf("left after Advance: %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, c := range []Config{
		{HeartbeatTicks: 0, SuspectTicks: 5, VerifyTicks: 1},
		{HeartbeatTicks: 5, SuspectTicks: 5, VerifyTicks: 1},
		{HeartbeatTicks: 1, SuspectTicks: 5, VerifyTicks: 0},
		{HeartbeatTicks: 1, SuspectTicks: 5, VerifyTicks: 1, IndirectProbes: -1},
		{HeartbeatTicks: 1, SuspectTicks: 5, VerifyTicks: 1, IndirectProbes: IndirectProbesMax + 1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
		if _, err := New(c, 1, peer.MustSet(1, 2)); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v): %v", c, err)
		}
	}
	if _, err := New(testConfig, 3, peer.MustSet(1, 2)); !errors.Is(err, ErrConfig) {
		t.Errorf("self outside the members: %v", err)
	}
}

func TestCodec(t *testing.T) {
	for _, m := range []Message{
		{Type: Heartbeat},
		{Type: Ping}, {Type: Ping, Subject: 7},
		{Type: Ack, Subject: 1 << 40},
		{Type: PingReq, Subject: 3},
		{Type: IndirectAck, Subject: 3},
	} {
		got, err := DecodeMessage(AppendMessage(nil, m))
		if err != nil || got != m {
			t.Fatalf("round trip %v -> %v, %v", m, got, err)
		}
	}
	for _, bad := range [][]byte{
		nil, {0, 0}, {6, 0}, {byte(Heartbeat), 3}, {byte(PingReq), 0}, {byte(IndirectAck), 0},
		{byte(Ping), 0, 0}, {byte(Ping), 0x80, 0x00}, {byte(Ping), 0x80},
	} {
		if m, err := DecodeMessage(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeMessage(%x) = %v, %v", bad, m, err)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(AppendMessage(nil, Message{Type: PingReq, Subject: 3}))
	f.Add([]byte{byte(Heartbeat), 0})
	f.Add([]byte{byte(Ack), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessage(in)
		if err != nil {
			return
		}
		if out := AppendMessage(nil, m); !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs: in %x out %x", in, out)
		}
	})
}
