// Package httpapi serves a chorus server's HTTP/JSON API (docs/api.md):
// namespaces, put/get/delete/scan/txn, members, views, health and status.
// The JSON bodies are the types of package client.
//
// A member that does not lead forwards a request it cannot serve (every
// write and every linearizable read) to the leader's HTTP address, once
// (the forwarded request carries Chorus-Forwarded and is not forwarded
// again), and relays the answer. Every answer carries Chorus-Leader with
// the leader's HTTP address when the member knows it, so clients go there
// directly next time. With no leader known the answer is 503 with
// Retry-After.
package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/internal/kv"
	"github.com/chorus-project/chorus/internal/server"
)

// Config configures the API.
type Config struct {
	// BodyBytesMax bounds a JSON body (txn, namespace). Default 2 MiB: a
	// txn of values near the 1 MiB entry limit, base64-encoded.
	BodyBytesMax int64
	// RequestTimeout bounds the work on one request (a proposal waiting for
	// a quorum, a read waiting for its confirmation), after which the answer
	// is 503. Default 5 s.
	RequestTimeout time.Duration
	// Version is reported by /v1/status.
	Version string
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
}

// API is the http.Handler of the API.
type API struct {
	srv  *server.Server
	kv   kv.Config
	cfg  Config
	log  *slog.Logger
	mux  *http.ServeMux
	fwd  *http.Client
	self string // this member's id, for Chorus-Forwarded
}

// New returns the API of srv.
func New(srv *server.Server, cfg Config) *API {
	if cfg.BodyBytesMax <= 0 {
		cfg.BodyBytesMax = 2 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1024 // forwarded requests from many clients at once
	a := &API{
		srv: srv, kv: srv.Config().KV, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(),
		fwd:  &http.Client{Transport: tr, Timeout: cfg.RequestTimeout + time.Second},
		self: strconv.FormatUint(srv.Config().ID, 10),
	}
	a.mux.HandleFunc("POST /v1/namespaces", a.createNamespace)
	a.mux.HandleFunc("GET /v1/namespaces", a.listNamespaces)
	a.mux.HandleFunc("GET /v1/namespaces/{ns}", a.describeNamespace)
	a.mux.HandleFunc("DELETE /v1/namespaces/{ns}", a.deleteNamespace)
	a.mux.HandleFunc("PUT /v1/ns/{ns}/kv/{key...}", a.put)
	a.mux.HandleFunc("GET /v1/ns/{ns}/kv/{key...}", a.get)
	a.mux.HandleFunc("DELETE /v1/ns/{ns}/kv/{key...}", a.del)
	a.mux.HandleFunc("GET /v1/ns/{ns}/scan", a.scan)
	a.mux.HandleFunc("POST /v1/ns/{ns}/txn", a.txn)
	a.mux.HandleFunc("POST /v1/batch", a.batch)
	a.mux.HandleFunc("GET /v1/members", a.members)
	a.mux.HandleFunc("POST /v1/members", a.addMember)
	a.mux.HandleFunc("DELETE /v1/members/{id}", a.removeMember)
	a.mux.HandleFunc("GET /v1/views", a.views)
	a.mux.HandleFunc("GET /v1/health", a.health)
	a.mux.HandleFunc("GET /v1/status", a.status)
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := a.srv.Status(); st.LeaderHTTP != "" {
		w.Header().Set(client.HeaderLeader, st.LeaderHTTP)
	}
	// The mux answers unknown paths and methods in plain text; route them
	// to JSON errors instead.
	if _, pattern := a.mux.Handler(r); pattern == "" {
		rec := &probe{}
		a.mux.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			writeError(w, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path))
			return
		}
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
		return
	}
	a.mux.ServeHTTP(w, r)
}

// probe records the status the mux would answer with.
type probe struct {
	status int
	h      http.Header
}

func (p *probe) Header() http.Header {
	if p.h == nil {
		p.h = http.Header{}
	}
	return p.h
}
func (p *probe) Write(b []byte) (int, error) { return len(b), nil }
func (p *probe) WriteHeader(s int)           { p.status = s }

// apiError is an answer other than success.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, client.CodeTooLarge, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, client.ErrorBody{Code: code, Message: msg})
}

// fail answers err, which is an *apiError or an error of package server.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = mapServerError(err)
	}
	if ae.status >= 500 {
		a.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", err)
	}
	writeError(w, ae.status, ae.code, ae.msg)
}

