package kv

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fmtResult renders an OpResult compactly for table expectations.
func fmtResult(res OpResult) string {
	var parts []string
	if len(res.KVs) > 0 {
		kvs := make([]string, len(res.KVs))
		for i := range res.KVs {
			kvs[i] = kvString(&res.KVs[i])
		}
		parts = append(parts, "["+strings.Join(kvs, ", ")+"]")
	}
	if res.More {
		parts = append(parts, "more")
	}
	if res.Deleted > 0 {
		parts = append(parts, fmt.Sprintf("deleted=%d", res.Deleted))
	}
	if res.PrevKV != nil {
		parts = append(parts, "prev="+kvString(res.PrevKV))
	}
	return strings.Join(parts, " ")
}

// opsFixture: namespace "t" created at 1; a=1 at 2, b=2 at 3, c=3 at 4,
// d=4 at 5, b=22 at 6. The next command is applied at 7.
func opsFixture(t *testing.T) *harness {
	h := newHarness(t, Config{})
	h.createNS("t")
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"b", "22"}} {
		if r := h.put("t", kv[0], kv[1]); r.Code != CodeOK {
			t.Fatalf("put: %s", r.Message)
		}
	}
	return h
}

func TestOps(t *testing.T) {
	prev := func(op Op) Op { op.PrevKV = true; return op }
	tests := []struct {
		name  string
		ops   []Op
		want  []string          // fmtResult of each result
		after map[string]string // kvString of keys afterwards
	}{
		{"get", []Op{getOp("a")}, []string{"[a=1 v1 c2 m2]"}, nil},
		{"get updated", []Op{getOp("b")}, []string{"[b=22 v2 c3 m6]"}, nil},
		{"get missing", []Op{getOp("z")}, []string{""}, nil},
		{"range", []Op{rangeOp("a", "c", 0)}, []string{"[a=1 v1 c2 m2, b=22 v2 c3 m6]"}, nil},
		{"range to end", []Op{rangeOp("b", "\x00", 0)}, []string{"[b=22 v2 c3 m6, c=3 v1 c4 m4, d=4 v1 c5 m5]"}, nil},
		{"range everything", []Op{rangeOp("", "\x00", 0)}, []string{"[a=1 v1 c2 m2, b=22 v2 c3 m6, c=3 v1 c4 m4, d=4 v1 c5 m5]"}, nil},
		{"range limit", []Op{rangeOp("a", "\x00", 2)}, []string{"[a=1 v1 c2 m2, b=22 v2 c3 m6] more"}, nil},
		{"range limit exact", []Op{rangeOp("a", "e", 4)}, []string{"[a=1 v1 c2 m2, b=22 v2 c3 m6, c=3 v1 c4 m4, d=4 v1 c5 m5]"}, nil},
		{"range limit inside", []Op{rangeOp("b", "d", 1)}, []string{"[b=22 v2 c3 m6] more"}, nil},
		{"range end before key", []Op{rangeOp("c", "a", 0)}, []string{""}, nil},
		{"range end equal key", []Op{rangeOp("c", "c", 0)}, []string{""}, nil},
		{"range one key", []Op{rangeOp("c", "", 0)}, []string{"[c=3 v1 c4 m4]"}, nil},
		{"range between keys", []Op{rangeOp("a\x00", "b", 0)}, []string{""}, nil},
		{"put new", []Op{putOp("e", "5")}, []string{""}, map[string]string{"e": "e=5 v1 c7 m7"}},
		{"put existing", []Op{putOp("a", "x")}, []string{""}, map[string]string{"a": "a=x v2 c2 m7"}},
		{"put prevkv", []Op{prev(putOp("b", "x"))}, []string{"prev=b=22 v2 c3 m6"}, map[string]string{"b": "b=x v3 c3 m7"}},
		{"put prevkv new", []Op{prev(putOp("e", "x"))}, []string{""}, map[string]string{"e": "e=x v1 c7 m7"}},
		{"put empty value", []Op{putOp("e", "")}, []string{""}, map[string]string{"e": "e= v1 c7 m7"}},
		{"delete", []Op{delOp("a")}, []string{"deleted=1"}, map[string]string{"a": "<nil>", "b": "b=22 v2 c3 m6"}},
		{"delete prevkv", []Op{prev(delOp("b"))}, []string{"deleted=1 prev=b=22 v2 c3 m6"}, map[string]string{"b": "<nil>"}},
		{"delete missing", []Op{prev(delOp("z"))}, []string{""}, nil},
		{"delete range", []Op{delRangeOp("b", "d")}, []string{"deleted=2"},
			map[string]string{"a": "a=1 v1 c2 m2", "b": "<nil>", "c": "<nil>", "d": "d=4 v1 c5 m5"}},
		{"delete range prevkv", []Op{prev(delRangeOp("b", "d"))}, []string{"[b=22 v2 c3 m6, c=3 v1 c4 m4] deleted=2"}, nil},
		{"delete range everything", []Op{delRangeOp("", "\x00")}, []string{"deleted=4"},
			map[string]string{"a": "<nil>", "d": "<nil>"}},
		{"delete range one key", []Op{delRangeOp("c", "")}, []string{"deleted=1"}, map[string]string{"c": "<nil>"}},
		{"delete range empty", []Op{delRangeOp("x", "\x00")}, []string{""}, nil},
		{"ops see earlier ops", []Op{putOp("a", "x"), getOp("a"), delOp("a"), getOp("a")},
			[]string{"", "[a=x v2 c2 m7]", "deleted=1", ""}, map[string]string{"a": "<nil>"}},
		{"recreate starts at version 1", []Op{delOp("b"), putOp("b", "y"), getOp("b")},
			[]string{"deleted=1", "", "[b=y v1 c7 m7]"}, map[string]string{"b": "b=y v1 c7 m7"}},
		{"two puts in one txn", []Op{putOp("a", "x"), prev(putOp("a", "y"))},
			[]string{"", "prev=a=x v2 c2 m7"}, map[string]string{"a": "a=y v3 c2 m7"}},
		{"range sees a delete range", []Op{delRangeOp("a", "c"), rangeOp("", "\x00", 0)},
			[]string{"deleted=2", "[c=3 v1 c4 m4, d=4 v1 c5 m5]"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := opsFixture(t)
			resp := h.txn("t", Txn{Then: tc.ops})
			if resp.Code != CodeOK || !resp.Succeeded || resp.Index != 7 {
				t.Fatalf("got %s %q succeeded=%v index=%d", resp.Code, resp.Message, resp.Succeeded, resp.Index)
			}
			if len(resp.Results) != len(tc.want) {
				t.Fatalf("%d results, want %d", len(resp.Results), len(tc.want))
			}
			for i, want := range tc.want {
				if got := fmtResult(resp.Results[i]); got != want {
					t.Errorf("result %d: got %q, want %q", i, got, want)
				}
			}
			for k, want := range tc.after {
				if got := kvString(h.get("t", k)); got != want {
					t.Errorf("afterwards %s: got %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestCompares(t *testing.T) {
	// In opsFixture, b is version 2, created at 3, modified at 6; z is missing.
	cmp := func(key string, target CompareTarget, result CompareResult) Compare {
		return Compare{Key: []byte(key), Target: target, Result: result}
	}
	val := func(key string, r CompareResult, v string) Compare {
		c := cmp(key, TargetValue, r)
		c.Value = []byte(v)
		return c
	}
	ver := func(key string, r CompareResult, v uint64) Compare {
		c := cmp(key, TargetVersion, r)
		c.Version = v
		return c
	}
	idx := func(key string, target CompareTarget, r CompareResult, i uint64) Compare {
		c := cmp(key, target, r)
		c.Index = i
		return c
	}
	exists := func(key string, r CompareResult, e bool) Compare {
		c := cmp(key, TargetExists, r)
		c.Exists = e
		return c
	}
	tests := []struct {
		c    Compare
		want bool
	}{
		{val("b", Equal, "22"), true}, {val("b", Equal, "2"), false},
		{val("b", NotEqual, "2"), true}, {val("b", NotEqual, "22"), false},
		{val("b", Less, "3"), true}, {val("b", Less, "22"), false}, {val("b", Less, "21"), false},
		{val("b", Greater, "21"), true}, {val("b", Greater, "22"), false}, {val("b", Greater, "3"), false},
		{val("z", Equal, ""), false}, {val("z", NotEqual, "x"), false}, {val("z", Less, "x"), false},
		{ver("b", Equal, 2), true}, {ver("b", Equal, 1), false}, {ver("b", NotEqual, 1), true},
		{ver("b", Less, 3), true}, {ver("b", Less, 2), false}, {ver("b", Greater, 1), true}, {ver("b", Greater, 2), false},
		{ver("z", Equal, 0), true}, {ver("z", Greater, 0), false}, {ver("z", Less, 1), true},
		{idx("b", TargetModIndex, Equal, 6), true}, {idx("b", TargetModIndex, Equal, 3), false},
		{idx("b", TargetModIndex, Less, 7), true}, {idx("b", TargetModIndex, Greater, 5), true},
		{idx("b", TargetModIndex, NotEqual, 6), false}, {idx("z", TargetModIndex, Equal, 0), true},
		{idx("b", TargetCreateIndex, Equal, 3), true}, {idx("b", TargetCreateIndex, Equal, 6), false},
		{idx("b", TargetCreateIndex, Less, 3), false}, {idx("b", TargetCreateIndex, Greater, 2), true},
		{idx("b", TargetCreateIndex, NotEqual, 4), true}, {idx("z", TargetCreateIndex, Equal, 0), true},
		{exists("b", Equal, true), true}, {exists("b", Equal, false), false},
		{exists("b", NotEqual, false), true}, {exists("b", NotEqual, true), false},
		{exists("z", Equal, false), true}, {exists("z", Equal, true), false}, {exists("z", NotEqual, true), true},
	}
	for _, tc := range tests {
		c := tc.c
		name := fmt.Sprintf("%s %s %s %q/%d/%d/%v", c.Key, c.Target, c.Result, c.Value, c.Version, c.Index, c.Exists)
		t.Run(name, func(t *testing.T) {
			h := opsFixture(t)
			resp := h.txn("t", Txn{Compares: []Compare{c}, Then: []Op{putOp("then", "1")}, Else: []Op{putOp("else", "1")}})
			if resp.Code != CodeOK {
				t.Fatalf("%s: %s", resp.Code, resp.Message)
			}
			if resp.Succeeded != tc.want {
				t.Fatalf("succeeded %v, want %v", resp.Succeeded, tc.want)
			}
			ran, skipped := "then", "else"
			if !tc.want {
				ran, skipped = skipped, ran
			}
			if h.get("t", ran) == nil || h.get("t", skipped) != nil {
				t.Fatalf("the %s branch did not run alone", ran)
			}
		})
	}
	t.Run("all compares must hold", func(t *testing.T) {
		h := opsFixture(t)
		resp := h.txn("t", Txn{Compares: []Compare{ver("a", Equal, 1), ver("b", Equal, 1)}, Else: []Op{getOp("b")}})
		if resp.Succeeded || fmtResult(resp.Results[0]) != "[b=22 v2 c3 m6]" {
			t.Fatalf("got succeeded=%v results=%v", resp.Succeeded, resp.Results)
		}
	})
	t.Run("no compares runs then", func(t *testing.T) {
		h := opsFixture(t)
		if resp := h.txn("t", Txn{Else: []Op{putOp("x", "1")}}); !resp.Succeeded || len(resp.Results) != 0 || h.get("t", "x") != nil {
			t.Fatalf("got %+v", resp)
		}
	})
}

// TestValidation: every invalid request is refused with the right code, a
// message that says why, no change to the state, and an advanced index.
func TestValidation(t *testing.T) {
	cfg := Config{KeyBytesMax: 8, ValueBytesMax: 16, TxnOpsMax: 4, ResponseBytesMax: 8 + 16 + responseOverheadBytes}
	big := strings.Repeat("v", 17)
	longKey := strings.Repeat("k", 9)
	txn := func(ops ...Op) Request { return Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: ops}} }
	tests := []struct {
		name string
		req  Request
		code Code
		msg  string // a substring of the message
	}{
		{"value over limit", txn(putOp("a", big)), CodeTooLarge, "then[0].value: wire: length over limit: byte string of 17 bytes, limit 16"},
		{"key over limit", txn(putOp(longKey, "v")), CodeTooLarge, "then[0]: kv: request over a limit: key of 9 bytes, KeyBytesMax is 8"},
		{"range key over limit", txn(rangeOp(longKey+"k", "\x00", 0)), CodeTooLarge, "then[0].key"},
		{"end over limit", txn(rangeOp("a", longKey+"k", 0)), CodeTooLarge, "then[0].end"},
		{"too many ops", txn(getOp("a"), getOp("a"), getOp("a"), getOp("a"), getOp("a")), CodeTooLarge, "TxnOpsMax"},
		{"too many ops with compares", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{
			Compares: []Compare{{Key: []byte("a"), Target: TargetExists, Result: Equal}, {Key: []byte("a"), Target: TargetExists, Result: Equal}},
			Then:     []Op{getOp("a"), getOp("a")}, Else: []Op{getOp("a")}}}, CodeTooLarge, "TxnOpsMax"},
		{"empty key", txn(putOp("", "v")), CodeBadRequest, "key is empty"},
		{"empty range key without end", txn(rangeOp("", "", 0)), CodeBadRequest, "key is empty"},
		{"op type zero", txn(Op{Key: []byte("a")}), CodeBadRequest, "not an op type"},
		{"op type unknown", txn(Op{Type: 99, Key: []byte("a")}), CodeBadRequest, "not an op type"},
		{"get with end", txn(Op{Type: OpGet, Key: []byte("a"), End: []byte("b")}), CodeBadRequest, "use range"},
		{"get with prevkv", txn(Op{Type: OpGet, Key: []byte("a"), PrevKV: true}), CodeBadRequest, "a get op sets"},
		{"put with end", txn(Op{Type: OpPut, Key: []byte("a"), End: []byte("b")}), CodeBadRequest, "a put op sets"},
		{"put with limit", txn(Op{Type: OpPut, Key: []byte("a"), Limit: 3}), CodeBadRequest, "a put op sets"},
		{"delete with end", txn(Op{Type: OpDelete, Key: []byte("a"), End: []byte("b")}), CodeBadRequest, "delete-range"},
		{"range with value", txn(Op{Type: OpRange, Key: []byte("a"), Value: []byte("v")}), CodeBadRequest, "a range op sets"},
		{"delete range with limit", txn(Op{Type: OpDeleteRange, Key: []byte("a"), Limit: 1}), CodeBadRequest, "a delete-range op sets"},
		{"negative limit", txn(Op{Type: OpRange, Key: []byte("a"), Limit: -1}), CodeBadRequest, "limit"},
		{"compare no key", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Compares: []Compare{{Target: TargetVersion, Result: Equal}}}}, CodeBadRequest, "compare 0: kv: bad request: key is empty"},
		{"compare no target", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Compares: []Compare{{Key: []byte("a"), Result: Equal}}}}, CodeBadRequest, "not a compare target"},
		{"compare no result", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Compares: []Compare{{Key: []byte("a"), Target: TargetVersion}}}}, CodeBadRequest, "not a compare result"},
		{"compare exists less", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Compares: []Compare{{Key: []byte("a"), Target: TargetExists, Result: Less}}}}, CodeBadRequest, "== or !="},
		{"compare stray operand", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Compares: []Compare{{Key: []byte("a"), Target: TargetVersion, Result: Equal, Value: []byte("1")}}}}, CodeBadRequest, "a version compare sets"},
		{"compare value over limit", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Compares: []Compare{{Key: []byte("a"), Target: TargetValue, Result: Equal, Value: []byte(big)}}}}, CodeTooLarge, "limit 16"},
		{"else op invalid", Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Else: []Op{putOp("", "")}}}, CodeBadRequest, "else[0]"},
		{"missing namespace", Request{Kind: KindTxn, Namespace: "nope", Txn: Txn{Then: []Op{getOp("a")}}}, CodeNotFound, `"nope" does not exist`},
		{"bad namespace name", Request{Kind: KindTxn, Namespace: "a/b", Txn: Txn{Then: []Op{getOp("a")}}}, CodeBadRequest, "not one of"},
		{"empty namespace name", Request{Kind: KindDescribeNamespace}, CodeBadRequest, "namespace name must be"},
		{"long namespace name", Request{Kind: KindDescribeNamespace, Namespace: strings.Repeat("n", 65)}, CodeTooLarge, "limit 64"},
		{"unknown kind", Request{Kind: 42}, CodeBadRequest, "unknown kind 42"},
		{"create exists", Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "t", Mode: "paxos"}}, CodeExists, `"t" exists`},
		{"create no mode", Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "u"}}, CodeBadRequest, "mode must be"},
		{"create bad mode", Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "u", Mode: "Paxos"}}, CodeBadRequest, "mode \"Paxos\""},
		{"create reserved name", Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "..", Mode: "paxos"}}, CodeBadRequest, "reserved"},
		{"create bad param key", Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "u", Mode: "quorum", Params: map[string]string{"N": "3"}}}, CodeBadRequest, "param key \"N\""},
		{"create param value over limit", Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "u", Mode: "quorum", Params: map[string]string{"n": strings.Repeat("3", 1025)}}}, CodeTooLarge, "limit 1024"},
		{"delete missing namespace", Request{Kind: KindDeleteNamespace, Namespace: "nope"}, CodeNotFound, "does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, cfg)
			h.createNS("t")
			h.put("t", "a", "1")
			before := h.m.Digest()
			resp := h.apply(tc.req)
			if resp.Code != tc.code || !strings.Contains(resp.Message, tc.msg) {
				t.Fatalf("got %s %q, want %s containing %q", resp.Code, resp.Message, tc.code, tc.msg)
			}
			if resp.Index != 3 || h.m.AppliedIndex() != 3 {
				t.Fatalf("index %d, applied %d, want 3", resp.Index, h.m.AppliedIndex())
			}
			// Only the applied index moved.
			h.m.applied = 2
			if h.m.Digest() != before {
				t.Fatalf("a refused request changed the state")
			}
		})
	}
}

