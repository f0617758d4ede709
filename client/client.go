package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Client.
type Config struct {
	// Endpoints are the HTTP addresses of some members, "host:port" or
	// "http://host:port". Any member will do: the client learns the leader
	// from the Chorus-Leader header and sends to it directly afterwards.
	Endpoints []string
	// Timeout bounds a call (all its retries) whose ctx has no deadline.
	// Default 10 s.
	Timeout time.Duration
	// IdleConnsPerHostMax bounds the idle keep-alive connections kept per
	// member; set it at least to the number of concurrent calls, so that
	// concurrent requests reuse connections instead of opening new ones.
	// Default 1024.
	IdleConnsPerHostMax int
	// ResponseBytesMax bounds a response body read. Default 64 MiB.
	ResponseBytesMax int64
	// HTTPClient replaces the client's own (its Transport settings then
	// apply instead of IdleConnsPerHostMax).
	HTTPClient *http.Client
	// DisableBatching sends every Put, Delete and Get in its own HTTP
	// request. By default concurrent calls share requests (POST /v1/batch):
	// a call that finds BatchesInFlightMax batches in flight waits for the
	// next one, so a lone caller never waits and many callers share round
	// trips.
	DisableBatching bool
	// BatchesInFlightMax bounds the batches in flight at once. Default 4.
	BatchesInFlightMax int
}

// Client talks to a chorus cluster over its HTTP API. It is safe for
// concurrent use; share one per process. Concurrent calls travel on
// concurrent keep-alive connections (HTTP/1.1), which is how the client
// keeps many requests in flight.
//
// Writes carry a session (a random client id and a sequence number): a write
// retried after a lost response, a timeout or a leader change is applied at
// most once. Each concurrent write uses its own session from a pool.
type Client struct {
	cfg       Config
	endpoints []string // base URLs
	hc        *http.Client
	leader    atomic.Pointer[string] // base URL of the known leader
	next      atomic.Uint64          // round robin over endpoints after failures

	batch *batcher // nil with Config.DisableBatching

	mu   sync.Mutex
	free []*session // sessions with no write in flight
}

// session is a client id and the last sequence number it used; one write
// at a time uses it.
type session struct {
	client uint64
	seq    uint64
}

// Limits of the client.
const (
	backoffMin = 10 * time.Millisecond
	backoffMax = 500 * time.Millisecond
	// sessionsFreeMax bounds the pool of idle sessions kept for reuse.
	sessionsFreeMax = 4096
)

// New returns a Client for cfg. It does not contact the cluster.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: Config.Endpoints is empty", ErrNoEndpoints)
	}
	if cfg.Timeout < 0 || cfg.IdleConnsPerHostMax < 0 || cfg.ResponseBytesMax < 0 {
		return nil, fmt.Errorf("client: Config.Timeout, IdleConnsPerHostMax and ResponseBytesMax must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.IdleConnsPerHostMax == 0 {
		cfg.IdleConnsPerHostMax = 1024
	}
	if cfg.ResponseBytesMax == 0 {
		cfg.ResponseBytesMax = 64 << 20
	}
	if cfg.BatchesInFlightMax < 0 {
		return nil, fmt.Errorf("client: Config.BatchesInFlightMax must not be negative")
	}
	if cfg.BatchesInFlightMax == 0 {
		cfg.BatchesInFlightMax = 4
	}
	c := &Client{cfg: cfg}
	if !cfg.DisableBatching {
		c.batch = &batcher{c: c}
	}
	for _, e := range cfg.Endpoints {
		base, err := baseURL(e)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, base)
	}
	c.next.Store(rand.Uint64N(uint64(len(c.endpoints))))
	c.hc = cfg.HTTPClient
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 0 // no global bound; per host below
		tr.MaxIdleConnsPerHost = cfg.IdleConnsPerHostMax
		tr.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// baseURL turns an endpoint into "http://host:port".
