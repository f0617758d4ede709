package kv

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func sessReq(client, seq uint64, op Op) []byte {
	return EncodeRequest(Request{Session: Session{Client: client, Seq: seq}, Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{op}}})
}

// checkExactlyOnce applies a put, retries it twice, and reports whether
// the retries were answered from the session table without applying.
func checkExactlyOnce(t *testing.T) error {
	h := newHarness(t, Config{})
	h.createNS("t")
	put := sessReq(7, 1, Op{Type: OpPut, Key: []byte("k"), Value: []byte("v"), PrevKV: true})
	h.index++
	first := h.m.Apply(h.index, put)
	for range 2 {
		h.index++
		if again := h.m.Apply(h.index, put); !bytes.Equal(again, first) {
			return fmt.Errorf("a retry was answered differently")
		}
	}
	if got := kvString(h.get("t", "k")); got != "k=v v1 c2 m2" {
		return fmt.Errorf("a retry was applied again: %s", got)
	}
	if h.m.AppliedIndex() != 4 {
		return fmt.Errorf("applied index %d, want 4", h.m.AppliedIndex())
	}
	return nil
}

func TestExactlyOnce(t *testing.T) {
	if err := checkExactlyOnce(t); err != nil {
		t.Fatal(err)
	}
	t.Run("planted", func(t *testing.T) {
		withPlant(t, &plant.noDedup)
		if err := checkExactlyOnce(t); err == nil {
			t.Fatal("the check missed a machine that applies retries again")
		}
	})
}

func TestSessions(t *testing.T) {
	h := newHarness(t, Config{})
	h.createNS("t") // 1
	apply := func(cmd []byte) Response {
		t.Helper()
		return h.applyRaw(cmd)
	}
	if r := apply(sessReq(1, 5, putOp("k", "a"))); r.Code != CodeOK || r.Index != 2 { // 2
		t.Fatalf("%+v", r)
	}
	if r := apply(sessReq(1, 6, putOp("k", "b"))); r.Code != CodeOK { // 3; gaps in seq are fine
		t.Fatalf("%+v", r)
	}
	// A retry of seq 6 answers with the first response (index 3), applying nothing.
	if r := apply(sessReq(1, 6, putOp("k", "b"))); r.Code != CodeOK || r.Index != 3 {
		t.Fatalf("retry: %+v", r)
	}
	// Even if the retry's body differs: the session decides.
	if r := apply(sessReq(1, 6, putOp("k", "c"))); r.Code != CodeOK || r.Index != 3 {
		t.Fatalf("retry with another body: %+v", r)
	}
	if got := kvString(h.get("t", "k")); got != "k=b v2 c2 m3" {
		t.Fatal(got)
	}
	// Below the last seq: stale, nothing applied, nothing recorded.
	r := apply(sessReq(1, 5, putOp("k", "old")))
	if r.Code != CodeStaleSession || !strings.Contains(r.Message, "below its last applied seq 6") || r.Index != 6 {
		t.Fatalf("stale: %+v", r)
	}
	if got := kvString(h.get("t", "k")); got != "k=b v2 c2 m3" {
		t.Fatal(got)
	}
	// A refused command is recorded like any other: its retry gets the same refusal.
	bad := sessReq(1, 7, putOp("", "x"))
	if r := apply(bad); r.Code != CodeBadRequest || r.Index != 7 {
		t.Fatalf("%+v", r)
	}
	if r := apply(bad); r.Code != CodeBadRequest || r.Index != 7 {
		t.Fatalf("retry of a refusal: %+v", r)
	}
	// An undecodable command records nothing (there is no session to read).
	if r := apply([]byte{requestVersion, byte(KindTxn), 1, 8}); r.Code != CodeBadRequest {
		t.Fatalf("%+v", r)
	}
	if s := h.m.sessions.get(1); s.seq != 7 {
		t.Fatalf("session seq %d", s.seq)
	}
	// Client 0 is never deduplicated.
	apply(sessReq(0, 1, putOp("z", "1")))
	apply(sessReq(0, 1, putOp("z", "1")))
	if got := kvString(h.get("t", "z")); !strings.Contains(got, "v2") {
		t.Fatalf("client 0 deduplicated: %s", got)
	}
	if n := h.m.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions", n)
	}
}

func TestSessionEviction(t *testing.T) {
	h := newHarness(t, Config{SessionsMax: 2})
	h.createNS("t")
	h.applyRaw(sessReq(1, 1, putOp("a", "1"))) // 2
	h.applyRaw(sessReq(2, 1, putOp("b", "1"))) // 3
	h.applyRaw(sessReq(1, 2, putOp("a", "2"))) // 4: client 1 is now the newer
	h.applyRaw(sessReq(3, 1, putOp("c", "1"))) // 5: evicts client 2 (last at 3)
	if h.m.sessions.get(2) != nil || h.m.sessions.get(1) == nil || h.m.sessions.get(3) == nil {
		t.Fatal("evicted the wrong client")
	}
	// Client 2's retry is applied again: the documented limit of the table.
	h.applyRaw(sessReq(2, 1, putOp("b", "1"))) // 6: evicts client 1 (last at 4)
	if got := kvString(h.get("t", "b")); got != "b=1 v2 c3 m6" {
		t.Fatalf("after eviction: %s", got)
	}
	if h.m.sessions.get(1) != nil || h.m.Stats().Sessions != 2 {
		t.Fatal("table over SessionsMax")
	}
	// Client 3 is still known.
	if r := h.applyRaw(sessReq(3, 1, putOp("c", "x"))); r.Index != 5 {
		t.Fatalf("client 3 retry: %+v", r)
	}
}

func TestSessionDropsLargeResults(t *testing.T) {
	h := newHarness(t, Config{SessionResponseBytesMax: 2048})
	h.createNS("t")
	h.put("t", "big", strings.Repeat("v", 3000))
	get := sessReq(9, 1, getOp("big"))
	first := h.applyRaw(get)
	if first.Code != CodeOK || len(first.Results[0].KVs) != 1 || first.ResultsDropped {
		t.Fatalf("first: %+v", first)
	}
	retry := h.applyRaw(get)
	if retry.Code != CodeOK || retry.Index != first.Index || !retry.Succeeded || !retry.ResultsDropped || retry.Results != nil {
		t.Fatalf("retry: %+v", retry)
	}
	if n := len(h.m.sessions.get(9).resp); n > 2048 {
		t.Fatalf("kept %d bytes", n)
	}
}