func TestMalformedCommands(t *testing.T) {
	good := EncodeRequest(Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{putOp("a", "1")}}})
	tests := []struct {
		name string
		cmd  []byte
		code Code
	}{
		{"empty", nil, CodeBadRequest},
		{"version", append([]byte{9}, good[1:]...), CodeBadRequest},
		{"truncated", good[:len(good)-1], CodeBadRequest},
		{"trailing", append(append([]byte{}, good...), 0), CodeBadRequest},
		{"huge count", []byte{requestVersion, byte(KindTxn), 0, 0, 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f}, CodeTooLarge},
		{"non-canonical varint", []byte{requestVersion, byte(KindListNamespaces), 0x80, 0x00, 0}, CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.createNS("t")
			before := h.m.Digest()
			if resp := h.applyRaw(tc.cmd); resp.Code != tc.code || resp.Message == "" {
				t.Fatalf("got %s %q, want %s", resp.Code, resp.Message, tc.code)
			}
			h.m.applied = 1
			if h.m.Digest() != before {
				t.Fatal("state changed")
			}
		})
	}
}

func TestApplyIndexMustGrow(t *testing.T) {
	h := newHarness(t, Config{})
	h.createNS("t")
	for _, index := range []uint64{0, 1} {
		resp, err := DecodeResponse(h.m.Apply(index, EncodeRequest(Request{Kind: KindListNamespaces})))
		if err != nil || resp.Code != CodeBadRequest || !strings.Contains(resp.Message, "not above the applied index 1") {
			t.Fatalf("index %d: %+v %v", index, resp, err)
		}
	}
	if h.m.AppliedIndex() != 1 {
		t.Fatalf("applied %d", h.m.AppliedIndex())
	}
	// Gaps are fine: deduplicated retries never reach the machine.
	if resp, _ := DecodeResponse(h.m.Apply(10, EncodeRequest(Request{Kind: KindListNamespaces}))); resp.Code != CodeOK || resp.Index != 10 {
		t.Fatalf("%+v", resp)
	}
}

