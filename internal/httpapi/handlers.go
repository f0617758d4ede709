package httpapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/group"
	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/internal/server"
)

func (a *API) createNamespace(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, w, a.cfg.BodyBytesMax)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var spec client.NamespaceSpec
	if err := decodeJSON(body, &spec); err != nil {
		a.fail(w, r, err)
		return
	}
	if spec.Name == "" {
		a.fail(w, r, badRequest("name is empty"))
		return
	}
	if spec.Mode == "" {
		a.fail(w, r, badRequest("mode is empty; the modes are paxos and active"))
		return
	}
	sess, err := session(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ks := kv.NamespaceSpec{Name: spec.Name, Mode: spec.Mode, Params: spec.Params}
	res, handled, err := a.run(w, r, body, func(ctx context.Context) (kv.Response, error) {
		return a.srv.CreateNamespace(ctx, sess, ks)
	})
	switch {
	case handled:
		return
	case err != nil:
		a.fail(w, r, err)
		return
	case res.Code != kv.CodeOK:
		a.fail(w, r, codeError(res))
		return
	}
	ns := client.Namespace{Name: spec.Name, Mode: spec.Mode, Params: spec.Params, CreateIndex: res.Index}
	if len(res.Namespaces) == 1 {
		ns = toNamespace(res.Namespaces[0])
	}
	writeJSON(w, http.StatusCreated, ns)
}

func (a *API) listNamespaces(w http.ResponseWriter, r *http.Request) {
	res, handled, err := a.run(w, r, nil, a.srv.Namespaces)
	if handled || a.failed(w, r, res, err) {
		return
	}
	out := client.NamespaceList{Namespaces: []client.Namespace{}}
	for _, n := range res.Namespaces {
		out.Namespaces = append(out.Namespaces, toNamespace(n))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) describeNamespace(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("ns")
	res, handled, err := a.run(w, r, nil, func(ctx context.Context) (kv.Response, error) {
		return a.srv.Namespace(ctx, name)
	})
	if handled || a.failed(w, r, res, err) {
		return
	}
	if len(res.Namespaces) != 1 {
		a.fail(w, r, &apiError{http.StatusNotFound, client.CodeNamespaceNotFound, fmt.Sprintf("namespace %q not found", name)})
		return
	}
	writeJSON(w, http.StatusOK, toNamespace(res.Namespaces[0]))
}

func (a *API) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("ns")
	sess, err := session(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res, handled, err := a.run(w, r, nil, func(ctx context.Context) (kv.Response, error) {
		return a.srv.DeleteNamespace(ctx, sess, name)
	})
	if handled || a.failed(w, r, res, err) {
		return
	}
	writeJSON(w, http.StatusOK, client.DeleteResult{Index: res.Index, Deleted: 1})
}

// failed answers err or a non-OK code and reports whether it did.
func (a *API) failed(w http.ResponseWriter, r *http.Request, res kv.Response, err error) bool {
	switch {
	case err != nil:
		a.fail(w, r, err)
	case res.Code != kv.CodeOK:
		a.fail(w, r, codeError(res))
	default:
		return false
	}
	return true
}

// checkKey refuses an empty key or one over the limit before it reaches the
// log.
func (a *API) checkKey(field string, key []byte) error {
	if len(key) > a.kv.KeyBytesMax {
		return tooLarge("%s of %d bytes is over the limit of %d", field, len(key), a.kv.KeyBytesMax)
	}
	return nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %s=%q is not a boolean", name, v)
	}
	return b, nil
}