func baseURL(e string) (string, error) {
	raw := strings.TrimSpace(e)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("%w: endpoint %q is not host:port or http://host:port", ErrNoEndpoints, e)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return "", fmt.Errorf("%w: endpoint %q is not host:port or http://host:port", ErrNoEndpoints, e)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Endpoints returns the base URLs the client uses.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// OpOption modifies a Put or Delete.
type OpOption func(*opOptions)

type opOptions struct{ prevKV bool }

// WithPrevKV asks for the key's previous value in the result.
func WithPrevKV() OpOption { return func(o *opOptions) { o.prevKV = true } }

func options(opts []OpOption) opOptions {
	var o opOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

func kvPath(ns string, key []byte) string {
	k := url.PathEscape(string(key))
	if k == "." || k == ".." {
		// A path segment of dots would be cleaned away by the server's
		// router; escaped, it is a key like any other.
		k = strings.ReplaceAll(k, ".", "%2E")
	}
	return "/v1/ns/" + url.PathEscape(ns) + "/kv/" + k
}

// Put sets key to value in namespace ns.
func (c *Client) Put(ctx context.Context, ns string, key, value []byte, opts ...OpOption) (PutResult, error) {
	o := options(opts)
	s := c.takeSession()
	defer c.putSession(s)
	sess := s.next()
	if c.batch != nil && len(value) <= batchValueBytesMax {
		res, ok, err := c.batch.do(ctx, BatchOp{Namespace: ns, Type: OpPut, Key: key, Value: value, Session: sess, PrevKV: o.prevKV})
		if ok {
			return PutResult{Index: res.Index, PrevKV: res.PrevKV}, err
		}
	}
	var out PutResult
	q := url.Values{}
	if o.prevKV {
		q.Set("prev_kv", "true")
	}
	err := c.do(ctx, call{method: http.MethodPut, path: kvPath(ns, key), query: q, body: value, write: true, raw: true, session: sess}, &out)
	return out, err
}

// Get reads key from namespace ns (linearizable). A missing key is an
// *Error matching ErrKeyNotFound.
func (c *Client) Get(ctx context.Context, ns string, key []byte) (GetResult, error) {
	if c.batch != nil {
		res, ok, err := c.batch.do(ctx, BatchOp{Namespace: ns, Type: OpGet, Key: key})
		if ok {
			out := GetResult{Index: res.Index}
			if res.KV != nil {
				out.KV = *res.KV
			}
			return out, err
		}
	}
	var out GetResult
	err := c.do(ctx, call{method: http.MethodGet, path: kvPath(ns, key)}, &out)
	return out, err
}

// Delete removes key from namespace ns. Deleting a missing key succeeds with
// Deleted 0.
func (c *Client) Delete(ctx context.Context, ns string, key []byte, opts ...OpOption) (DeleteResult, error) {
	o := options(opts)
	s := c.takeSession()
	defer c.putSession(s)
	sess := s.next()
	if c.batch != nil {
		res, ok, err := c.batch.do(ctx, BatchOp{Namespace: ns, Type: OpDelete, Key: key, Session: sess, PrevKV: o.prevKV})
		if ok {
			return DeleteResult{Index: res.Index, Deleted: res.Deleted, PrevKV: res.PrevKV}, err
		}
	}
	var out DeleteResult
	q := url.Values{}
	if o.prevKV {
		q.Set("prev_kv", "true")
	}
	err := c.do(ctx, call{method: http.MethodDelete, path: kvPath(ns, key), query: q, write: true, session: sess}, &out)
	return out, err
}

// ScanRequest selects a range of keys.
type ScanRequest struct {
	// Start is the first key; End the first key after the range (empty: no
	// bound).
	Start, End []byte
	// Prefix selects the keys with this prefix instead of Start and End.
	Prefix []byte
	// Limit caps the keys returned (0: the server's maximum).
	Limit int
	// PageToken continues a previous scan (ScanResult.PageToken); it
	// replaces Start.
	PageToken string
}

// Scan reads a range of keys in order (linearizable).
func (c *Client) Scan(ctx context.Context, ns string, r ScanRequest) (ScanResult, error) {
	q := url.Values{}
	if len(r.Start) > 0 {
		q.Set("start", string(r.Start))
	}
	if len(r.End) > 0 {
		q.Set("end", string(r.End))
	}
	if len(r.Prefix) > 0 {
		q.Set("prefix", string(r.Prefix))
	}
	if r.Limit != 0 {
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	if r.PageToken != "" {
		q.Set("page_token", r.PageToken)
	}
	var out ScanResult
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/ns/" + url.PathEscape(ns) + "/scan", query: q}, &out)
	return out, err
}

// Txn runs a transaction in namespace ns. When the compares do not hold, it
// returns the result (the else branch's) and an *Error matching
// ErrCompareFailed.
func (c *Client) Txn(ctx context.Context, ns string, t Txn) (TxnResult, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return TxnResult{}, fmt.Errorf("client: encode txn: %w", err)
	}
	var out TxnResult
	err = c.do(ctx, call{method: http.MethodPost, path: "/v1/ns/" + url.PathEscape(ns) + "/txn", body: body, write: true}, &out)
	return out, err
}

// CreateNamespace creates a namespace.
func (c *Client) CreateNamespace(ctx context.Context, spec NamespaceSpec) (Namespace, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return Namespace{}, fmt.Errorf("client: encode namespace: %w", err)
	}
	var out Namespace
	err = c.do(ctx, call{method: http.MethodPost, path: "/v1/namespaces", body: body, write: true}, &out)
	return out, err
}

// Namespaces lists the namespaces.
func (c *Client) Namespaces(ctx context.Context) ([]Namespace, error) {
	var out NamespaceList
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/namespaces"}, &out)
	return out.Namespaces, err
}

// Namespace describes one namespace.
func (c *Client) Namespace(ctx context.Context, name string) (Namespace, error) {
	var out Namespace
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/namespaces/" + url.PathEscape(name)}, &out)
	return out, err
}

// DeleteNamespace removes a namespace and all its keys.
func (c *Client) DeleteNamespace(ctx context.Context, name string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/namespaces/" + url.PathEscape(name), write: true}, nil)
}

// Members lists the cluster's members, as the answering member knows them.
func (c *Client) Members(ctx context.Context) (MemberList, error) {
	var out MemberList
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/members", anyMember: true}, &out)
	return out, err
}

// AddMember adds a member to the cluster (the leader proposes its address,
// then the membership change). Start the new member with --join, before or
// after this call.
func (c *Client) AddMember(ctx context.Context, m MemberAdd) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("client: encode member: %w", err)
	}
	return c.do(ctx, call{method: http.MethodPost, path: "/v1/members", body: body}, nil)
}

