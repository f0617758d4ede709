package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/httpapi/apitest"
	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/internal/server"
)

func validConfig(t *testing.T) server.Config {
	cfg := server.DefaultConfig()
	cfg.ClusterID, cfg.ID = 1, 1
	cfg.DataDir = filepath.Join(t.TempDir(), "d")
	cfg.PeerAddr, cfg.HTTPAddr = "127.0.0.1:1", "127.0.0.1:2"
	return cfg
}

func TestConfigValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*server.Config)
		want   error
		field  string
	}{
		{"cluster id", func(c *server.Config) { c.ClusterID = 0 }, server.ErrConfig, "cluster-id"},
		{"id", func(c *server.Config) { c.ID = 0 }, server.ErrConfig, "id"},
		{"data dir empty", func(c *server.Config) { c.DataDir = "" }, server.ErrConfig, "data-dir"},
		{"data dir parent missing", func(c *server.Config) { c.DataDir = "/nonexistent/x/y" }, server.ErrDataDir, "parent"},
		{"data dir a file", func(c *server.Config) { c.DataDir = file }, server.ErrDataDir, "not a directory"},
		{"both", func(c *server.Config) { c.Bootstrap, c.Join = true, true }, server.ErrConfig, "bootstrap and join"},
		{"peer addr", func(c *server.Config) { c.PeerAddr = "nope" }, server.ErrConfig, "listen-peer"},
		{"http addr", func(c *server.Config) { c.HTTPAddr = "" }, server.ErrConfig, "listen-http"},
		{"peers self", func(c *server.Config) { c.Peers = map[uint64]string{1: "127.0.0.1:9"} }, server.ErrConfig, "listen-peer"},
		{"peers zero", func(c *server.Config) { c.Peers = map[uint64]string{0: "127.0.0.1:9"} }, server.ErrConfig, "id 0"},
		{"peers addr", func(c *server.Config) { c.Peers = map[uint64]string{2: "x"} }, server.ErrConfig, "peers (member 2)"},
		{"http peers addr", func(c *server.Config) { c.HTTPPeers = map[uint64]string{2: "x"} }, server.ErrConfig, "http-peers (member 2)"},
		{"group peers without listen-group", func(c *server.Config) { c.GroupPeers = map[uint64]string{2: "127.0.0.1:9"} }, server.ErrConfig, "listen-group is empty"},
		{"listen-group", func(c *server.Config) { c.GroupAddr = "nope" }, server.ErrConfig, "listen-group"},
		{"group peers addr", func(c *server.Config) {
			c.GroupAddr, c.GroupPeers = "127.0.0.1:9", map[uint64]string{2: "x"}
		}, server.ErrConfig, "group-peers (member 2)"},
		{"group peers self", func(c *server.Config) {
			c.GroupAddr, c.GroupPeers = "127.0.0.1:9", map[uint64]string{1: "127.0.0.1:8"}
		}, server.ErrConfig, "listen-group"},
		{"tick", func(c *server.Config) { c.TickInterval = 0 }, server.ErrConfig, "tick-interval"},
		{"election", func(c *server.Config) { c.ElectionTicks = 1 }, server.ErrConfig, "election-ticks"},
		{"heartbeat", func(c *server.Config) { c.HeartbeatTicks = 10 }, server.ErrConfig, "heartbeat-ticks"},
		{"sessions", func(c *server.Config) { c.SessionsMax = 0 }, server.ErrConfig, "sessions-max"},
		{"kv", func(c *server.Config) { c.KV.KeyBytesMax = -1 }, server.ErrConfig, "KeyBytesMax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig(t)
			tc.change(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %v, want %v naming %q", err, tc.want, tc.field)
			}
		})
	}
	cfg := validConfig(t)
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	if cfg.Peers[1] != cfg.PeerAddr || cfg.HTTPPeers[1] != cfg.HTTPAddr {
		t.Errorf("Validate did not add this member to Peers/HTTPPeers: %v %v", cfg.Peers, cfg.HTTPPeers)
	}
}

