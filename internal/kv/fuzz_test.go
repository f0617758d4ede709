package kv

import (
	"bytes"
	"testing"
)

// seedRequests are valid commands of every kind, for the fuzz corpora.
func seedRequests() [][]byte {
	reqs := []Request{
		{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "t", Mode: "paxos", Params: map[string]string{"a": "1"}}},
		{Kind: KindDeleteNamespace, Namespace: "t"},
		{Kind: KindListNamespaces},
		{Kind: KindDescribeNamespace, Namespace: "t"},
		{Session: Session{Client: 1, Seq: 2}, Kind: KindTxn, Namespace: "t", Txn: Txn{
			Compares: []Compare{{Key: []byte("a"), Target: TargetVersion, Result: Less, Version: 3}},
			Then:     []Op{putOp("a", "1"), {Type: OpPut, Key: []byte("b"), Value: []byte("2"), PrevKV: true}, getOp("a")},
			Else:     []Op{delRangeOp("a", "\x00"), rangeOp("", "\x00", 2)},
		}},
		{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{{Type: OpDelete, Key: []byte("a"), PrevKV: true}}}},
	}
	var out [][]byte
	for _, r := range reqs {
		out = append(out, EncodeRequest(r))
	}
	return out
}

// FuzzDecodeRequest: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to exactly the same bytes (the encoding is
// canonical). The same holds for responses.
func FuzzDecodeRequest(f *testing.F) {
	for _, b := range seedRequests() {
		f.Add(b)
	}
	f.Add(EncodeResponse(Response{Code: CodeOK, Index: 9, Succeeded: true, Results: []OpResult{{KVs: []KeyValue{{Key: []byte("k"), Version: 1}}, More: true}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := DecodeRequest(b, modelConfig); err == nil {
			if out := EncodeRequest(req); !bytes.Equal(out, b) {
				t.Fatalf("request re-encodes differently:\n in %x\nout %x", b, out)
			}
		}
		if resp, err := DecodeResponse(b); err == nil {
			if out := EncodeResponse(resp); !bytes.Equal(out, b) {
				t.Fatalf("response re-encodes differently:\n in %x\nout %x", b, out)
			}
		}
	})
}

// FuzzApply: arbitrary commands never make Apply or Query panic, their
// answers decode, and two machines (the second one snapshotted and
// restored where the input says) stay byte-identical.
//
// Input: a sequence of chunks, each a length byte then that many bytes of
// command; the length 0xff instead restores the second machine from its
// own snapshot.
func FuzzApply(f *testing.F) {
	var seed []byte
	for _, b := range seedRequests() {
		if len(b) < 0xff {
			seed = append(append(seed, byte(len(b))), b...)
		}
		seed = append(seed, 0xff)
	}
	f.Add(seed)
	f.Add([]byte{0xff, 3, 1, 3, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		a, _ := New(modelConfig)
		b, _ := New(modelConfig)
		create := EncodeRequest(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "t", Mode: "paxos"}})
		a.Apply(1, create)
		b.Apply(1, create)
		index := uint64(1)
		for len(in) > 0 {
			n := int(in[0])
			in = in[1:]
			if n == 0xff {
				var snap bytes.Buffer
				if err := b.Snapshot(&snap); err != nil {
					t.Fatal(err)
				}
				b, _ = New(modelConfig)
				if err := b.Restore(&snap); err != nil {
					t.Fatalf("restore of an own snapshot: %v", err)
				}
				continue
			}
			cmd := in[:min(n, len(in))]
			in = in[len(cmd):]
			index++
			outA, outB := a.Apply(index, cmd), b.Apply(index, cmd)
			if !bytes.Equal(outA, outB) {
				t.Fatalf("answers differ for %x", cmd)
			}
			if _, err := DecodeResponse(outA); err != nil {
				t.Fatalf("answer does not decode: %v", err)
			}
			qa, qb := a.Query(cmd), b.Query(cmd)
			if !bytes.Equal(qa, qb) {
				t.Fatalf("query answers differ for %x", cmd)
			}
			if _, err := DecodeResponse(qa); err != nil {
				t.Fatalf("query answer does not decode: %v", err)
			}
		}
		if a.Digest() != b.Digest() {
			t.Fatal("digests differ")
		}
	})
}

// FuzzRestore: arbitrary bytes never make Restore panic; a refused stream
// leaves the state as it was, and an accepted one is canonical (the
// restored machine snapshots to the same bytes).
func FuzzRestore(f *testing.F) {
	h := newHarness(f, modelConfig)
	h.createNS("t")
	h.put("t", "a", "1")
	h.applyRaw(sessReq(3, 1, putOp("b", "22")))
	var snap bytes.Buffer
	if err := h.m.Snapshot(&snap); err != nil {
		f.Fatal(err)
	}
	f.Add(snap.Bytes())
	empty, _ := New(modelConfig)
	snap.Reset()
	empty.Snapshot(&snap)
	f.Add(snap.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		m, _ := New(modelConfig)
		m.Apply(1, EncodeRequest(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "x", Mode: "m"}}))
		before := m.Digest()
		if err := m.Restore(bytes.NewReader(in)); err != nil {
			if m.Digest() != before {
				t.Fatal("a refused snapshot changed the state")
			}
			return
		}
		var out bytes.Buffer
		if err := m.Snapshot(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("accepted snapshot is not canonical:\n in %x\nout %x", in, out.Bytes())
		}
	})
}
