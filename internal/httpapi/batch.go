package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/internal/kv"
)

// batchOpsMax bounds the operations of one POST /v1/batch.
const batchOpsMax = 1024

// batch runs several independent single-key operations sent in one HTTP
// request: each is its own command (or linearizable read) with its own
// session and its own result, exactly as on its own endpoint. They run
// concurrently, so the member puts them into one log append (group
// commit). It saves HTTP round trips and syscalls per operation, which is
// what limits a client with many concurrent writers.
//
// A member that does not lead forwards the whole batch before running
// anything. An operation that fails because leadership moved meanwhile gets
// its own 503; the client retries it alone, with the same session.
func (a *API) batch(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, w, a.cfg.BodyBytesMax)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req client.BatchRequest
	if err := decodeJSON(body, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(req.Ops) > batchOpsMax {
		a.fail(w, r, badRequest("batch of %d operations, over the limit of %d", len(req.Ops), batchOpsMax))
		return
	}
	if st := a.srv.Status(); st.Role != "leader" {
		if st.LeaderHTTP != "" && r.Header.Get(client.HeaderForwarded) == "" {
			a.forward(w, r, body, st.LeaderHTTP)
			return
		}
		a.fail(w, r, &apiError{http.StatusServiceUnavailable, client.CodeUnavailable, "no leader to run the batch"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	out := client.BatchResponse{Results: make([]client.BatchResult, len(req.Ops))}
	var wg sync.WaitGroup
	for i, op := range req.Ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Results[i] = a.batchOp(ctx, op)
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, out)
}

// batchOp runs one operation of a batch.
func (a *API) batchOp(ctx context.Context, op client.BatchOp) client.BatchResult {
	fail := func(err error) client.BatchResult {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = mapServerError(err)
		}
		return client.BatchResult{Status: ae.status, Code: ae.code, Message: ae.msg}
	}
	var kop kv.Op
	switch op.Type {
	case client.OpPut:
		if len(op.Value) > a.kv.ValueBytesMax {
			return fail(tooLarge("value of %d bytes is over the limit of %d", len(op.Value), a.kv.ValueBytesMax))
		}
		kop = kv.Op{Type: kv.OpPut, Key: op.Key, Value: op.Value, PrevKV: op.PrevKV}
		if kop.Value == nil {
			kop.Value = []byte{}
		}
	case client.OpDelete:
		kop = kv.Op{Type: kv.OpDelete, Key: op.Key, PrevKV: op.PrevKV}
	case client.OpGet:
		kop = kv.Op{Type: kv.OpGet, Key: op.Key}
	default:
		return fail(badRequest("batch op type %q; want put, delete or get", op.Type))
	}
	if op.Type != client.OpPut && len(op.Value) > 0 {
		return fail(badRequest("a %s takes no value", op.Type))
	}
	if len(op.Key) == 0 {
		return fail(badRequest("the key is empty"))
	}
	if err := a.checkKey("key", op.Key); err != nil {
		return fail(err)
	}
	var sess kv.Session
	if op.Session != "" {
		h := http.Header{}
		h.Set(client.HeaderSession, op.Session)
		var err error
		if sess, err = session(&http.Request{Header: h}); err != nil {
			return fail(err)
		}
	}
	req := kv.Request{Session: sess, Kind: kv.KindTxn, Namespace: op.Namespace, Txn: kv.Txn{Then: []kv.Op{kop}}}
	res, err := a.srv.Txn(ctx, req)
	switch {
	case err != nil:
		return fail(err)
	case res.Code != kv.CodeOK:
		return fail(codeError(res))
	case len(res.Results) != 1:
		return fail(&apiError{http.StatusInternalServerError, client.CodeInternal, fmt.Sprintf("state machine returned %d results for one op", len(res.Results))})
	}
	o := res.Results[0]
	out := client.BatchResult{Status: http.StatusOK, Index: res.Index, PrevKV: toKVPtr(o.PrevKV), Deleted: o.Deleted}
	if op.Type == client.OpGet {
		if len(o.KVs) == 0 {
			return fail(&apiError{http.StatusNotFound, client.CodeKeyNotFound, fmt.Sprintf("key %q not found", op.Key)})
		}
		kv := toKV(o.KVs[0])
		out.KV = &kv
	}
	return out
}