// TestTxnAtomicity: a txn refused in the middle changes nothing.
func TestTxnAtomicity(t *testing.T) {
	t.Run("invalid op after valid ones", func(t *testing.T) {
		h := newHarness(t, Config{ValueBytesMax: 8, ResponseBytesMax: 8 + DefaultKeyBytesMax + responseOverheadBytes})
		h.createNS("t")
		h.put("t", "a", "1")
		before := h.m.Digest()
		resp := h.txn("t", Txn{Then: []Op{putOp("a", "2"), delOp("b"), putOp("c", "too large!"), putOp("d", "4")}})
		if resp.Code != CodeTooLarge || !strings.Contains(resp.Message, "then[2]") {
			t.Fatalf("got %s %q", resp.Code, resp.Message)
		}
		h.m.applied--
		if h.m.Digest() != before || kvString(h.get("t", "a")) != "a=1 v1 c2 m2" {
			t.Fatal("a refused txn changed the state")
		}
	})
	// The one failure left after validation: the previous values asked
	// for do not fit in a response. Everything done so far is undone.
	for _, plantBug := range []bool{false, true} {
		t.Run(fmt.Sprintf("prevkv over the response limit planted=%v", plantBug), func(t *testing.T) {
			if plantBug {
				withPlant(t, &plant.noRollback)
			}
			cfg := Config{ValueBytesMax: 1000, KeyBytesMax: 10, ResponseBytesMax: 2100}
			h := newHarness(t, cfg)
			h.createNS("t")
			v := strings.Repeat("x", 900)
			for _, k := range []string{"a", "b", "c", "d", "e"} {
				h.put("t", k, v)
			}
			before := h.m.Digest()
			stats := h.m.Stats()
			resp := h.txn("t", Txn{Then: []Op{
				putOp("new", "1"), putOp("a", "y"), delOp("a"), delRangeOp("b", "c"),
				{Type: OpPut, Key: []byte("d"), Value: []byte("z"), PrevKV: true},
				// c fits beside d's previous value, e does not.
				{Type: OpDeleteRange, Key: []byte("c"), End: []byte("\x00"), PrevKV: true},
			}})
			if resp.Code != CodeTooLarge || !strings.Contains(resp.Message, "then[5]") {
				t.Fatalf("got %s %q", resp.Code, resp.Message)
			}
			h.m.applied--
			changed := h.m.Digest() != before || h.m.Stats() != stats
			if changed != plantBug {
				t.Fatalf("state changed: %v; planted bug: %v", changed, plantBug)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	h := newHarness(t, Config{})
	h.createNS("t")          // 1
	h.put("t", "k", "a")     // 2
	h.put("t", "k", "b")     // 3
	h.put("t", "other", "x") // 4
	h.put("t", "k", "c")     // 5
	if got := kvString(h.get("t", "k")); got != "k=c v3 c2 m5" {
		t.Fatal(got)
	}
	h.txn("t", Txn{Then: []Op{delOp("k")}}) // 6
	if h.get("t", "k") != nil {
		t.Fatal("deleted key still there")
	}
	h.put("t", "k", "d") // 7
	if got := kvString(h.get("t", "k")); got != "k=d v1 c7 m7" {
		t.Fatal(got)
	}
	// Reads and refused commands do not touch versions.
	h.txn("t", Txn{Then: []Op{getOp("k")}})    // 8
	h.txn("t", Txn{Then: []Op{putOp("", "")}}) // 9, refused
	if got := kvString(h.get("t", "k")); got != "k=d v1 c7 m7" {
		t.Fatal(got)
	}
	// A deleted and recreated namespace starts empty.
	h.ok(Request{Kind: KindDeleteNamespace, Namespace: "t"})
	h.createNS("t")
	if h.get("t", "k") != nil {
		t.Fatal("keys survived their namespace")
	}
}

func TestPagination(t *testing.T) {
	const n = 10_000
	h := newHarness(t, Config{ScanLimitMax: 1000})
	h.createNS("t")
	// Ten txns of 1000 puts would exceed TxnOpsMax; apply one put each
	// through the machine, which is what a log does.
	for i := range n {
		h.put("t", fmt.Sprintf("key%05d", i), fmt.Sprint(i))
	}
	h.put("t", "zzz", "after the range")
	page := func(key []byte, limit int) OpResult {
		resp := h.query(Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{{Type: OpRange, Key: key, End: []byte("key\xff"), Limit: limit}}}})
		if resp.Code != CodeOK {
			t.Fatalf("%s: %s", resp.Code, resp.Message)
		}
		return resp.Results[0]
	}
	for _, limit := range []int{0, 1, 7, 1000, 5000} {
		next, got, pages := []byte("key"), 0, 0
		for {
			res := page(next, limit)
			pages++
			for _, kv := range res.KVs {
				if want := fmt.Sprintf("key%05d", got); string(kv.Key) != want {
					t.Fatalf("limit %d: key %q, want %q", limit, kv.Key, want)
				}
				got++
			}
			if !res.More {
				break
			}
			next = append(append([]byte{}, res.KVs[len(res.KVs)-1].Key...), 0)
		}
		eff := limit
		if eff == 0 || eff > 1000 {
			eff = 1000
		}
		if got != n || pages != (n+eff-1)/eff {
			t.Fatalf("limit %d: %d keys in %d pages", limit, got, pages)
		}
	}
	// Paging past a key of the largest size: the next start is one byte
	// longer than a key may be, and that is accepted.
	h1 := newHarness(t, Config{KeyBytesMax: 4})
	h1.createNS("t")
	for _, k := range []string{"aaaa", "aaab", "b"} {
		h1.put("t", k, "v")
	}
	var seen []string
	for next := []byte("a"); ; {
		resp := h1.query(Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{{Type: OpRange, Key: next, End: []byte("aaab\x00"), Limit: 1}}}})
		if resp.Code != CodeOK {
			t.Fatalf("page after %q: %s %s", next, resp.Code, resp.Message)
		}
		res := resp.Results[0]
		for _, kv := range res.KVs {
			seen = append(seen, string(kv.Key))
		}
		if !res.More {
			break
		}
		next = append(append([]byte{}, res.KVs[0].Key...), 0)
	}
	if fmt.Sprint(seen) != "[aaaa aaab]" {
		t.Fatalf("pages over long keys: %q", seen)
	}

	// The response size stops a page too, and the response stays under it.
	h2 := newHarness(t, Config{ValueBytesMax: 1000, KeyBytesMax: 16, ResponseBytesMax: 10_000})
	h2.createNS("t")
	for i := range 100 {
		h2.put("t", fmt.Sprintf("k%03d", i), strings.Repeat("v", 900))
	}
	req := EncodeRequest(Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{rangeOp("", "\x00", 0)}}})
	out := h2.m.Query(req)
	resp, _ := DecodeResponse(out)
	if len(out) > 10_000 || !resp.Results[0].More || len(resp.Results[0].KVs) != 10 {
		t.Fatalf("%d bytes, %d kvs, more=%v", len(out), len(resp.Results[0].KVs), resp.Results[0].More)
	}
	// A later op of the txn finds the budget spent: no KVs, More set.
	resp = h2.query(Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{rangeOp("", "\x00", 0), getOp("k050")}}})
	if r := resp.Results[1]; len(r.KVs) != 0 || !r.More {
		t.Fatalf("get after a full page: %s", fmtResult(r))
	}
}

