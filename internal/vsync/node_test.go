package vsync

import (
	"errors"
	"testing"

	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"order":            func(c *Config) { c.Order.SendWindowMax = 0 },
		"liveness":         func(c *Config) { c.Liveness.SuspectTicks = c.Liveness.HeartbeatTicks },
		"members":          func(c *Config) { c.MembersMax = 0 },
		"members too many": func(c *Config) { c.MembersMax = MembersMaxMax + 1 },
		"retry":            func(c *Config) { c.RetryTicks = 0 },
		"change timeout":   func(c *Config) { c.ChangeTimeoutTicks = c.RetryTicks },
		"joins":            func(c *Config) { c.JoinsPendingMax = 0 },
		"chunk":            func(c *Config) { c.ChunkBytesMax = ChunkBytesMaxMax + 1 },
		"window":           func(c *Config) { c.TransferWindowChunks = 0 },
		"transfer timeout": func(c *Config) { c.TransferTimeoutTicks = 1 },
		"buffer count":     func(c *Config) { c.RestoreBufferDeliveriesMax = 0 },
		"buffer bytes":     func(c *Config) { c.RestoreBufferBytesMax = c.Order.PayloadBytesMax - 1 },
	} {
		c := testConfig()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNewRefusesBadArguments(t *testing.T) {
	cfg := testConfig()
	v := View{ID: 1, Members: []peer.Member{{ID: 1}, {ID: 2}}}
	for name, err := range map[string]error{
		"self outside": func() error { _, err := New(cfg, peer.Member{ID: 3}, v); return err }(),
		"wrong inc":    func() error { _, err := New(cfg, peer.Member{ID: 1, Incarnation: 1}, v); return err }(),
		"view id 0":    func() error { _, err := New(cfg, peer.Member{ID: 1}, View{Members: v.Members}); return err }(),
		"duplicate": func() error {
			_, err := New(cfg, peer.Member{ID: 1}, View{ID: 1, Members: []peer.Member{{ID: 1}, {ID: 1}}})
			return err
		}(),
		"no contacts":   func() error { _, err := NewJoiner(cfg, peer.Member{ID: 3}, nil); return err }(),
		"self contact":  func() error { _, err := NewJoiner(cfg, peer.Member{ID: 3}, []peer.ID{3}); return err }(),
		"none contact":  func() error { _, err := NewJoiner(cfg, peer.Member{ID: 3}, []peer.ID{peer.None}); return err }(),
		"joiner id 0":   func() error { _, err := NewJoiner(cfg, peer.Member{}, []peer.ID{1}); return err }(),
		"invalid confg": func() error { c := cfg; c.RetryTicks = 0; _, err := New(c, peer.Member{ID: 1}, v); return err }(),
	} {
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLocalCallErrors(t *testing.T) {
	cfg := testConfig()
	j, err := NewJoiner(cfg, peer.Member{ID: 9}, []peer.ID{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Send([]byte("x"), order.FIFO); !errors.Is(err, ErrNotMember) {
		t.Errorf("joiner Send: %v", err)
	}
	if err := j.Leave(); !errors.Is(err, ErrNotMember) {
		t.Errorf("joiner Leave: %v", err)
	}
	if err := j.SendChunk(1, 1, nil, true); !errors.Is(err, ErrNoTransfer) {
		t.Errorf("SendChunk without transfer: %v", err)
	}
	h, err := newHarness(cfg, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := h.nodes[2].n
	if err := n.Leave(); err != nil {
		t.Fatal(err)
	}
	if err := n.Leave(); !errors.Is(err, ErrLeaving) {
		t.Errorf("second Leave: %v", err)
	}
	if err := n.Step(Message{Type: MsgPrepare, From: 1, To: 3, View: 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("misaddressed: %v", err)
	}
	if err := n.Step(Message{Type: MsgPrepare, From: 7, To: 2, View: 1, Ballot: Ballot{Round: 1, Proposer: 7}}); !errors.Is(err, ErrNotMember) {
		t.Errorf("prepare from a stranger: %v", err)
	}
	bad := &Value{Next: View{ID: 5, Members: []peer.Member{{ID: 1}}}, Cut: order.Digest{Received: []uint64{0, 0}}, Holders: []peer.ID{1, 1}, OrderHolder: 1}
	if err := n.Step(Message{Type: MsgAccept, From: 1, To: 2, View: 1, Ballot: Ballot{Round: 1, Proposer: 1}, Value: bad}); !errors.Is(err, ErrMalformed) {
		t.Errorf("accept of a value for another view: %v", err)
	}
	h.collect(h.nodes[2])
	h.stabilize(100)
	if !errors.Is(n.Stopped(), ErrLeft) {
		t.Fatalf("leaver stopped with %v", n.Stopped())
	}
	if _, err := n.Send(nil, order.FIFO); !errors.Is(err, ErrStopped) {
		t.Errorf("Send after leaving: %v", err)
	}
	if err := n.Step(Message{Type: MsgPrepare, From: 1, To: 2}); !errors.Is(err, ErrStopped) {
		t.Errorf("Step after leaving: %v", err)
	}
}

// TestRestoreOverflow: a joiner whose restore does not progress while the
// group keeps sending stops with ErrRestoreOverflow once its buffer is
// full, instead of growing it.
func TestRestoreOverflow(t *testing.T) {
	cfg := testConfig()
	cfg.RestoreBufferDeliveriesMax = 3
	h, err := newHarness(cfg, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.join(3, []peer.ID{1}); err != nil {
		t.Fatal(err)
	}
	// Deliver everything but chunks, so the restore never completes.
	h.lose = func(m Message) bool { return m.Type == MsgChunk }
	for range 20 {
		h.drain()
		for _, hn := range h.live() {
			h.tick(hn)
		}
		_ = h.send(1, order.FIFO, "more")
	}
	joiner := h.nodes[3]
	if !errors.Is(joiner.proc.stopped, ErrRestoreOverflow) {
		h.out.Reset()
		h.trace = true
		h.status()
		t.Fatalf("joiner stopped with %v, buffer %d\n%s", joiner.proc.stopped, len(joiner.n.xfer.buffer), h.out)
	}
	if len(joiner.state) != 0 {
		t.Fatalf("joiner applied %d records without a restore", len(joiner.state))
	}
}
