package kv

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// modelConfig keeps limits small so that random commands reach them:
// ranges stop at ScanLimitMax, txns overflow TxnOpsMax, values overflow
// ValueBytesMax, clients are evicted from the session table.
var modelConfig = Config{
	ValueBytesMax: 8, TxnOpsMax: 6, ScanLimitMax: 3, NamespacesMax: 2, SessionsMax: 3,
	ResponseBytesMax: 8 + DefaultKeyBytesMax + responseOverheadBytes,
}

// model is a plain map-based implementation of the machine's documented
// semantics, written without looking at the B-tree code paths: the
// property test checks the Machine against it command by command.
type model struct {
	cfg      Config
	ns       map[string]*modelNS
	sessions map[uint64]*modelSession
}

type modelNS struct {
	spec   NamespaceSpec
	create uint64
	kvs    map[string]KeyValue
}

type modelSession struct {
	seq, index uint64
	resp       Response
}

func newModel(cfg Config) *model {
	return &model{cfg: cfg.withDefaults(), ns: map[string]*modelNS{}, sessions: map[uint64]*modelSession{}}
}

// apply returns the response the machine must give, Message aside.
func (m *model) apply(index uint64, req Request) Response {
	if m.oversized(req) {
		return Response{Code: CodeTooLarge, Index: index} // refused while decoding: no session
	}
	if c := req.Session.Client; c != 0 {
		if s, ok := m.sessions[c]; ok {
			if req.Session.Seq == s.seq {
				return s.resp
			}
			if req.Session.Seq < s.seq {
				return Response{Code: CodeStaleSession, Index: index}
			}
		}
	}
	resp := m.execute(index, req)
	if c := req.Session.Client; c != 0 {
		if _, ok := m.sessions[c]; !ok && len(m.sessions) >= m.cfg.SessionsMax {
			oldest := uint64(0)
			for client, s := range m.sessions {
				if oldest == 0 || s.index < m.sessions[oldest].index {
					oldest = client
				}
			}
			delete(m.sessions, oldest)
		}
		m.sessions[c] = &modelSession{seq: req.Session.Seq, index: index, resp: resp}
	}
	return resp
}

func (m *model) oversized(req Request) bool {
	if req.Kind != KindTxn {
		return false
	}
	if len(req.Txn.Compares)+len(req.Txn.Then)+len(req.Txn.Else) > m.cfg.TxnOpsMax {
		return true
	}
	for _, c := range req.Txn.Compares {
		if len(c.Value) > m.cfg.ValueBytesMax {
			return true
		}
	}
	for _, op := range slices.Concat(req.Txn.Then, req.Txn.Else) {
		if len(op.Value) > m.cfg.ValueBytesMax {
			return true
		}
	}
	return false
}

func (m *model) info(ns *modelNS) NamespaceInfo {
	info := NamespaceInfo{Spec: ns.spec, Keys: uint64(len(ns.kvs)), CreateIndex: ns.create}
	for _, kv := range ns.kvs {
		info.Bytes += uint64(len(kv.Key) + len(kv.Value))
	}
	return info
}

