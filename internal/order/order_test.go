package order

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vclock"
	"github.com/chorus-project/chorus/internal/wire"
)

var testCfg = Config{SendWindowMax: 4, PayloadBytesMax: 16, BatchEntriesMax: 4, NakTicks: 2, StabilityTicks: 3}

func newTest(t testing.TB, self peer.ID) *Instance {
	t.Helper()
	e, err := New(testCfg, 5, []peer.ID{1, 2, 3}, self)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConfigAndNew(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.SendWindowMax = 0 },
		func(c *Config) { c.SendWindowMax = SendWindowMaxMax + 1 },
		func(c *Config) { c.PayloadBytesMax = 0 },
		func(c *Config) { c.PayloadBytesMax = PayloadBytesMaxMax + 1 },
		func(c *Config) { c.BatchEntriesMax = 0 },
		func(c *Config) { c.BatchEntriesMax = BatchEntriesMaxMax + 1 },
		func(c *Config) { c.NakTicks = 0 },
		func(c *Config) { c.StabilityTicks = 0 },
		func(c *Config) { c.ReportEveryMessages = -1 },
		func(c *Config) { c.ReportEveryMessages = c.SendWindowMax + 1 },
	} {
		c := testCfg
		mod(&c)
		if _, err := New(c, 1, []peer.ID{1}, 1); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	tooMany := make([]peer.ID, MembersMax+1)
	for i := range tooMany {
		tooMany[i] = peer.ID(i + 1)
	}
	wide := testCfg
	wide.SendWindowMax = SendWindowMaxMax
	for name, tc := range map[string]struct {
		cfg     Config
		members []peer.ID
		self    peer.ID
	}{
		"no members":      {testCfg, nil, 1},
		"too many":        {testCfg, tooMany, 1},
		"window × view":   {wide, tooMany[:100], 1},
		"member 0":        {testCfg, []peer.ID{1, 0}, 1},
		"duplicate":       {testCfg, []peer.ID{1, 2, 1}, 1},
		"self not member": {testCfg, []peer.ID{1, 2}, 3},
	} {
		if _, err := New(tc.cfg, 1, tc.members, tc.self); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSendErrors(t *testing.T) {
	e := newTest(t, 1)
	if _, err := e.Send(nil, 0); !errors.Is(err, ErrInvalidOrder) {
		t.Fatalf("order 0: %v", err)
	}
	if _, err := e.Send(make([]byte, testCfg.PayloadBytesMax+1), FIFO); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("large payload: %v", err)
	}
	for i := range testCfg.SendWindowMax {
		if seq, err := e.Send([]byte("x"), FIFO); err != nil || seq != uint64(i+1) {
			t.Fatalf("send %d: %d, %v", i, seq, err)
		}
	}
	if _, err := e.Send([]byte("x"), FIFO); !errors.Is(err, ErrWindowFull) {
		t.Fatalf("full window: %v", err)
	}
	e.Pause()
	if _, err := e.Send([]byte("x"), FIFO); !errors.Is(err, ErrPaused) {
		t.Fatalf("paused: %v", err)
	}
}

// TestSingleMember: a view of one delivers every order at once (it is the
// sequencer, and stable as soon as it holds a message).
func TestSingleMember(t *testing.T) {
	e, err := New(testCfg, 1, []peer.ID{7}, 7)
	if err != nil {
		t.Fatal(err)
	}
	for o := FIFO; o <= Safe; o++ {
		if _, err := e.Send([]byte(o.String()), o); err != nil {
			t.Fatal(err)
		}
	}
	rd := e.Ready()
	if len(rd.Messages) != 0 || len(rd.Deliveries) != 4 {
		t.Fatalf("Ready = %v", rd)
	}
	for i, d := range rd.Deliveries {
		if d.Seq != uint64(i+1) || d.Order != Order(i+1) {
			t.Fatalf("delivery %d: %v", i, d)
		}
	}
	e.Advance(rd)
	// Stable at once: the window never fills.
	for range 3 * testCfg.SendWindowMax {
		if _, err := e.Send(nil, Safe); err != nil {
			t.Fatal(err)
		}
		e.Advance(e.Ready())
	}
}

// TestStepRefusesBadInput: every way a message can break the rules is an
// error wrapping the right sentinel, never a panic, and leaves nothing
// delivered.
func TestStepRefusesBadInput(t *testing.T) {
	data := func(mod func(*Message)) Message {
		m := Message{Type: MsgData, View: 5, From: 2, To: 1, Sender: 2, Seq: 1, Order: FIFO, Payload: []byte("p")}
		mod(&m)
		return m
	}
	order := func(mod func(*Message)) Message {
		m := Message{Type: MsgOrder, View: 5, From: 1, To: 2, Global: 1, Entries: []Ref{{3, 1}}}
		mod(&m)
		return m
	}
	stable := Message{Type: MsgStable, View: 5, From: 2, To: 1, Received: []uint64{0, 3, 0}, Delivered: []uint64{0, 4, 0}}
	for _, tc := range []struct {
		name string
		self peer.ID // 1 unless set
		m    Message
		want error
	}{
		{"other view", 0, data(func(m *Message) { m.View = 4 }), ErrWrongView},
		{"from outsider", 0, data(func(m *Message) { m.From = 9 }), ErrUnknownMember},
		{"from self", 0, data(func(m *Message) { m.From = 1 }), ErrUnknownMember},
		{"misaddressed", 0, data(func(m *Message) { m.To = 3 }), ErrMalformed},
		{"unknown type", 0, data(func(m *Message) { m.Type = 99 }), ErrMalformed},
		{"sender outsider", 0, data(func(m *Message) { m.Sender = 9 }), ErrUnknownMember},
		{"seq 0", 0, data(func(m *Message) { m.Seq = 0 }), ErrMalformed},
		{"stable seq not below seq", 0, data(func(m *Message) { m.StableSeq = 1 }), ErrMalformed},
		{"beyond the window", 0, data(func(m *Message) { m.Seq = 5 }), ErrMalformed},
		{"invalid order", 0, data(func(m *Message) { m.Order = 9 }), ErrMalformed},
		{"causal without clock", 0, data(func(m *Message) { m.Order = Causal }), ErrMalformed},
		{"fifo with clock", 0, data(func(m *Message) { m.Clock = vclock.Clock{0, 1, 0} }), ErrMalformed},
		{"clock length", 0, data(func(m *Message) { m.Order, m.Clock = Causal, vclock.Clock{0, 1} }), ErrMalformed},
		{"clock own entry", 0, data(func(m *Message) { m.Order, m.Clock = Causal, vclock.Clock{0, 2, 0} }), ErrMalformed},
		{"payload too large", 0, data(func(m *Message) { m.Payload = make([]byte, 17) }), ErrMalformed},
		{"nak for outsider", 0, Message{Type: MsgNak, View: 5, From: 2, To: 1, Sender: 9, Ranges: []Range{{1, 1}}}, ErrUnknownMember},
		{"nak without ranges", 0, Message{Type: MsgNak, View: 5, From: 2, To: 1, Sender: 1}, ErrMalformed},
		{"nak range from 0", 0, Message{Type: MsgNak, View: 5, From: 2, To: 1, Sender: 1, Ranges: []Range{{0, 1}}}, ErrMalformed},
		{"nak range inverted", 0, Message{Type: MsgNak, View: 5, From: 2, To: 1, Sender: 1, Ranges: []Range{{3, 2}}}, ErrMalformed},
		{"nak ranges overlap", 0, Message{Type: MsgNak, View: 5, From: 2, To: 1, Sender: 1, Ranges: []Range{{1, 2}, {2, 3}}}, ErrMalformed},
		{"nak over window", 0, Message{Type: MsgNak, View: 5, From: 2, To: 1, Sender: 1, Ranges: []Range{{1, 2}, {4, 6}}}, ErrMalformed},
		{"nak huge range", 0, Message{Type: MsgNak, View: 5, From: 2, To: 1, Sender: 1, Ranges: []Range{{1, math.MaxUint64}}}, ErrMalformed},
		{"order global 0", 2, order(func(m *Message) { m.Global = 0 }), ErrMalformed},
		{"order empty", 2, order(func(m *Message) { m.Entries = nil }), ErrMalformed},
		{"order too long", 2, order(func(m *Message) { m.Entries = make([]Ref, 5) }), ErrMalformed},
		{"order wraps", 2, order(func(m *Message) { m.Global = math.MaxUint64 }), ErrMalformed},
		{"order outsider", 2, order(func(m *Message) { m.Entries = []Ref{{9, 1}} }), ErrUnknownMember},
		{"order seq 0", 2, order(func(m *Message) { m.Entries = []Ref{{3, 0}} }), ErrMalformed},
		{"order twice one message", 2, order(func(m *Message) { m.Entries = []Ref{{3, 1}, {3, 1}} }), ErrMalformed},
		{"order-nak huge", 0, Message{Type: MsgOrderNak, View: 5, From: 2, To: 1, Ranges: []Range{{1, math.MaxUint64}}}, ErrMalformed},
		{"stable short", 0, Message{Type: MsgStable, View: 5, From: 2, To: 1, Received: []uint64{1}, Delivered: []uint64{1}}, ErrMalformed},
		{"stable delivered beyond received", 0, stable, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			self := tc.self
			if self == 0 {
				self = 1
			}
			e := newTest(t, self)
			if err := e.Step(tc.m); !errors.Is(err, tc.want) {
				t.Fatalf("Step(%v) = %v, want %v", tc.m, err, tc.want)
			}
			if rd := e.Ready(); len(rd.Deliveries) != 0 {
				t.Fatalf("delivered %v", rd.Deliveries)
			}
		})
	}
}

