package active

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chorus-project/chorus/group"
	"github.com/chorus-project/chorus/internal/kv"
)

func newHost(t *testing.T, id group.MemberID) *group.Host {
	t.Helper()
	h, err := group.NewHost(group.HostConfig{ID: id, ClusterID: 3, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func put(key, value string) kv.Request {
	return kv.Request{Kind: kv.KindTxn, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: []byte(value)}}}}
}

func get(key string) kv.Request {
	return kv.Request{Kind: kv.KindTxn, Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpGet, Key: []byte(key)}}}}
}

func TestActiveNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := kv.NamespaceSpec{Name: "orders", Mode: "active"}
	hosts := []*group.Host{newHost(t, 1), newHost(t, 2), newHost(t, 3)}
	var founders []group.Member
	for _, h := range hosts {
		founders = append(founders, group.Member{ID: h.ID(), Addr: h.Addr(), Incarnation: 1})
	}
	var bs []*Backend
	for _, h := range hosts {
		b, err := Start(ctx, Config{Spec: spec, KV: kv.DefaultConfig(),
			Group: group.Config{Host: h, Founders: founders, Incarnation: 1, TickInterval: 5 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.g.Close() })
		bs = append(bs, b)
	}
	// Writes through every member; reads see them from every member.
	for i := range 30 {
		resp, err := bs[i%3].Write(ctx, put(fmt.Sprintf("k%02d", i), fmt.Sprint(i)))
		if err != nil || resp.Code != kv.CodeOK {
			t.Fatalf("put %d: %v %+v", i, err, resp)
		}
	}
	for i, b := range bs {
		resp, err := b.Read(ctx, get("k29"))
		if err != nil || resp.Code != kv.CodeOK || len(resp.Results) != 1 || len(resp.Results[0].KVs) != 1 ||
			string(resp.Results[0].KVs[0].Value) != "29" {
			t.Fatalf("member %d: get k29 = %v %+v", i+1, err, resp)
		}
	}
	// A compare that fails takes the else branch everywhere.
	txn := kv.Request{Kind: kv.KindTxn, Txn: kv.Txn{
		Compares: []kv.Compare{{Key: []byte("k00"), Target: kv.TargetValue, Result: kv.Equal, Value: []byte("nope")}},
		Then:     []kv.Op{{Type: kv.OpPut, Key: []byte("then"), Value: []byte("1")}},
		Else:     []kv.Op{{Type: kv.OpPut, Key: []byte("else"), Value: []byte("1")}},
	}}
	resp, err := bs[1].Write(ctx, txn)
	if err != nil || resp.Succeeded {
		t.Fatalf("txn: %v %+v", err, resp)
	}
	// Identical state: compare digests once every member applied all 31
	// commands (a read through the order at each is a barrier).
	for _, b := range bs {
		if _, err := b.Read(ctx, get("k00")); err != nil {
			t.Fatal(err)
		}
	}
	d0, i0 := bs[0].Digest()
	for i, b := range bs[1:] {
		if d, idx := b.Digest(); d != d0 || idx != i0 {
			t.Fatalf("member %d: digest/index %x/%d, member 1 %x/%d", i+2, d[:4], idx, d0[:4], i0)
		}
	}
	if i0 != 32 {
		t.Fatalf("applied index %d, want 32 (create + 31 commands)", i0)
	}

	// A member crashes and comes back as a joiner: it gets the state.
	bs[2].g.Close()
	hosts[2].Close()
	h4 := newHost(t, 3)
	nb, err := Start(ctx, Config{Spec: spec, KV: kv.DefaultConfig(),
		Group: group.Config{Host: h4, Contacts: founders[:2], TickInterval: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nb.g.Close() })
	if _, err := nb.Write(ctx, put("after", "restart")); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*Backend{bs[0], bs[1], nb} {
		if _, err := b.Read(ctx, get("after")); err != nil {
			t.Fatal(err)
		}
	}
	d0, _ = bs[0].Digest()
	if d, _ := nb.Digest(); d != d0 {
		t.Fatal("the restarted member's state differs")
	}
}