func TestReadOnly(t *testing.T) {
	get := kv.Op{Type: kv.OpGet, Key: []byte("k")}
	put := kv.Op{Type: kv.OpPut, Key: []byte("k")}
	for _, tc := range []struct {
		txn  kv.Txn
		want bool
	}{
		{kv.Txn{Then: []kv.Op{get, {Type: kv.OpRange, Key: []byte("a")}}}, true},
		{kv.Txn{Then: []kv.Op{get, put}}, false},
		{kv.Txn{Compares: []kv.Compare{{Key: []byte("k")}}, Then: []kv.Op{get}}, false},
		{kv.Txn{Else: []kv.Op{get}}, false},
		{kv.Txn{Then: []kv.Op{{Type: kv.OpDeleteRange}}}, false},
	} {
		if got := server.ReadOnly(tc.txn); got != tc.want {
			t.Errorf("ReadOnly(%+v) = %v", tc.txn, got)
		}
	}
}

// fakeBackend records the requests of a namespace of a registered mode.
type fakeBackend struct {
	mu     sync.Mutex
	writes []kv.Request
	reads  []kv.Request
	closed bool
}

func (f *fakeBackend) Write(_ context.Context, req kv.Request) (kv.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, req)
	return kv.Response{Index: 1000, Succeeded: true, Results: []kv.OpResult{{}}}, nil
}

func (f *fakeBackend) Read(_ context.Context, req kv.Request) (kv.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, req)
	return kv.Response{Index: 2000, Succeeded: true, Results: []kv.OpResult{{}}}, nil
}

func (f *fakeBackend) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func leaderServer(t *testing.T, c *apitest.Cluster) *server.Server {
	t.Helper()
	id, err := c.WaitLeader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.Servers[id]
}

func putReq(ns, key, value string) kv.Request {
	return kv.Request{Namespace: ns, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: []byte(value)}}}}
}

func getReq(ns, key string) kv.Request {
	return kv.Request{Namespace: ns, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}}}
}

