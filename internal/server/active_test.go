package server_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/httpapi/apitest"
	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/internal/server"
)

// TestActiveNamespace runs an active namespace on three in-process
// servers: created through the catalog, its group founded by every member
// on its own, writes and reads through the group's total order at any
// member, equal copies, and the group closed when the namespace is deleted.
func TestActiveNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	groupPeers := map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		groupPeers[id] = l.Addr().String()
		l.Close()
	}
	c, err := apitest.Start(ctx, t.TempDir(), 3, apitest.Options{Config: func(cfg *server.Config) {
		cfg.GroupAddr = groupPeers[cfg.ID]
		cfg.GroupPeers = map[uint64]string{}
		for id, a := range groupPeers {
			cfg.GroupPeers[id] = a
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := leaderServer(t, c)
	if res, err := s.CreateNamespace(ctx, kv.Session{}, kv.NamespaceSpec{Name: "live", Mode: server.ModeActive}); err != nil || res.Code != kv.CodeOK {
		t.Fatalf("create: %v %+v", err, res)
	}
	// Each member starts its share of the group from the catalog it
	// applied; a request before that gets ErrUnavailable.
	for id, srv := range c.Servers {
		deadline := time.Now().Add(20 * time.Second)
		for len(srv.GroupViews()) == 0 || len(srv.GroupViews()[0].View.Members) != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("member %d: no group view of 3: %+v", id, srv.GroupViews())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range 9 {
		srv := c.Servers[uint64(i%3+1)]
		res, err := srv.Txn(ctx, putReq("live", fmt.Sprintf("k%d", i), fmt.Sprint(i)))
		if err != nil || res.Code != kv.CodeOK {
			t.Fatalf("put %d via member %d: %v %+v", i, i%3+1, err, res)
		}
	}
	for id, srv := range c.Servers {
		res, err := srv.Txn(ctx, getReq("live", "k8"))
		if err != nil || len(res.Results) != 1 || len(res.Results[0].KVs) != 1 || string(res.Results[0].KVs[0].Value) != "8" {
			t.Fatalf("member %d: get k8 = %v %+v", id, err, res)
		}
	}
	// After the ordered reads above, every copy applied all 10 commands
	// (the create and 9 puts).
	var want [32]byte
	for id, srv := range c.Servers {
		g := srv.GroupViews()[0]
		if g.Applied != 10 {
			t.Fatalf("member %d applied %d commands, want 10", id, g.Applied)
		}
		if want == ([32]byte{}) {
			want = g.Digest
		} else if g.Digest != want {
			t.Fatalf("member %d's copy differs", id)
		}
	}
	if res, err := s.DeleteNamespace(ctx, kv.Session{}, "live"); err != nil || res.Code != kv.CodeOK {
		t.Fatalf("delete: %v %+v", err, res)
	}
	for id, srv := range c.Servers {
		deadline := time.Now().Add(10 * time.Second)
		for len(srv.GroupViews()) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("member %d still runs the deleted namespace's group", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