// single runs a one-op txn on the key of the path and answers with the
// first result, by answer.
func (a *API) single(w http.ResponseWriter, r *http.Request, op kv.Op, body []byte, answer func(kv.Response)) {
	if len(op.Key) == 0 {
		a.fail(w, r, badRequest("the key is empty"))
		return
	}
	if err := a.checkKey("key", op.Key); err != nil {
		a.fail(w, r, err)
		return
	}
	sess, err := session(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req := kv.Request{Session: sess, Kind: kv.KindTxn, Namespace: r.PathValue("ns"), Txn: kv.Txn{Then: []kv.Op{op}}}
	res, handled, err := a.run(w, r, body, func(ctx context.Context) (kv.Response, error) { return a.srv.Txn(ctx, req) })
	if handled || a.failed(w, r, res, err) {
		return
	}
	if len(res.Results) != 1 {
		a.fail(w, r, &apiError{http.StatusInternalServerError, client.CodeInternal,
			fmt.Sprintf("state machine returned %d results for one op", len(res.Results))})
		return
	}
	answer(res)
}

func (a *API) put(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, w, int64(a.kv.ValueBytesMax))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	prev, err := boolParam(r, "prev_kv")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	value := body
	if value == nil {
		value = []byte{}
	}
	op := kv.Op{Type: kv.OpPut, Key: []byte(r.PathValue("key")), Value: value, PrevKV: prev}
	a.single(w, r, op, body, func(res kv.Response) {
		writeJSON(w, http.StatusOK, client.PutResult{Index: res.Index, PrevKV: toKVPtr(res.Results[0].PrevKV)})
	})
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	key := []byte(r.PathValue("key"))
	a.single(w, r, kv.Op{Type: kv.OpGet, Key: key}, nil, func(res kv.Response) {
		kvs := res.Results[0].KVs
		if len(kvs) == 0 {
			a.fail(w, r, &apiError{http.StatusNotFound, client.CodeKeyNotFound, fmt.Sprintf("key %q not found", key)})
			return
		}
		writeJSON(w, http.StatusOK, client.GetResult{Index: res.Index, KV: toKV(kvs[0])})
	})
}

func (a *API) del(w http.ResponseWriter, r *http.Request) {
	prev, err := boolParam(r, "prev_kv")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	op := kv.Op{Type: kv.OpDelete, Key: []byte(r.PathValue("key")), PrevKV: prev}
	a.single(w, r, op, nil, func(res kv.Response) {
		o := res.Results[0]
		writeJSON(w, http.StatusOK, client.DeleteResult{Index: res.Index, Deleted: o.Deleted, PrevKV: toKVPtr(o.PrevKV)})
	})
}

// everything is the End of a range without an upper bound (etcd's "\x00").
var everything = []byte{0}

func (a *API) scan(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name := range q {
		switch name {
		case "start", "end", "prefix", "limit", "page_token":
		default:
			a.fail(w, r, badRequest("unknown query parameter %q; scan takes start, end, prefix, limit and page_token", name))
			return
		}
	}
	start, end := []byte(q.Get("start")), []byte(q.Get("end"))
	if p := q.Get("prefix"); p != "" {
		if q.Has("start") || q.Has("end") {
			a.fail(w, r, badRequest("prefix excludes start and end"))
			return
		}
		start, end = []byte(p), prefixEnd([]byte(p))
	}
	if t := q.Get("page_token"); t != "" {
		k, err := decodeToken(t)
		if err != nil {
			a.fail(w, r, badRequest("page_token %q is not one this API returned", t))
			return
		}
		start = k
	}
	if len(end) == 0 {
		end = everything
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			a.fail(w, r, badRequest("limit %q must be a non-negative integer", l))
			return
		}
		limit = min(n, a.kv.ScanLimitMax)
	}
	for _, k := range [][]byte{start, end} {
		// The page token is a key plus one byte; allow that much.
		if len(k) > a.kv.KeyBytesMax+1 {
			a.fail(w, r, tooLarge("scan bound of %d bytes is over the key limit of %d", len(k), a.kv.KeyBytesMax))
			return
		}
	}
	req := kv.Request{Kind: kv.KindTxn, Namespace: r.PathValue("ns"),
		Txn: kv.Txn{Then: []kv.Op{{Type: kv.OpRange, Key: start, End: end, Limit: limit}}}}
	res, handled, err := a.run(w, r, nil, func(ctx context.Context) (kv.Response, error) { return a.srv.Txn(ctx, req) })
	if handled || a.failed(w, r, res, err) {
		return
	}
	if len(res.Results) != 1 {
		a.fail(w, r, &apiError{http.StatusInternalServerError, client.CodeInternal, "range returned no result"})
		return
	}
	o := res.Results[0]
	out := client.ScanResult{Index: res.Index, KVs: toKVs(o.KVs), More: o.More}
	if o.More && len(o.KVs) > 0 {
		last := o.KVs[len(o.KVs)-1].Key
		out.PageToken = encodeToken(append(bytes.Clone(last), 0))
	}
	writeJSON(w, http.StatusOK, out)
}

// prefixEnd is the first key after every key with prefix p ("\x00", all
// keys, when p is all 0xff bytes).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return everything
}

// txnBody is the 409 answer of a txn whose compares failed: the error code
// and the txn result in one body.
type txnBody struct {
	client.ErrorBody
	client.TxnResult
}