// TestConflictingOrders: an entry that contradicts one held above the
// contiguous point (another message for a global, another global for a
// message) is refused, and what was held stands. Entries at or below the
// contiguous point are settled and skipped.
func TestConflictingOrders(t *testing.T) {
	e := newTest(t, 2)
	batch := func(g uint64, es ...Ref) Message {
		return Message{Type: MsgOrder, View: 5, From: 1, To: 2, Global: g, Entries: es}
	}
	// g1 = 3.1 and g3 = 3.3, with g2 unknown: g3 stays above the gap.
	for _, m := range []Message{batch(1, Ref{3, 1}), batch(3, Ref{3, 3})} {
		if err := e.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []Message{batch(3, Ref{1, 1}), batch(4, Ref{3, 3})} {
		if err := e.Step(m); !errors.Is(err, ErrMalformed) {
			t.Fatalf("conflicting %v: %v", m, err)
		}
	}
	if err := e.Step(batch(1, Ref{1, 1})); err != nil {
		t.Fatalf("settled global: %v", err)
	}
	want := map[uint64]ref{1: {2, 1}, 3: {2, 3}}
	if len(e.orders) != len(want) || e.orders[1] != want[1] || e.orders[3] != want[3] {
		t.Fatalf("held orders changed: %v", e.orders)
	}
}

// TestDuplicatesAndStaleAreDropped: a message already held or delivered is
// dropped silently; delivery happens once.
func TestDuplicatesAndStaleAreDropped(t *testing.T) {
	e := newTest(t, 1)
	m := Message{Type: MsgData, View: 5, From: 2, To: 1, Sender: 2, Seq: 1, Order: FIFO, Payload: []byte("p")}
	for range 3 {
		if err := e.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	rd := e.Ready()
	if len(rd.Deliveries) != 1 {
		t.Fatalf("delivered %v", rd.Deliveries)
	}
	e.Advance(rd)
	if e.HasReady() {
		t.Fatal("output left after Advance")
	}
}

// TestAdvanceKeepsLaterOutput: output produced between Ready and Advance is
// kept, and the Ready handed out is not overwritten.
func TestAdvanceKeepsLaterOutput(t *testing.T) {
	e := newTest(t, 1)
	if _, err := e.Send([]byte("a"), FIFO); err != nil {
		t.Fatal(err)
	}
	rd := e.Ready()
	if _, err := e.Send([]byte("b"), FIFO); err != nil {
		t.Fatal(err)
	}
	e.Advance(rd)
	if len(rd.Messages) != 2 || string(rd.Messages[0].Payload) != "a" || len(rd.Deliveries) != 1 {
		t.Fatalf("first Ready changed: %v", rd)
	}
	rd2 := e.Ready()
	if len(rd2.Messages) != 2 || string(rd2.Messages[0].Payload) != "b" || len(rd2.Deliveries) != 1 || rd2.Deliveries[0].Seq != 2 {
		t.Fatalf("second Ready: %v", rd2)
	}
}

// TestFlushErrors: FinishFlush refuses a cut it does not hold or that is not
// of this view, and the instance is finished afterwards.
func TestFlushErrors(t *testing.T) {
	e := newTest(t, 1)
	e.Pause()
	for _, cut := range []Digest{
		{Received: []uint64{0, 0}},
		{Received: []uint64{0, 0, 5}},              // beyond any window
		{Received: []uint64{0, 0, 0}, Ordered: 13}, // beyond the sequencer's cap
	} {
		if _, err := e.FinishFlush(cut); !errors.Is(err, ErrBadCut) {
			t.Fatalf("cut %v: %v", cut, err)
		}
	}
	cut := Digest{Received: []uint64{0, 2, 0}, Ordered: 1}
	miss, err := e.Missing(cut)
	if err != nil || len(miss.Data) != 2 || !slices.Equal(miss.Orders, []Range{{1, 1}}) {
		t.Fatalf("Missing = %+v, %v", miss, err)
	}
	if _, err := e.FinishFlush(cut); !errors.Is(err, ErrCutNotHeld) {
		t.Fatalf("unheld cut: %v", err)
	}
	if err := e.Add(Message{Type: MsgNak, View: 5}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Add of a nak: %v", err)
	}
	if _, err := MaxDigest(Digest{Received: []uint64{1}}, Digest{Received: []uint64{1, 2}}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("MaxDigest of two lengths: %v", err)
	}
	if stuck, err := e.FinishFlush(Digest{Received: []uint64{0, 0, 0}}); err != nil || stuck != nil {
		t.Fatalf("empty cut: %v %v", stuck, err)
	}
	if _, err := e.FinishFlush(Digest{Received: []uint64{0, 0, 0}}); !errors.Is(err, ErrFinished) {
		t.Fatalf("second FinishFlush: %v", err)
	}
	if err := e.Step(Message{Type: MsgStable, View: 5, From: 2, To: 1}); !errors.Is(err, ErrFinished) {
		t.Fatalf("Step after finish: %v", err)
	}
}

func codecSamples() []Message {
	return []Message{
		{Type: MsgData, View: 1, Sender: 2, Seq: 3, StableSeq: 1, Order: FIFO, Payload: []byte("hello")},
		{Type: MsgData, View: math.MaxUint64, Sender: 2, Seq: 3, Order: Causal, Clock: vclock.Clock{1, 3, 0}},
		{Type: MsgData, View: 1, Sender: 1, Seq: 1, Order: Safe},
		{Type: MsgNak, View: 1, Sender: 3, Ranges: []Range{{1, 2}, {5, 5}}},
		{Type: MsgOrder, View: 1, Global: 7, Entries: []Ref{{1, 1}, {2, 9}}},
		{Type: MsgOrderNak, View: 1, Ranges: []Range{{3, 300}}},
		{Type: MsgStable, View: 1, Received: []uint64{1, 2, 3}, Delivered: []uint64{1, 0, 3}, Ordered: 4},
		{Type: MsgStable, View: 1, Received: []uint64{}, Delivered: []uint64{}},
	}
}

var testLimits = Limits{MembersMax: 3, PayloadBytesMax: 16, EntriesMax: 4, RangesMax: 8}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range codecSamples() {
		enc := AppendMessage(nil, m)
		got, err := DecodeMessage(enc, testLimits)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if !bytes.Equal(AppendMessage(nil, got), enc) || got.String() != m.String() {
			t.Fatalf("round trip\n%v\n%v", m, got)
		}
	}
}

func TestDecodeRefusesBadInput(t *testing.T) {
	enc := func(m Message) []byte { return AppendMessage(nil, m) }
	s := codecSamples()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, wire.ErrTruncated},
		{"type 0", []byte{0, 1}, ErrMalformed},
		{"type 6", []byte{6, 1}, ErrMalformed},
		{"order 0", []byte{byte(MsgData), 1, 2, 1, 0, 0, 0}, ErrMalformed},
		{"order 5", []byte{byte(MsgData), 1, 2, 1, 0, 5, 0}, ErrMalformed},
		{"payload over limit", enc(Message{Type: MsgData, Order: FIFO, Payload: make([]byte, 17)}), wire.ErrTooLarge},
		{"clock over limit", enc(Message{Type: MsgData, Order: Causal, Clock: vclock.Clock{1, 2, 3, 4}}), wire.ErrTooLarge},
		{"batch over limit", enc(Message{Type: MsgOrder, Entries: make([]Ref, 5)}), wire.ErrTooLarge},
		{"ranges over limit", enc(Message{Type: MsgOrderNak, Ranges: make([]Range, 9)}), wire.ErrTooLarge},
		{"vectors over limit", enc(Message{Type: MsgStable, Received: make([]uint64, 4), Delivered: make([]uint64, 4)}), wire.ErrTooLarge},
		{"truncated", enc(s[0])[:len(enc(s[0]))-1], wire.ErrTruncated},
		{"trailing", append(enc(s[3]), 0), wire.ErrTrailing},
		{"count beyond input", []byte{byte(MsgOrder), 1, 1, 4, 1}, wire.ErrTruncated},
		{"non-canonical view", []byte{byte(MsgOrderNak), 0x81, 0x00, 0}, wire.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage(tc.in, testLimits)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeMessage = %v, %v; want %v and ErrMalformed", m, err, tc.want)
			}
		})
	}
}

