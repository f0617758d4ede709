package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/transport"
	"github.com/chorus-project/chorus/internal/vfs"
	"github.com/chorus-project/chorus/internal/wire"
)

// listApp is a ShellApp that keeps the data of every applied normal entry.
type listApp struct {
	mu   sync.Mutex
	data []string
}

func (a *listApp) Restore(_ paxos.SnapshotMeta, in io.Reader) error {
	p, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.data = nil
	r := wire.NewReader(p)
	n := r.Count(len(p), 1)
	for range n {
		a.data = append(a.data, r.String(len(p)))
	}
	return r.Done()
}

func (a *listApp) Apply(e paxos.Entry) {
	if e.Type == paxos.EntryNormal {
		a.mu.Lock()
		a.data = append(a.data, string(e.Data))
		a.mu.Unlock()
	}
}

func (a *listApp) Snapshot(w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := wire.NewBuffer(nil)
	b.Uvarint(uint64(len(a.data)))
	for _, d := range a.data {
		b.String(d)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (a *listApp) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.data)
}

// memCluster runs shells over a MemNetwork, each on its own vfs.Mem.
type memCluster struct {
	net    *transport.MemNetwork
	shells map[peer.ID]*Shell
	apps   map[peer.ID]*listApp
}

func newMemCluster(t *testing.T, n int, snapshotEntries uint64) *memCluster {
	t.Helper()
	c := &memCluster{net: transport.NewMemNetwork(), shells: map[peer.ID]*Shell{}, apps: map[peer.ID]*listApp{}}
	var ids []peer.ID
	for i := 1; i <= n; i++ {
		ids = append(ids, peer.ID(i))
	}
	members := peer.MustSet(ids...)
	for _, id := range ids {
		peers := map[peer.ID]string{}
		for _, o := range ids {
			if o != id {
				peers[o] = fmt.Sprint("mem-", o)
			}
		}
		app := &listApp{}
		s, err := StartShell(ShellConfig{
			ClusterID:       1,
			Core:            paxos.DefaultConfig(id, members, nil),
			Peers:           peers,
			FS:              vfs.NewMem(),
			Dir:             "/data",
			TickInterval:    2 * time.Millisecond,
			SnapshotEntries: snapshotEntries,
			NewTransport: func(h transport.Handler) (transport.Transport, error) {
				return c.net.Endpoint(id, h)
			},
		}, app)
		if err != nil {
			t.Fatal(err)
		}
		c.shells[id], c.apps[id] = s, app
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close %s: %v", id, err)
			}
		})
	}
	return c
}

func (c *memCluster) leader(ctx context.Context, t *testing.T) peer.ID {
	t.Helper()
	for {
		for id, s := range c.shells {
			if s.Status().Role == paxos.Leader {
				return id
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// propose proposes on the leader until it is appended.
func (c *memCluster) propose(ctx context.Context, t *testing.T, data string) {
	t.Helper()
	for {
		err := c.shells[c.leader(ctx, t)].Propose(ctx, []byte(data), nil)
		if err == nil {
			return
		}
		if !errors.Is(err, paxos.ErrNotLeader) {
			t.Fatal(err)
		}
	}
}

// TestShellReplicatesAndCompacts proposes through the shell and checks that
// every member applies everything, that snapshots were taken, and that a
// linearizable read at the leader sees every proposal applied before it.
func TestShellReplicatesAndCompacts(t *testing.T) {
	c := newMemCluster(t, 3, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 50
	for i := range n {
		c.propose(ctx, t, fmt.Sprint("cmd-", i))
	}
	lead := c.leader(ctx, t)
	var seen int
	if err := c.shells[lead].Read(ctx, func() { seen = c.apps[lead].len() }); err != nil {
		t.Fatal(err)
	}
	if seen != n {
		t.Fatalf("read at the leader saw %d applied, want %d", seen, n)
	}
	for id, app := range c.apps {
		for app.len() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("member %s applied %d of %d", id, app.len(), n)
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	if st := c.shells[lead].Status(); st.SnapshotSlot == 0 {
		t.Fatalf("no snapshot taken with SnapshotEntries 8: %+v", st)
	}
}

// TestShellDropsBadMessages sends a shell garbage, a misaddressed envelope
// and a message whose sender lies: each is dropped and counted, and the
// member keeps working.
func TestShellDropsBadMessages(t *testing.T) {
	c := newMemCluster(t, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.propose(ctx, t, "before")
	evil, err := c.net.Endpoint(9, func(wire.Envelope) {})
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	evil.SetPeer(1, "mem-1")
	lying := paxos.EncodeMessage(paxos.Message{Type: paxos.MsgHeartbeat, From: 2, To: 1, Ballot: paxos.Ballot{Round: 1, Leader: 2}})
	for _, env := range []wire.Envelope{
		{Kind: paxos.WireKind, From: 9, To: 1, Payload: []byte{0xff, 0x00}}, // garbage
		{Kind: 0x1000, From: 9, To: 1, Payload: lying},                      // not a paxos kind
		{Kind: paxos.WireKind, From: 9, To: 1, Payload: lying},              // From lies
	} {
		if !evil.Send(env) {
			t.Fatal("send refused")
		}
	}
	for c.shells[1].DroppedMessages() < 3 {
		select {
		case <-ctx.Done():
			t.Fatalf("dropped %d of 3 bad messages", c.shells[1].DroppedMessages())
		case <-time.After(2 * time.Millisecond):
		}
	}
	c.propose(ctx, t, "after")
}

// TestShellReadTimeout isolates the leader: the read it took can no longer
// be confirmed, the core drops it when the leader steps down, and the shell
// fails it with ErrReadTimeout instead of leaving the caller waiting for its
// own deadline.
func TestShellReadTimeout(t *testing.T) {
	c := newMemCluster(t, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.propose(ctx, t, "x")
	lead := c.leader(ctx, t)
	c.net.Isolate(lead)
	err := c.shells[lead].Read(ctx, func() { t.Error("read served without a quorum") })
	if !errors.Is(err, ErrReadTimeout) {
		t.Fatalf("read on an isolated leader: %v, want ErrReadTimeout", err)
	}
}

// TestShellConfigRefusals checks the shell's own validation.
func TestShellConfigRefusals(t *testing.T) {
	good := ShellConfig{
		ClusterID: 1, Core: paxos.DefaultConfig(1, peer.MustSet(1), nil), ListenAddr: "127.0.0.1:0",
		FS: vfs.NewMem(), Dir: "/d", TickInterval: time.Millisecond,
	}
	for name, mutate := range map[string]func(*ShellConfig){
		"cluster 0":      func(c *ShellConfig) { c.ClusterID = 0 },
		"no dir":         func(c *ShellConfig) { c.Dir = "" },
		"tick 0":         func(c *ShellConfig) { c.TickInterval = 0 },
		"self as peer":   func(c *ShellConfig) { c.Peers = map[peer.ID]string{1: "x"} },
		"no listen":      func(c *ShellConfig) { c.ListenAddr = "" },
		"negative queue": func(c *ShellConfig) { c.RequestQueueMax = -1 },
	} {
		cfg := good
		mutate(&cfg)
		s, err := StartShell(cfg, &listApp{})
		if err == nil {
			s.Close()
			t.Errorf("%s: started", name)
		} else if !errors.Is(err, ErrShellConfig) {
			t.Errorf("%s: %v, want ErrShellConfig", name, err)
		}
	}
}