func (a *API) txn(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, w, a.cfg.BodyBytesMax)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var t client.Txn
	if err := decodeJSON(body, &t); err != nil {
		a.fail(w, r, err)
		return
	}
	kt, err := a.convertTxn(t)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sess, err := session(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	req := kv.Request{Session: sess, Kind: kv.KindTxn, Namespace: r.PathValue("ns"), Txn: kt}
	res, handled, err := a.run(w, r, body, func(ctx context.Context) (kv.Response, error) { return a.srv.Txn(ctx, req) })
	if handled || a.failed(w, r, res, err) {
		return
	}
	out := client.TxnResult{Index: res.Index, Succeeded: res.Succeeded, Results: make([]client.OpResult, len(res.Results))}
	for i, o := range res.Results {
		out.Results[i] = client.OpResult{KVs: toKVs(o.KVs), More: o.More, Deleted: o.Deleted, PrevKV: toKVPtr(o.PrevKV)}
		if len(o.KVs) == 0 {
			out.Results[i].KVs = nil
		}
	}
	if !res.Succeeded {
		writeJSON(w, http.StatusConflict, txnBody{
			ErrorBody: client.ErrorBody{Code: client.CodeCompareFailed, Message: "the compares did not hold; the else branch ran"},
			TxnResult: out,
		})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeJSON decodes one JSON value, refusing unknown fields and trailing
// data.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("malformed JSON body: data after the first value")
	}
	return nil
}

var (
	targets = map[string]kv.CompareTarget{
		client.TargetValue: kv.TargetValue, client.TargetVersion: kv.TargetVersion,
		client.TargetModIndex: kv.TargetModIndex, client.TargetCreateIndex: kv.TargetCreateIndex,
		client.TargetExists: kv.TargetExists,
	}
	results = map[string]kv.CompareResult{
		client.ResultEqual: kv.Equal, client.ResultNotEqual: kv.NotEqual,
		client.ResultLess: kv.Less, client.ResultGreater: kv.Greater,
	}
	opTypes = map[string]kv.OpType{
		client.OpPut: kv.OpPut, client.OpDelete: kv.OpDelete, client.OpGet: kv.OpGet,
		client.OpRange: kv.OpRange, client.OpDeleteRange: kv.OpDeleteRange,
	}
)

// convertTxn checks a JSON txn against the limits and converts it.
func (a *API) convertTxn(t client.Txn) (kv.Txn, error) {
	if n := len(t.Compares) + len(t.Then) + len(t.Else); n > a.kv.TxnOpsMax {
		return kv.Txn{}, badRequest("txn has %d compares and ops, over the limit of %d", n, a.kv.TxnOpsMax)
	}
	var out kv.Txn
	for i, c := range t.Compares {
		tg, ok := targets[c.Target]
		if !ok {
			return kv.Txn{}, badRequest("compare %d: target %q; want value, version, mod_index, create_index or exists", i, c.Target)
		}
		rs, ok := results[c.Result]
		if !ok {
			return kv.Txn{}, badRequest("compare %d: result %q; want equal, not_equal, less or greater", i, c.Result)
		}
		if err := a.checkKey(fmt.Sprintf("compare %d key", i), c.Key); err != nil {
			return kv.Txn{}, err
		}
		kc := kv.Compare{Key: c.Key, Target: tg, Result: rs}
		switch tg {
		case kv.TargetValue:
			kc.Value = c.Value
		case kv.TargetVersion:
			kc.Version = c.Version
		case kv.TargetModIndex, kv.TargetCreateIndex:
			kc.Index = c.Index
		case kv.TargetExists:
			kc.Exists = c.Exists
		}
		out.Compares = append(out.Compares, kc)
	}
	var err error
	if out.Then, err = a.convertOps("then", t.Then); err != nil {
		return kv.Txn{}, err
	}
	if out.Else, err = a.convertOps("else", t.Else); err != nil {
		return kv.Txn{}, err
	}
	return out, nil
}