// RemoveMember removes member id from the cluster.
func (c *Client) RemoveMember(ctx context.Context, id uint64) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/members/" + strconv.FormatUint(id, 10)}, nil)
}

// Views lists the group views.
func (c *Client) Views(ctx context.Context) (ViewList, error) {
	var out ViewList
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/views", anyMember: true}, &out)
	return out, err
}

// Status returns the status of one member: endpoint if it is not empty,
// else the first endpoint that answers.
func (c *Client) Status(ctx context.Context, endpoint string) (Status, error) {
	var out Status
	cl := call{method: http.MethodGet, path: "/v1/status", anyMember: true}
	if endpoint != "" {
		base, err := baseURL(endpoint)
		if err != nil {
			return out, err
		}
		cl.target = base
	}
	err := c.do(ctx, cl, &out)
	return out, err
}

// call describes one API request.
type call struct {
	method, path string
	query        url.Values
	body         []byte
	raw          bool // body is a value, not JSON
	write        bool // carries a session; retried safely
	anyMember    bool // any member can answer: no need to look for the leader
	target       string
	session      string // a write's session, when the caller took one already
}

// next advances the session to its next sequence number and returns the
// Chorus-Session value for it.
func (s *session) next() string {
	s.seq++
	return strconv.FormatUint(s.client, 10) + ":" + strconv.FormatUint(s.seq, 10)
}

func (c *Client) takeSession() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free = c.free[:n-1]
		return s
	}
	return &session{client: rand.Uint64() | 1}
}