func TestNamespaces(t *testing.T) {
	h := newHarness(t, Config{NamespacesMax: 3})
	resp := h.ok(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "b", Mode: "paxos", Params: map[string]string{"x": "1", "a": "2"}}})
	if len(resp.Namespaces) != 1 || resp.Namespaces[0].Spec.Params["a"] != "2" || resp.Namespaces[0].CreateIndex != 1 {
		t.Fatalf("create answered %+v", resp)
	}
	h.ok(Request{Kind: KindCreateNamespace, Namespace: "a", Spec: NamespaceSpec{Mode: "active"}}) // name from Namespace
	h.ok(Request{Kind: KindCreateNamespace, Namespace: "C.c_1-", Spec: NamespaceSpec{Name: "C.c_1-", Mode: "x"}})
	if r := h.apply(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "d", Mode: "paxos"}}); r.Code != CodeTooLarge || !strings.Contains(r.Message, "NamespacesMax is 3") {
		t.Fatalf("fourth namespace: %s %q", r.Code, r.Message)
	}
	h.put("a", "k1", "12345")
	h.put("a", "k2", "1")
	h.put("b", "k", "1")
	list := h.ok(Request{Kind: KindListNamespaces})
	var got []string
	for _, ns := range list.Namespaces {
		got = append(got, fmt.Sprintf("%s/%s/%v keys=%d bytes=%d created=%d", ns.Spec.Name, ns.Spec.Mode, ns.Spec.Params, ns.Keys, ns.Bytes, ns.CreateIndex))
	}
	want := []string{"C.c_1-/x/map[] keys=0 bytes=0 created=3", "a/active/map[] keys=2 bytes=10 created=2", "b/paxos/map[a:2 x:1] keys=1 bytes=2 created=1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("list:\n got %q\nwant %q", got, want)
	}
	desc := h.query(Request{Kind: KindDescribeNamespace, Namespace: "a"})
	if desc.Code != CodeOK || len(desc.Namespaces) != 1 || desc.Namespaces[0].Keys != 2 || desc.Index != h.index {
		t.Fatalf("describe: %+v", desc)
	}
	if s := h.m.Stats(); s.Namespaces != 3 || s.Keys != 3 || s.Bytes != 12 {
		t.Fatalf("stats %+v", s)
	}
	h.ok(Request{Kind: KindDeleteNamespace, Namespace: "a"})
	if r := h.query(Request{Kind: KindDescribeNamespace, Namespace: "a"}); r.Code != CodeNotFound {
		t.Fatalf("describe deleted: %s", r.Code)
	}
	if r := h.put("a", "k", "v"); r.Code != CodeNotFound {
		t.Fatalf("put in deleted: %s", r.Code)
	}
	if s := h.m.Stats(); s.Namespaces != 2 || s.Keys != 1 {
		t.Fatalf("stats %+v", s)
	}
	h.ok(Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "d", Mode: "paxos"}}) // room again
}