func mapServerError(err error) *apiError {
	var nl *server.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return &apiError{http.StatusServiceUnavailable, client.CodeUnavailable,
			fmt.Sprintf("this member does not lead and could not forward to leader %d (%q)", nl.Leader, nl.HTTPAddr)}
	case errors.Is(err, server.ErrUnavailable), errors.Is(err, server.ErrStopped),
		errors.Is(err, context.DeadlineExceeded):
		return &apiError{http.StatusServiceUnavailable, client.CodeUnavailable, err.Error()}
	case errors.Is(err, server.ErrTooLarge):
		return &apiError{http.StatusRequestEntityTooLarge, client.CodeTooLarge, err.Error()}
	case errors.Is(err, server.ErrStaleSession):
		return &apiError{http.StatusBadRequest, client.CodeStaleSession, err.Error()}
	case errors.Is(err, server.ErrUnknownMode):
		return &apiError{http.StatusBadRequest, client.CodeUnknownMode, err.Error()}
	case errors.Is(err, server.ErrModeUnavailable):
		return &apiError{http.StatusBadRequest, client.CodeModeUnavailable, err.Error()}
	case errors.Is(err, server.ErrMembership):
		return &apiError{http.StatusConflict, client.CodeMembership, err.Error()}
	case errors.Is(err, server.ErrBadRequest):
		return &apiError{http.StatusBadRequest, client.CodeBadRequest, err.Error()}
	}
	return &apiError{http.StatusInternalServerError, client.CodeInternal, err.Error()}
}

// codeError maps a non-OK kv code; notFound is the code for CodeNotFound.
func codeError(res kv.Response) *apiError {
	msg := res.Message
	switch res.Code {
	case kv.CodeBadRequest:
		return &apiError{http.StatusBadRequest, client.CodeBadRequest, msg}
	case kv.CodeNotFound:
		return &apiError{http.StatusNotFound, client.CodeNamespaceNotFound, msg}
	case kv.CodeExists:
		return &apiError{http.StatusConflict, client.CodeNamespaceExists, msg}
	case kv.CodeTooLarge:
		return &apiError{http.StatusRequestEntityTooLarge, client.CodeTooLarge, msg}
	case kv.CodeStaleSession:
		return &apiError{http.StatusBadRequest, client.CodeStaleSession, msg}
	}
	return &apiError{http.StatusInternalServerError, client.CodeInternal, fmt.Sprintf("state machine answered %s: %s", res.Code, msg)}
}

// readBody reads the request body, at most limit bytes (413 beyond).
func readBody(r *http.Request, w http.ResponseWriter, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge("request body over %d bytes", limit)
	case err != nil:
		return nil, badRequest("read body: %v", err)
	}
	return body, nil
}

// session parses the Chorus-Session header ("" is no session).
func session(r *http.Request) (kv.Session, error) {
	h := r.Header.Get(client.HeaderSession)
	if h == "" {
		return kv.Session{}, nil
	}
	c, s, ok := strings.Cut(h, ":")
	cl, err1 := strconv.ParseUint(c, 10, 64)
	seq, err2 := strconv.ParseUint(s, 10, 64)
	if !ok || err1 != nil || err2 != nil || cl == 0 || seq == 0 {
		return kv.Session{}, badRequest("%s %q: want <client>:<seq>, both non-zero decimal integers", client.HeaderSession, h)
	}
	return kv.Session{Client: cl, Seq: seq}, nil
}

// run executes do with the request timeout; when this member does not lead
// and the request was not forwarded already, it forwards the request to the
// leader and reports handled.
func (a *API) run(w http.ResponseWriter, r *http.Request, body []byte, do func(ctx context.Context) (kv.Response, error)) (res kv.Response, handled bool, err error) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	res, err = do(ctx)
	var nl *server.NotLeaderError
	if errors.As(err, &nl) && nl.HTTPAddr != "" && r.Header.Get(client.HeaderForwarded) == "" {
		a.forward(w, r, body, nl.HTTPAddr)
		return res, true, nil
	}
	return res, false, err
}

// forward relays r to the leader at addr and its answer back.
func (a *API) forward(w http.ResponseWriter, r *http.Request, body []byte, addr string) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		a.fail(w, r, &apiError{http.StatusInternalServerError, client.CodeInternal, err.Error()})
		return
	}
	for _, h := range []string{"Content-Type", client.HeaderSession} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(client.HeaderForwarded, a.self)
	resp, err := a.fwd.Do(req)
	if err != nil {
		a.fail(w, r, &apiError{http.StatusServiceUnavailable, client.CodeUnavailable,
			fmt.Sprintf("leader at %s unreachable: %v", addr, err)})
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Retry-After", client.HeaderLeader} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// toKV converts between the kv package's KeyValue and the API's.
func toKV(k kv.KeyValue) client.KeyValue {
	return client.KeyValue{Key: k.Key, Value: k.Value, Version: k.Version, CreateIndex: k.CreateIndex, ModIndex: k.ModIndex}
}

func toKVPtr(k *kv.KeyValue) *client.KeyValue {
	if k == nil {
		return nil
	}
	c := toKV(*k)
	return &c
}

func toKVs(ks []kv.KeyValue) []client.KeyValue {
	out := make([]client.KeyValue, len(ks))
	for i, k := range ks {
		out[i] = toKV(k)
	}
	return out
}

func toNamespace(n kv.NamespaceInfo) client.Namespace {
	return client.Namespace{Name: n.Spec.Name, Mode: n.Spec.Mode, Params: n.Spec.Params, Keys: n.Keys, CreateIndex: n.CreateIndex}
}

func encodeToken(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

func decodeToken(t string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(t) }
