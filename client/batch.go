package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// Limits of batching.
const (
	// batchOpsMax bounds the operations of one batch (the server takes up
	// to 1024).
	batchOpsMax = 256
	// batchBytesMax bounds the keys and values of one batch, well inside
	// the server's 2 MiB body limit after base64.
	batchBytesMax = 512 << 10
	// batchValueBytesMax: a larger value goes in its own request.
	batchValueBytesMax = 64 << 10
)

// batcher gathers concurrent single-key calls into POST /v1/batch
// requests. At most Config.BatchesInFlightMax batches are in flight; a call
// made meanwhile waits in pending and leaves with the next batch, so
// batches grow with the load and a lone caller is sent at once.
type batcher struct {
	c *Client

	mu       sync.Mutex
	pending  []*pendingOp
	inflight int
}

// pendingOp is a call waiting for its batch's answer.
type pendingOp struct {
	op BatchOp
	ch chan batchOutcome // buffered 1
}

// batchOutcome is a call's result, or err when its batch got no answer.
type batchOutcome struct {
	res BatchResult
	err error
}

// do runs op in a batch. handled is false when the batch got no answer or
// the op's answer was 503: the caller then sends op on its own, with the
// same session, and its usual retries.
func (b *batcher) do(ctx context.Context, op BatchOp) (res BatchResult, handled bool, err error) {
	p := &pendingOp{op: op, ch: make(chan batchOutcome, 1)}
	b.submit(p)
	select {
	case o := <-p.ch:
		switch {
		case o.err != nil, o.res.Status == http.StatusServiceUnavailable:
			return BatchResult{}, false, nil
		case o.res.Status/100 == 2:
			return o.res, true, nil
		}
		return o.res, true, &Error{HTTPStatus: o.res.Status, Code: o.res.Code, Message: o.res.Message}
	case <-ctx.Done():
		return BatchResult{}, true, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

func (b *batcher) submit(p *pendingOp) {
	b.mu.Lock()
	b.pending = append(b.pending, p)
	if b.inflight >= b.c.cfg.BatchesInFlightMax {
		b.mu.Unlock()
		return
	}
	b.inflight++
	ops := b.takeLocked()
	b.mu.Unlock()
	go b.run(ops)
}

// run sends ops, then every batch that gathered meanwhile, until none is
// pending.
func (b *batcher) run(ops []*pendingOp) {
	for {
		b.send(ops)
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.inflight--
			b.mu.Unlock()
			return
		}
		ops = b.takeLocked()
		b.mu.Unlock()
	}
}

// takeLocked takes the oldest pending ops, within the batch limits (at
// least one).
func (b *batcher) takeLocked() []*pendingOp {
	n, bytes := 0, 0
	for n < len(b.pending) && n < batchOpsMax {
		bytes += len(b.pending[n].op.Key) + len(b.pending[n].op.Value)
		if n > 0 && bytes > batchBytesMax {
			break
		}
		n++
	}
	ops := append([]*pendingOp(nil), b.pending[:n]...)
	b.pending = append(b.pending[:0], b.pending[n:]...)
	return ops
}

// send makes one attempt with ops and hands every op its outcome.
func (b *batcher) send(ops []*pendingOp) {
	c := b.c
	req := BatchRequest{Ops: make([]BatchOp, len(ops))}
	for i, p := range ops {
		req.Ops[i] = p.op
	}
	body, err := json.Marshal(req)
	var resp BatchResponse
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		base := c.pick(call{})
		var retry bool
		retry, _, err = c.attempt(ctx, base, call{method: http.MethodPost, path: "/v1/batch", body: body}, "", &resp)
		cancel()
		if retry {
			c.failed(base)
		}
		if err == nil && len(resp.Results) != len(ops) {
			err = fmt.Errorf("client: batch of %d ops answered with %d results", len(ops), len(resp.Results))
		}
	}
	for i, p := range ops {
		if err != nil {
			p.ch <- batchOutcome{err: err}
		} else {
			p.ch <- batchOutcome{res: resp.Results[i]}
		}
	}
}