func TestQuery(t *testing.T) {
	h := opsFixture(t)
	before := h.m.Digest()
	tests := []struct {
		req  Request
		code Code
	}{
		{Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{getOp("a"), rangeOp("a", "\x00", 2)}}}, CodeOK},
		{Request{Kind: KindListNamespaces, Session: Session{Client: 5, Seq: 1}}, CodeOK},
		{Request{Kind: KindDescribeNamespace, Namespace: "t"}, CodeOK},
		{Request{Kind: KindDescribeNamespace, Namespace: "x"}, CodeNotFound},
		{Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{putOp("a", "1")}}}, CodeBadRequest},
		{Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Then: []Op{delRangeOp("a", "\x00")}}}, CodeBadRequest},
		{Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Compares: []Compare{{Key: []byte("a"), Target: TargetExists, Result: Equal, Exists: true}}}}, CodeBadRequest},
		{Request{Kind: KindTxn, Namespace: "t", Txn: Txn{Else: []Op{getOp("a")}}}, CodeBadRequest},
		{Request{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "u", Mode: "paxos"}}, CodeBadRequest},
		{Request{Kind: KindDeleteNamespace, Namespace: "t"}, CodeBadRequest},
	}
	for i, tc := range tests {
		resp := h.query(tc.req)
		if resp.Code != tc.code || resp.Index != 6 {
			t.Errorf("%d (%s): got %s %q index %d, want %s", i, tc.req.Kind, resp.Code, resp.Message, resp.Index, tc.code)
		}
	}
	if h.m.Digest() != before || h.m.AppliedIndex() != 6 || h.m.Stats().Sessions != 0 {
		t.Fatal("Query changed the state")
	}
	if resp, _ := DecodeResponse(h.m.Query([]byte{1})); resp.Code != CodeBadRequest {
		t.Fatalf("malformed query: %s", resp.Code)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	m, err := New(Config{KeyBytesMax: 10})
	if err != nil || m.Config().KeyBytesMax != 10 || m.Config().ValueBytesMax != DefaultValueBytesMax {
		t.Fatalf("defaults not filled: %+v %v", m.Config(), err)
	}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{KeyBytesMax: -1}, "KeyBytesMax"},
		{Config{ValueBytesMax: 1 << 30}, "ValueBytesMax"},
		{Config{TxnOpsMax: -5}, "TxnOpsMax"},
		{Config{ScanLimitMax: -1}, "ScanLimitMax"},
		{Config{NamespacesMax: 1 << 20}, "NamespacesMax"},
		{Config{SessionsMax: -1}, "SessionsMax"},
		{Config{SessionResponseBytesMax: 100}, "SessionResponseBytesMax"},
		{Config{ResponseBytesMax: 1 << 20}, "ResponseBytesMax"}, // below the largest KV
	} {
		err := tc.cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want ErrConfig naming %s", tc.cfg, err, tc.field)
		}
		if _, err := New(tc.cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v): %v", tc.cfg, err)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, s := range []fmt.Stringer{KindTxn, RequestKind(0), OpDeleteRange, OpType(9), TargetCreateIndex, CompareTarget(0),
		Greater, CompareResult(0), CodeStaleSession, Code(77)} {
		if s.String() == "" {
			t.Errorf("%#v has no name", s)
		}
	}
	if CodeNotFound.String() != "not_found" || CodeTooLarge.String() != "too_large" {
		t.Fatal("code names changed: the HTTP API relies on them")
	}
	if got := truncate("héllo", 2); got != "h" {
		t.Fatalf("truncate split a rune: %q", got)
	}
	if !bytes.Equal(nilIfEmpty([]byte{}), nil) {
		t.Fatal("nilIfEmpty")
	}
}