func (a *API) convertOps(branch string, ops []client.Op) ([]kv.Op, error) {
	var out []kv.Op
	for i, o := range ops {
		ty, ok := opTypes[o.Type]
		if !ok {
			return nil, badRequest("%s op %d: type %q; want put, delete, get, range or delete_range", branch, i, o.Type)
		}
		if err := a.checkKey(fmt.Sprintf("%s op %d key", branch, i), o.Key); err != nil {
			return nil, err
		}
		if len(o.Value) > a.kv.ValueBytesMax {
			return nil, tooLarge("%s op %d: value of %d bytes is over the limit of %d", branch, i, len(o.Value), a.kv.ValueBytesMax)
		}
		if o.Limit < 0 {
			return nil, badRequest("%s op %d: limit %d is negative", branch, i, o.Limit)
		}
		op := kv.Op{Type: ty, Key: o.Key}
		switch ty {
		case kv.OpPut:
			op.Value, op.PrevKV = o.Value, o.PrevKV
			if op.Value == nil {
				op.Value = []byte{}
			}
		case kv.OpDelete:
			op.PrevKV = o.PrevKV
		case kv.OpRange:
			op.End, op.Limit = o.End, min(o.Limit, a.kv.ScanLimitMax)
		case kv.OpDeleteRange:
			op.End, op.PrevKV = o.End, o.PrevKV
		}
		if ty != kv.OpPut && len(o.Value) > 0 {
			return nil, badRequest("%s op %d: a %s takes no value", branch, i, o.Type)
		}
		out = append(out, op)
	}
	return out, nil
}

func (a *API) members(w http.ResponseWriter, r *http.Request) {
	leader, ms := a.srv.Members()
	out := client.MemberList{Leader: leader, Members: []client.Member{}}
	for _, m := range ms {
		out.Members = append(out.Members, client.Member{ID: m.ID, PeerAddr: m.PeerAddr, HTTPAddr: m.HTTPAddr, Leader: m.Leader})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, w, a.cfg.BodyBytesMax)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var m client.MemberAdd
	if err := decodeJSON(body, &m); err != nil {
		a.fail(w, r, err)
		return
	}
	_, handled, err := a.run(w, r, body, func(ctx context.Context) (kv.Response, error) {
		return kv.Response{}, a.srv.AddMember(ctx, m.ID, m.PeerAddr, m.HTTPAddr)
	})
	if handled || a.failed(w, r, kv.Response{}, err) {
		return
	}
	a.members(w, r)
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		a.fail(w, r, badRequest("member id %q is not a non-zero integer", r.PathValue("id")))
		return
	}
	_, handled, err := a.run(w, r, nil, func(ctx context.Context) (kv.Response, error) {
		return kv.Response{}, a.srv.RemoveMember(ctx, id)
	})
	if handled || a.failed(w, r, kv.Response{}, err) {
		return
	}
	a.members(w, r)
}

// views answers the Multi-Paxos membership as the one view until the group
// layer provides views (its id is 0: the membership has no view ids).
func (a *API) views(w http.ResponseWriter, r *http.Request) {
	st := a.srv.Status()
	views := []client.View{{ID: 0, Members: nonNil(st.Members), Source: server.ModePaxos}}
	for _, g := range a.srv.GroupViews() {
		views = append(views, client.View{Namespace: g.Namespace, ID: g.View.ID, Members: groupMemberIDs(g.View), Source: "group"})
	}
	writeJSON(w, http.StatusOK, client.ViewList{Views: views})
}

func nonNil(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	st := a.srv.Status()
	if st.Leader == 0 {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, client.Health{Status: "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, client.Health{Status: "ok", Leader: st.Leader})
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	st := a.srv.Status()
	digest, commands := a.srv.Digest()
	var groups []client.GroupStatus
	for _, g := range a.srv.GroupViews() {
		groups = append(groups, client.GroupStatus{Namespace: g.Namespace, ViewID: g.View.ID, Members: groupMemberIDs(g.View),
			Rank: g.View.Rank, Digest: hex.EncodeToString(g.Digest[:]), Applied: g.Applied})
	}
	writeJSON(w, http.StatusOK, client.Status{
		Groups: groups,
		Digest: digest, DigestCommands: commands,
		ID: st.ID, ClusterID: st.ClusterID, Version: a.cfg.Version, Role: st.Role, Leader: st.Leader,
		LeaderHTTP: st.LeaderHTTP, Commit: st.Commit, Applied: st.Applied, LastSlot: st.LastSlot,
		SnapshotSlot: st.SnapSlot, Members: nonNil(st.Members),
	})
}

func groupMemberIDs(v group.View) []uint64 {
	ids := make([]uint64, len(v.Members))
	for i, m := range v.Members {
		ids[i] = uint64(m.ID)
	}
	return ids
}