// FuzzDecodeMessage: no input makes the decoder panic; what it accepts
// re-encodes to the same bytes (the format is canonical); and stepping an
// accepted message into an instance, fresh or with traffic behind it,
// returns an error or not but never panics (no peer input can trip an
// invariant).
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range codecSamples() {
		f.Add(AppendMessage(nil, m))
	}
	f.Add([]byte{byte(MsgData), 5, 2, 1, 0, byte(Total), 1, 'x'})
	f.Add([]byte{byte(MsgOrder), 5, 1, 1, 2, 1})
	f.Add([]byte{byte(MsgStable), 5, 3, 3, 0, 5, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMessage(in, testLimits)
		if err != nil {
			return
		}
		if out := AppendMessage(nil, m); !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
		for _, self := range []peer.ID{1, 2} {
			e := newTest(t, self)
			busy := newTest(t, self)
			for i := range 3 {
				if _, err := busy.Send([]byte{byte(i)}, Order(1+i%4)); err != nil {
					t.Fatal(err)
				}
			}
			busy.Advance(busy.Ready())
			m.From, m.To = 3, self
			m.View = 5
			_ = e.Step(m)
			_ = busy.Step(m)
			_ = busy.Add(m)
			busy.Tick()
			e.Advance(e.Ready())
			busy.Advance(busy.Ready())
		}
	})
}
