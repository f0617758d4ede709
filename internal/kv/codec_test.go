package kv

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestRequestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		req := genRequest.Draw(t, "req")
		req.Session.Seq = rapid.Uint64().Draw(t, "seq")
		if req.Kind == KindCreateNamespace && rapid.Bool().Draw(t, "params") {
			req.Spec.Params = rapid.MapOfN(rapid.StringMatching(`[a-z]{1,5}`), rapid.String(), 1, 4).Draw(t, "params")
		}
		b := EncodeRequest(req)
		got, err := DecodeRequest(b, Config{})
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, req)
		}
		if !bytes.Equal(EncodeRequest(got), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

var genKV = rapid.Custom(func(t *rapid.T) KeyValue {
	return KeyValue{
		Key:         nilIfEmpty(rapid.SliceOf(rapid.Byte()).Draw(t, "key")),
		Value:       nilIfEmpty(rapid.SliceOf(rapid.Byte()).Draw(t, "value")),
		Version:     rapid.Uint64().Draw(t, "version"),
		CreateIndex: rapid.Uint64().Draw(t, "create"),
		ModIndex:    rapid.Uint64().Draw(t, "mod"),
	}
})

var genResponse = rapid.Custom(func(t *rapid.T) Response {
	resp := Response{
		Code:           Code(rapid.IntRange(0, 5).Draw(t, "code")),
		Message:        rapid.StringN(0, 20, MessageBytesMax).Draw(t, "message"),
		Index:          rapid.Uint64().Draw(t, "index"),
		Succeeded:      rapid.Bool().Draw(t, "succeeded"),
		ResultsDropped: rapid.Bool().Draw(t, "dropped"),
	}
	for range rapid.IntRange(0, 3).Draw(t, "results") {
		res := OpResult{More: rapid.Bool().Draw(t, "more"), Deleted: rapid.Uint64().Draw(t, "deleted")}
		if kvs := rapid.SliceOfN(genKV, 0, 3).Draw(t, "kvs"); len(kvs) > 0 {
			res.KVs = kvs
		}
		if rapid.Bool().Draw(t, "hasprev") {
			kv := genKV.Draw(t, "prev")
			res.PrevKV = &kv
		}
		resp.Results = append(resp.Results, res)
	}
	for range rapid.IntRange(0, 2).Draw(t, "namespaces") {
		info := NamespaceInfo{
			Spec:  NamespaceSpec{Name: rapid.StringMatching(`[a-z]{1,8}`).Draw(t, "name"), Mode: "paxos"},
			Keys:  rapid.Uint64().Draw(t, "keys"),
			Bytes: rapid.Uint64().Draw(t, "bytes"), CreateIndex: rapid.Uint64().Draw(t, "create"),
		}
		if rapid.Bool().Draw(t, "params") {
			info.Spec.Params = map[string]string{"n": "3", "w": "2"}
		}
		resp.Namespaces = append(resp.Namespaces, info)
	}
	return resp
})

func TestResponseRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		resp := genResponse.Draw(t, "resp")
		b := EncodeResponse(resp)
		got, err := DecodeResponse(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, resp) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, resp)
		}
	})
}

func TestDecodeRequestErrors(t *testing.T) {
	cfg := Config{KeyBytesMax: 4, ValueBytesMax: 4, TxnOpsMax: 2, ResponseBytesMax: 8 + responseOverheadBytes}
	txn := func(txn Txn) []byte { return EncodeRequest(Request{Kind: KindTxn, Namespace: "t", Txn: txn}) }
	spec := EncodeRequest(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "t", Mode: "m", Params: map[string]string{"a": "1", "b": "2"}}})
	unsorted := bytes.Replace(bytes.Replace(spec, []byte("\x01a\x011"), []byte("\x01c\x011"), 1), []byte("\x01b"), []byte("\x01a"), 1)
	dup := bytes.Replace(spec, []byte("\x01b"), []byte("\x01a"), 1)
	tests := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"key", txn(Txn{Then: []Op{putOp("123456", "")}}), ErrTooLarge, "then[0].key"}, // KeyBytesMax + 1 is a range bound
		{"end", txn(Txn{Else: []Op{rangeOp("1", "123456", 0)}}), ErrTooLarge, "else[0].end"},
		{"value", txn(Txn{Then: []Op{putOp("1", "12345")}}), ErrTooLarge, "then[0].value"},
		{"compare value", txn(Txn{Compares: []Compare{{Key: []byte("k"), Value: []byte("12345")}}}), ErrTooLarge, "compare 0"},
		{"ops", txn(Txn{Then: []Op{getOp("a"), getOp("a"), getOp("a")}}), ErrTooLarge, "then count"},
		{"ops across branches", txn(Txn{Compares: []Compare{{Key: []byte("k")}}, Then: []Op{getOp("a")}, Else: []Op{getOp("a")}}), ErrTooLarge, "else count"},
		{"negative limit", txn(Txn{Then: []Op{{Type: OpRange, Key: []byte("a"), Limit: -1}}}), ErrBadRequest, "limit"},
		{"params unsorted", unsorted, ErrBadRequest, "not sorted"},
		{"params duplicated", dup, ErrBadRequest, "not sorted"},
		{"namespace name", EncodeRequest(Request{Kind: KindDescribeNamespace, Namespace: strings.Repeat("n", 65)}), ErrTooLarge, "limit 64"},
		{"kind", []byte{requestVersion, 0, 0, 0}, ErrBadRequest, "unknown kind 0"},
		{"version", []byte{2}, ErrBadRequest, "version 2"},
		{"empty", nil, ErrBadRequest, "truncated"},
	}
	for _, tc := range tests {
		_, err := DecodeRequest(tc.b, cfg)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %v containing %q", tc.name, err, tc.want, tc.msg)
		}
	}
	// The same bytes pass with the default limits (where they are valid).
	if _, err := DecodeRequest(tests[0].b, Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeResponse([]byte{responseVersion, 0}); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("response: %v", err)
	}
}

func TestEncodingIsSorted(t *testing.T) {
	params := map[string]string{}
	for _, k := range []string{"z", "m", "a", "q", "b", "y", "c"} {
		params[k] = k
	}
	first := EncodeRequest(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "t", Mode: "m", Params: params}})
	for range 20 {
		if !bytes.Equal(EncodeRequest(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "t", Mode: "m", Params: params}}), first) {
			t.Fatal("map order reached the encoding")
		}
	}
}