// TestModes: a paxos namespace is served by the log; active is refused
// until a factory is registered, then its requests go to the backend, on
// every member (the catalog reached them through the log).
func TestModes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := apitest.Start(ctx, t.TempDir(), 3, apitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := leaderServer(t, c)
	if _, err := s.CreateNamespace(ctx, kv.Session{}, kv.NamespaceSpec{Name: "a", Mode: "active"}); !errors.Is(err, server.ErrModeUnavailable) {
		t.Fatalf("active without a factory: %v", err)
	}
	if _, err := s.CreateNamespace(ctx, kv.Session{}, kv.NamespaceSpec{Name: "a", Mode: "zzz"}); !errors.Is(err, server.ErrUnknownMode) {
		t.Fatalf("unknown mode: %v", err)
	}
	fakes := map[uint64]*fakeBackend{}
	for id, srv := range c.Servers {
		fb := &fakeBackend{}
		fakes[id] = fb
		srv.RegisterMode(server.ModeActive, func(spec kv.NamespaceSpec) (server.Backend, error) { return fb, nil })
	}
	for _, spec := range []kv.NamespaceSpec{{Name: "a", Mode: "active"}, {Name: "p", Mode: "paxos"}} {
		res, err := s.CreateNamespace(ctx, kv.Session{}, spec)
		if err != nil || res.Code != kv.CodeOK {
			t.Fatalf("create %+v: %v %+v", spec, err, res)
		}
	}
	res, err := s.Txn(ctx, putReq("p", "k", "v"))
	if err != nil || res.Code != kv.CodeOK || res.Index == 1000 {
		t.Fatalf("paxos put: %v %+v", err, res)
	}
	res, err = s.Txn(ctx, getReq("p", "k"))
	if err != nil || len(res.Results) != 1 || len(res.Results[0].KVs) != 1 {
		t.Fatalf("paxos get: %v %+v", err, res)
	}
	// Every member learns the catalog through the log; wait until each
	// applied up to the leader's commit.
	commit := s.Status().Commit
	for id, srv := range c.Servers {
		for srv.Status().Applied < commit {
			select {
			case <-ctx.Done():
				t.Fatalf("member %d did not apply up to %d", id, commit)
			case <-time.After(5 * time.Millisecond):
			}
		}
		if res, err := srv.Txn(ctx, putReq("a", "k", "v")); err != nil || res.Index != 1000 {
			t.Errorf("member %d: active put went to %v %+v, want the backend", id, err, res)
		}
		if res, err := srv.Txn(ctx, getReq("a", "k")); err != nil || res.Index != 2000 {
			t.Errorf("member %d: active get went to %v %+v, want the backend's Read", id, err, res)
		}
		if len(fakes[id].writes) != 1 || len(fakes[id].reads) != 1 {
			t.Errorf("member %d backend saw %d writes, %d reads", id, len(fakes[id].writes), len(fakes[id].reads))
		}
	}
	// Deleting the namespace closes every member's backend of it (the
	// others' at their next request to it).
	if res, err := s.DeleteNamespace(ctx, kv.Session{}, "a"); err != nil || res.Code != kv.CodeOK {
		t.Fatalf("delete: %v %+v", err, res)
	}
	commit = s.Status().Commit
	for id, srv := range c.Servers {
		for srv.Status().Applied < commit {
			select {
			case <-ctx.Done():
				t.Fatalf("member %d did not apply up to %d", id, commit)
			case <-time.After(5 * time.Millisecond):
			}
		}
		srv.Txn(ctx, getReq("a", "k")) // routed to paxos now (not found, or not the leader)
		fakes[id].mu.Lock()
		closed := fakes[id].closed
		fakes[id].mu.Unlock()
		if !closed {
			t.Errorf("member %d did not close the backend of the deleted namespace", id)
		}
	}
}

// TestRestartKeepsIndex: the index the state machine gives kv is a count
// of applied commands, kept across a restart from the data directory and
// across snapshots (SnapshotEntries 5), so ModIndex grows and the catalog
// survives.
func TestRestartKeepsIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := apitest.Start(ctx, t.TempDir(), 3, apitest.Options{Config: func(cfg *server.Config) { cfg.SnapshotEntries = 5 }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := leaderServer(t, c)
	if res, err := s.CreateNamespace(ctx, kv.Session{}, kv.NamespaceSpec{Name: "p", Mode: "paxos"}); err != nil || res.Code != kv.CodeOK {
		t.Fatalf("create: %v %+v", err, res)
	}
	var last uint64
	for i := range 12 {
		res, err := s.Txn(ctx, putReq("p", "k", "v"))
		if err != nil || res.Code != kv.CodeOK || res.Index <= last {
			t.Fatalf("put %d: %v %+v (last index %d)", i, err, res, last)
		}
		last = res.Index
	}
	for id := range c.Peers {
		if err := c.StopMember(id); err != nil {
			t.Fatal(err)
		}
	}
	for id := range c.Peers {
		if err := c.StartMember(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	s = leaderServer(t, c)
	var res kv.Response
	for {
		res, err = s.Txn(ctx, putReq("p", "k", "v"))
		if !errors.Is(err, server.ErrNotLeader) && !errors.Is(err, server.ErrUnavailable) {
			break
		}
		s = leaderServer(t, c)
	}
	if err != nil || res.Code != kv.CodeOK || res.Index != last+1 {
		t.Fatalf("put after restart: %v %+v, want index %d", err, res, last+1)
	}
	g, err := s.Txn(ctx, getReq("p", "k"))
	if err != nil || len(g.Results) != 1 || len(g.Results[0].KVs) != 1 || g.Results[0].KVs[0].Version != 13 {
		t.Fatalf("get after restart: %v %+v, want version 13", err, g)
	}
}