func (m *model) execute(index uint64, req Request) Response {
	ok := Response{Index: index}
	switch req.Kind {
	case KindCreateNamespace:
		if _, exists := m.ns[req.Spec.Name]; exists {
			return Response{Code: CodeExists, Index: index}
		}
		if len(m.ns) >= m.cfg.NamespacesMax {
			return Response{Code: CodeTooLarge, Index: index}
		}
		ns := &modelNS{spec: req.Spec, create: index, kvs: map[string]KeyValue{}}
		m.ns[req.Spec.Name] = ns
		ok.Namespaces = []NamespaceInfo{m.info(ns)}
		return ok
	case KindDeleteNamespace, KindDescribeNamespace:
		ns, exists := m.ns[req.Namespace]
		if !exists {
			return Response{Code: CodeNotFound, Index: index}
		}
		if req.Kind == KindDeleteNamespace {
			delete(m.ns, req.Namespace)
		} else {
			ok.Namespaces = []NamespaceInfo{m.info(ns)}
		}
		return ok
	case KindListNamespaces:
		for _, name := range slices.Sorted(maps.Keys(m.ns)) {
			ok.Namespaces = append(ok.Namespaces, m.info(m.ns[name]))
		}
		return ok
	}
	ns, exists := m.ns[req.Namespace]
	if !exists {
		return Response{Code: CodeNotFound, Index: index}
	}
	for _, op := range slices.Concat(req.Txn.Then, req.Txn.Else) {
		ranged := op.Type == OpRange || op.Type == OpDeleteRange
		if len(op.Key) == 0 && !(ranged && len(op.End) > 0) {
			return Response{Code: CodeBadRequest, Index: index}
		}
	}
	ok.Succeeded = true
	for _, c := range req.Txn.Compares {
		if !modelCompare(ns.kvs, c) {
			ok.Succeeded = false
		}
	}
	ops := req.Txn.Then
	if !ok.Succeeded {
		ops = req.Txn.Else
	}
	for _, op := range ops {
		var res OpResult
		switch op.Type {
		case OpPut:
			prev, had := ns.kvs[string(op.Key)]
			kv := KeyValue{Key: op.Key, Value: op.Value, Version: 1, CreateIndex: index, ModIndex: index}
			if had {
				kv.Version, kv.CreateIndex = prev.Version+1, prev.CreateIndex
				if op.PrevKV {
					res.PrevKV = &prev
				}
			}
			ns.kvs[string(op.Key)] = kv
		case OpDelete:
			if prev, had := ns.kvs[string(op.Key)]; had {
				delete(ns.kvs, string(op.Key))
				res.Deleted = 1
				if op.PrevKV {
					res.PrevKV = &prev
				}
			}
		case OpGet, OpRange:
			limit := op.Limit
			if limit == 0 || limit > m.cfg.ScanLimitMax {
				limit = m.cfg.ScanLimitMax
			}
			in := modelRange(ns.kvs, op.Key, op.End)
			if len(in) > limit {
				in, res.More = in[:limit], true
			}
			res.KVs = in
		case OpDeleteRange:
			in := modelRange(ns.kvs, op.Key, op.End)
			for _, kv := range in {
				delete(ns.kvs, string(kv.Key))
			}
			res.Deleted = uint64(len(in))
			if op.PrevKV {
				res.KVs = in
			}
		}
		ok.Results = append(ok.Results, res)
	}
	return ok
}

func modelRange(kvs map[string]KeyValue, key, end []byte) []KeyValue {
	var out []KeyValue
	for _, k := range slices.Sorted(maps.Keys(kvs)) {
		in := false
		switch {
		case len(end) == 0:
			in = k == string(key)
		case string(end) == "\x00":
			in = k >= string(key)
		default:
			in = k >= string(key) && k < string(end)
		}
		if in {
			out = append(out, kvs[k])
		}
	}
	return out
}