func (c *Client) putSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.free) < sessionsFreeMax {
		c.free = append(c.free, s)
	}
}

// pick returns the base URL for the next attempt.
func (c *Client) pick(cl call) string {
	if cl.target != "" {
		return cl.target
	}
	if l := c.leader.Load(); l != nil && !cl.anyMember {
		return *l
	}
	return c.endpoints[c.next.Load()%uint64(len(c.endpoints))]
}

// failed records that base did not answer usefully: forget it as leader and
// move to the next endpoint.
func (c *Client) failed(base string) {
	if l := c.leader.Load(); l != nil && *l == base {
		c.leader.CompareAndSwap(l, nil)
	}
	c.next.Add(1)
}

// do runs cl with retries until it gets an answer other than "unavailable"
// or ctx ends, and decodes a 2xx body (and a 409 txn body) into out.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	sess := cl.session
	if cl.write && sess == "" {
		s := c.takeSession()
		defer c.putSession(s)
		sess = s.next()
	}
	backoff := backoffMin
	var lastErr error
	for {
		base := c.pick(cl)
		retry, wait, err := c.attempt(ctx, base, cl, sess, out)
		if !retry || cl.target != "" {
			// A call to one named member is not retried elsewhere.
			return err
		}
		lastErr = err
		c.failed(base)
		wait = max(wait, backoff)
		backoff = min(2*backoff, backoffMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w (last error: %w)", ErrUnavailable, ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// attempt sends cl once to base. retry says whether another attempt may
// succeed (no answer, or 503), wait how long the server asked to wait.
func (c *Client) attempt(ctx context.Context, base string, cl call, sess string, out any) (retry bool, wait time.Duration, err error) {
	u := base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, body)
	if err != nil {
		return false, 0, fmt.Errorf("client: %w", err)
	}
	if cl.body != nil {
		if cl.raw {
			req.Header.Set("Content-Type", "application/octet-stream")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if sess != "" {
		req.Header.Set(HeaderSession, sess)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return true, 0, fmt.Errorf("client: %s %s: %w", cl.method, base, err)
	}
	defer resp.Body.Close()
	if l := resp.Header.Get(HeaderLeader); l != "" && cl.target == "" {
		lb := "http://" + l
		if cur := c.leader.Load(); cur == nil || *cur != lb {
			c.leader.Store(&lb)
		}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.ResponseBytesMax))
	if err != nil {
		if ctx.Err() != nil {
			return false, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return true, 0, fmt.Errorf("client: read response from %s: %w", base, err)
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, backoffMax)
		}
		return true, wait, decodeError(resp.StatusCode, data)
	}
	if resp.StatusCode/100 == 2 {
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return false, 0, fmt.Errorf("client: decode %s %s response: %w", cl.method, cl.path, err)
			}
		}
		return false, 0, nil
	}
	e := decodeError(resp.StatusCode, data)
	if resp.StatusCode == http.StatusConflict && e.Code == CodeCompareFailed && out != nil {
		_ = json.Unmarshal(data, out) // the txn result rides along
	}
	return false, 0, e
}

func decodeError(status int, data []byte) *Error {
	var b ErrorBody
	if err := json.Unmarshal(data, &b); err != nil || b.Code == "" {
		b.Code = codeForStatus(status)
		b.Message = strings.TrimSpace(string(data))
		if len(b.Message) > 200 {
			b.Message = b.Message[:200]
		}
	}
	return &Error{HTTPStatus: status, Code: b.Code, Message: b.Message}
}

func codeForStatus(status int) string {
	switch status {
	case 400:
		return CodeBadRequest
	case 404:
		return CodeNotFound
	case 405:
		return CodeMethodNotAllowed
	case 413:
		return CodeTooLarge
	case 503:
		return CodeUnavailable
	}
	return CodeInternal
}

// IsRetryable reports whether err says the cluster could not answer (no
// leader, no quorum, every endpoint unreachable) rather than refusing the
// request.
func IsRetryable(err error) bool { return errors.Is(err, ErrUnavailable) }
