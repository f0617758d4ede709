package kv

import (
	"bytes"
	"fmt"
	"testing"
)

// harness drives one Machine through encoded commands, as a log would.
type harness struct {
	t     testing.TB
	m     *Machine
	index uint64
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &harness{t: t, m: m}
}

// apply encodes req, applies it at the next index and decodes the answer.
func (h *harness) apply(req Request) Response {
	h.t.Helper()
	return h.applyRaw(EncodeRequest(req))
}

func (h *harness) applyRaw(cmd []byte) Response {
	h.t.Helper()
	h.index++
	out := h.m.Apply(h.index, cmd)
	resp, err := DecodeResponse(out)
	if err != nil {
		h.t.Fatalf("DecodeResponse of Apply's answer: %v", err)
	}
	if !bytes.Equal(EncodeResponse(resp), out) {
		h.t.Fatalf("Apply's answer is not canonical")
	}
	return resp
}

func (h *harness) query(req Request) Response {
	h.t.Helper()
	resp, err := DecodeResponse(h.m.Query(EncodeRequest(req)))
	if err != nil {
		h.t.Fatalf("DecodeResponse of Query's answer: %v", err)
	}
	return resp
}

// ok applies req and fails the test unless it is answered CodeOK.
func (h *harness) ok(req Request) Response {
	h.t.Helper()
	resp := h.apply(req)
	if resp.Code != CodeOK {
		h.t.Fatalf("%s: %s: %s", req.Kind, resp.Code, resp.Message)
	}
	return resp
}

func (h *harness) createNS(name string) {
	h.t.Helper()
	h.ok(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: name, Mode: "paxos"}})
}

func (h *harness) txn(ns string, txn Txn) Response {
	h.t.Helper()
	return h.apply(Request{Kind: KindTxn, Namespace: ns, Txn: txn})
}

func (h *harness) put(ns, key, value string) Response {
	h.t.Helper()
	return h.txn(ns, Txn{Then: []Op{putOp(key, value)}})
}

func (h *harness) get(ns, key string) *KeyValue {
	h.t.Helper()
	resp := h.query(Request{Kind: KindTxn, Namespace: ns, Txn: Txn{Then: []Op{getOp(key)}}})
	if resp.Code != CodeOK {
		h.t.Fatalf("get %q: %s: %s", key, resp.Code, resp.Message)
	}
	if len(resp.Results[0].KVs) == 0 {
		return nil
	}
	return &resp.Results[0].KVs[0]
}

func putOp(key, value string) Op { return Op{Type: OpPut, Key: []byte(key), Value: []byte(value)} }
func getOp(key string) Op        { return Op{Type: OpGet, Key: []byte(key)} }
func delOp(key string) Op        { return Op{Type: OpDelete, Key: []byte(key)} }
func rangeOp(key, end string, limit int) Op {
	return Op{Type: OpRange, Key: []byte(key), End: []byte(end), Limit: limit}
}
func delRangeOp(key, end string) Op {
	return Op{Type: OpDeleteRange, Key: []byte(key), End: []byte(end)}
}

func kvString(kv *KeyValue) string {
	if kv == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s=%s v%d c%d m%d", kv.Key, kv.Value, kv.Version, kv.CreateIndex, kv.ModIndex)
}

// withPlant switches a planted bug on for the rest of the test.
func withPlant(t *testing.T, flag *bool) {
	*flag = true
	t.Cleanup(func() { *flag = false })
}