func modelCompare(kvs map[string]KeyValue, c Compare) bool {
	kv, had := kvs[string(c.Key)]
	if c.Target == TargetExists {
		return (had == c.Exists) == (c.Result == Equal)
	}
	var order int
	switch c.Target {
	case TargetValue:
		if !had {
			return false
		}
		order = bytes.Compare(kv.Value, c.Value)
	case TargetVersion:
		order = cmpU(kv.Version, c.Version)
	case TargetModIndex:
		order = cmpU(kv.ModIndex, c.Index)
	case TargetCreateIndex:
		order = cmpU(kv.CreateIndex, c.Index)
	}
	return map[CompareResult]bool{Equal: order == 0, NotEqual: order != 0, Less: order < 0, Greater: order > 0}[c.Result]
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// normalized encodes a response without its Message, for comparison.
func normalized(resp Response) []byte {
	resp.Message = ""
	return EncodeResponse(resp)
}

// Generators of random commands over a small world: two namespaces (one
// of them often missing), five keys, short values.

var (
	genKey   = rapid.SampledFrom([]string{"a", "b", "c", "d", "e"})
	genValue = rapid.SampledFrom([]string{"", "1", "22", "333", "0123456789"})       // the last is over ValueBytesMax
	genNS    = rapid.SampledFrom([]string{"n1", "n1", "n1", "n2", "n2", "n2", "n3"}) // n3 exceeds NamespacesMax
)

func genOp(t *rapid.T) Op {
	op := Op{Type: OpType(rapid.IntRange(1, 5).Draw(t, "type")), Key: []byte(genKey.Draw(t, "key"))}
	if rapid.IntRange(0, 20).Draw(t, "emptykey") == 0 {
		op.Key = nil // invalid for most ops, the whole namespace for ranges with an end
	}
	switch op.Type {
	case OpPut:
		op.Value = []byte(genValue.Draw(t, "value"))
		op.PrevKV = rapid.Bool().Draw(t, "prevkv")
	case OpDelete:
		op.PrevKV = rapid.Bool().Draw(t, "prevkv")
	case OpRange, OpDeleteRange:
		op.End = []byte(rapid.SampledFrom([]string{"", "\x00", "c", "e", "f"}).Draw(t, "end"))
		if op.Type == OpRange {
			op.Limit = rapid.IntRange(0, 4).Draw(t, "limit")
		} else {
			op.PrevKV = rapid.Bool().Draw(t, "prevkv")
		}
	}
	op.End = nilIfEmpty(op.End)
	op.Value = nilIfEmpty(op.Value)
	return op
}

func genCompare(t *rapid.T) Compare {
	c := Compare{Key: []byte(genKey.Draw(t, "key")), Target: CompareTarget(rapid.IntRange(1, 5).Draw(t, "target"))}
	c.Result = CompareResult(rapid.IntRange(1, 4).Draw(t, "result"))
	switch c.Target {
	case TargetValue:
		c.Value = nilIfEmpty([]byte(genValue.Draw(t, "value")))
	case TargetVersion:
		c.Version = rapid.Uint64Range(0, 3).Draw(t, "version")
	case TargetModIndex, TargetCreateIndex:
		c.Index = rapid.Uint64Range(0, 30).Draw(t, "index")
	case TargetExists:
		c.Result = CompareResult(rapid.IntRange(1, 2).Draw(t, "result"))
		c.Exists = rapid.Bool().Draw(t, "exists")
	}
	return c
}

var genRequest = rapid.Custom(func(t *rapid.T) Request {
	// Seq is set by genScenario, which knows each client's last one.
	req := Request{Session: Session{Client: rapid.Uint64Range(0, 4).Draw(t, "client")}}
	switch rapid.IntRange(0, 19).Draw(t, "kind") {
	case 0:
		req.Kind = KindCreateNamespace
		req.Spec = NamespaceSpec{Name: genNS.Draw(t, "ns"), Mode: "paxos"}
		req.Namespace = req.Spec.Name
	case 1:
		req.Kind = KindDeleteNamespace
		req.Namespace = genNS.Draw(t, "ns")
	case 2:
		req.Kind = rapid.SampledFrom([]RequestKind{KindListNamespaces, KindDescribeNamespace}).Draw(t, "readkind")
		if req.Kind == KindDescribeNamespace {
			req.Namespace = genNS.Draw(t, "ns")
		}
	default:
		req.Kind = KindTxn
		req.Namespace = genNS.Draw(t, "ns")
		req.Txn.Compares = rapid.SliceOfN(rapid.Custom(genCompare), 0, 2).Draw(t, "compares")
		req.Txn.Then = rapid.SliceOfN(rapid.Custom(genOp), 0, 3).Draw(t, "then")
		req.Txn.Else = rapid.SliceOfN(rapid.Custom(genOp), 0, 2).Draw(t, "else")
		if len(req.Txn.Compares) == 0 {
			req.Txn.Compares = nil
		}
		if len(req.Txn.Then) == 0 {
			req.Txn.Then = nil
		}
		if len(req.Txn.Else) == 0 {
			req.Txn.Else = nil
		}
	}
	return req
})

// scenario is a command sequence and the point at which the second
// machine is snapshotted and replaced by a restored copy.
type scenario struct {
	reqs      []Request
	restoreAt int
}

var genScenario = rapid.Custom(func(t *rapid.T) scenario {
	// Start with both namespaces most of the time, so txns find them.
	reqs := []Request{
		{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "n1", Mode: "paxos"}, Namespace: "n1"},
		{Kind: KindCreateNamespace, Spec: NamespaceSpec{Name: "n2", Mode: "active"}, Namespace: "n2"},
	}
	reqs = append(reqs, rapid.SliceOfN(genRequest, 20, 80).Draw(t, "reqs")...)
	// Mostly a client's next seq; sometimes a retry or a stale one.
	last := map[uint64]uint64{}
	for i := range reqs {
		c := reqs[i].Session.Client
		if c == 0 {
			continue
		}
		switch rapid.IntRange(0, 9).Draw(t, "seqmode") {
		case 0, 1:
			reqs[i].Session.Seq = last[c] // a retry
		case 2:
			reqs[i].Session.Seq = last[c] / 2 // stale, or a retry of 0
		default:
			last[c]++
			reqs[i].Session.Seq = last[c]
		}
	}
	return scenario{reqs: reqs, restoreAt: rapid.IntRange(0, len(reqs)).Draw(t, "restoreAt")}
})

// checkScenario applies the commands to machine a, to the model, and to
// machine b which is snapshotted and restored into a new machine at
// restoreAt. Responses of a and b must be byte-identical, a's must match
// the model's, queries must agree, and the final digests must be equal.
func checkScenario(sc scenario) error {
	a, _ := New(modelConfig)
	b, _ := New(modelConfig)
	mod := newModel(modelConfig)
	index := uint64(0)
	for i, req := range sc.reqs {
		if i == sc.restoreAt {
			var snap bytes.Buffer
			if err := b.Snapshot(&snap); err != nil {
				return err
			}
			b, _ = New(modelConfig)
			if err := b.Restore(&snap); err != nil {
				return fmt.Errorf("restore at %d: %w", i, err)
			}
		}
		index += uint64(1 + i%3) // gaps, as deduplicated log entries leave
		cmd := EncodeRequest(req)
		outA, outB := a.Apply(index, cmd), b.Apply(index, cmd)
		if !bytes.Equal(outA, outB) {
			return fmt.Errorf("command %d (%s): machines answered differently:\n%x\n%x", i, req.Kind, outA, outB)
		}
		got, err := DecodeResponse(outA)
		if err != nil {
			return fmt.Errorf("command %d: %w", i, err)
		}
		want := mod.apply(index, req)
		if !bytes.Equal(normalized(got), normalized(want)) {
			return fmt.Errorf("command %d %+v:\nmachine %+v (%s)\n  model %+v", i, req, got, got.Message, want)
		}
		for _, ns := range []string{"n1", "n2"} {
			q := EncodeRequest(Request{Kind: KindTxn, Namespace: ns, Txn: Txn{Then: []Op{rangeOp("", "\x00", 0)}}})
			if qa, qb := a.Query(q), b.Query(q); !bytes.Equal(qa, qb) {
				return fmt.Errorf("after command %d: queries of %s differ", i, ns)
			}
		}
	}
	if a.Digest() != b.Digest() {
		return fmt.Errorf("digests differ")
	}
	if a.Stats() != b.Stats() {
		return fmt.Errorf("stats differ: %+v %+v", a.Stats(), b.Stats())
	}
	return nil
}

func TestProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		if err := checkScenario(genScenario.Draw(t, "scenario")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPropertyCatchesPlantedBugs shows that the property check fails on a
// machine with a planted bug: a version that does not grow (caught by the
// model) and snapshots without sessions (caught by the restored machine
// answering a retry differently).
func TestPropertyCatchesPlantedBugs(t *testing.T) {
	for name, flag := range map[string]*bool{
		"noVersionBump":      &plant.noVersionBump,
		"snapshotNoSessions": &plant.snapshotNoSessions,
	} {
		t.Run(name, func(t *testing.T) {
			withPlant(t, flag)
			for seed := range 500 {
				if err := checkScenario(genScenario.Example(seed)); err != nil {
					t.Logf("caught at example %d: %s", seed, strings.SplitN(err.Error(), "\n", 2)[0])
					return
				}
			}
			t.Fatal("500 random scenarios missed the planted bug")
		})
	}
}
