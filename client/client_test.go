package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/internal/httpapi/apitest"
)

func startCluster(t testing.TB) *apitest.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := apitest.Start(ctx, t.TempDir(), 3, apitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []client.Config{
		{},
		{Endpoints: []string{"http://"}},
		{Endpoints: []string{"127.0.0.1"}},
		{Endpoints: []string{"ftp://127.0.0.1:1"}},
		{Endpoints: []string{"127.0.0.1:1/path"}},
		{Endpoints: []string{"127.0.0.1:1"}, Timeout: -1},
	} {
		if _, err := client.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestErrorIs(t *testing.T) {
	for _, tc := range []struct {
		e    *client.Error
		is   []error
		isnt []error
	}{
		{&client.Error{HTTPStatus: 404, Code: client.CodeKeyNotFound}, []error{client.ErrNotFound, client.ErrKeyNotFound}, []error{client.ErrNamespaceNotFound, client.ErrBadRequest}},
		{&client.Error{HTTPStatus: 404, Code: client.CodeNamespaceNotFound}, []error{client.ErrNotFound, client.ErrNamespaceNotFound}, []error{client.ErrKeyNotFound}},
		{&client.Error{HTTPStatus: 409, Code: client.CodeCompareFailed}, []error{client.ErrCompareFailed}, []error{client.ErrExists}},
		{&client.Error{HTTPStatus: 409, Code: client.CodeNamespaceExists}, []error{client.ErrExists}, []error{client.ErrCompareFailed}},
		{&client.Error{HTTPStatus: 413, Code: client.CodeTooLarge}, []error{client.ErrTooLarge}, []error{client.ErrBadRequest}},
		{&client.Error{HTTPStatus: 503, Code: client.CodeUnavailable}, []error{client.ErrUnavailable}, []error{client.ErrNotFound}},
		{&client.Error{HTTPStatus: 400, Code: client.CodeModeUnavailable}, []error{client.ErrBadRequest, client.ErrModeUnavailable}, []error{client.ErrUnavailable}},
	} {
		wrapped := fmt.Errorf("wrapped: %w", tc.e)
		for _, s := range tc.is {
			if !errors.Is(wrapped, s) {
				t.Errorf("%v is not %v", tc.e, s)
			}
		}
		for _, s := range tc.isnt {
			if errors.Is(wrapped, s) {
				t.Errorf("%v is %v", tc.e, s)
			}
		}
	}
}

// TestLeaderDiscovery: the first endpoint is dead; the client moves on,
// learns the leader from Chorus-Leader and sends there afterwards.
func TestLeaderDiscovery(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := apitest.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	// Count the requests each member's API receives, through a proxy per
	// member.
	var counts sync.Map
	var eps []string
	eps = append(eps, dead[0])
	for id := uint64(1); id <= 3; id++ {
		if id == leader {
			continue
		}
		eps = append(eps, countingProxy(t, c.URL(id), &counts, id))
	}
	cl, err := client.New(client.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateNamespace(ctx, client.NamespaceSpec{Name: "app", Mode: "paxos"}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := cl.Put(ctx, "app", []byte(fmt.Sprint(i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// After the first answer, requests go straight to the leader (its
	// address is not behind a counting proxy), so the followers' proxies
	// saw at most the first request or two.
	var total int64
	counts.Range(func(_, v any) bool { total += v.(*atomic.Int64).Load(); return true })
	if total > 2 {
		t.Errorf("followers received %d of 11 requests; the client did not remember the leader", total)
	}
}

func countingProxy(t *testing.T, target string, counts *sync.Map, id uint64) string {
	u, _ := url.Parse(target)
	n := &atomic.Int64{}
	counts.Store(id, n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		forward(w, r, u.Host)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func forward(w http.ResponseWriter, r *http.Request, host string) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+host+r.URL.RequestURI(), strings.NewReader(string(body)))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// TestRetryAppliesOnce: a proxy lets the first write through to the
// cluster but drops its answer (closes the connection); the client retries
// with the same session, and the put is applied once (version 1). With
// batching the dropped request is the batch, and the put is retried alone.
func TestRetryAppliesOnce(t *testing.T) {
	c := startCluster(t)
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			leader, _ := c.WaitLeader(ctx)
			var dropped atomic.Bool
			host := c.HTTPPeers[leader]
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				write := r.Method == http.MethodPut || r.URL.Path == "/v1/batch"
				if write && dropped.CompareAndSwap(false, true) {
					// Apply it, then lose the answer.
					forward(httptest.NewRecorder(), r, host)
					hj, _ := w.(http.Hijacker)
					conn, _, _ := hj.Hijack()
					conn.Close()
					return
				}
				forward(w, r, host)
			}))
			defer srv.Close()
			// The proxy hides Chorus-Leader, so the client keeps using it.
			cl, err := client.New(client.Config{Endpoints: []string{srv.Listener.Addr().String()},
				HTTPClient: &http.Client{Transport: &noLeaderHeader{}}, DisableBatching: !batching})
			if err != nil {
				t.Fatal(err)
			}
			ns := fmt.Sprintf("app%v", batching)
			if _, err := cl.CreateNamespace(ctx, client.NamespaceSpec{Name: ns, Mode: "paxos"}); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Put(ctx, ns, []byte("k"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			if !dropped.Load() {
				t.Fatal("the proxy dropped nothing")
			}
			g, err := cl.Get(ctx, ns, []byte("k"))
			if err != nil {
				t.Fatal(err)
			}
			if g.KV.Version != 1 {
				t.Errorf("version %d: the retried put was applied %d times", g.KV.Version, g.KV.Version)
			}
		})
	}
}

type noLeaderHeader struct{}

func (noLeaderHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if resp != nil {
		resp.Header.Del(client.HeaderLeader)
	}
	return resp, err
}

// TestOddKeys: keys that are awkward in a URL path round-trip, on the
// batched and the single-request paths.
func TestOddKeys(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, batching := range []bool{false, true} {
		cl, err := client.New(client.Config{Endpoints: c.Endpoints(), DisableBatching: !batching})
		if err != nil {
			t.Fatal(err)
		}
		ns := fmt.Sprintf("odd%v", batching)
		if _, err := cl.CreateNamespace(ctx, client.NamespaceSpec{Name: ns, Mode: "paxos"}); err != nil {
			t.Fatal(err)
		}
		keys := []string{".", "..", "a/../b", "a//b", "/", "?x=1#y", "%2F", "sp ace", "\x00\xff", "ünï"}
		for _, k := range keys {
			if _, err := cl.Put(ctx, ns, []byte(k), []byte(k)); err != nil {
				t.Errorf("put %q: %v", k, err)
				continue
			}
			if r, err := cl.Get(ctx, ns, []byte(k)); err != nil || string(r.KV.Key) != k || string(r.KV.Value) != k {
				t.Errorf("get %q: %v %+v", k, err, r)
			}
		}
		if s, err := cl.Scan(ctx, ns, client.ScanRequest{}); err != nil || len(s.KVs) != len(keys) {
			t.Errorf("scan: %v, %d keys, want %d", err, len(s.KVs), len(keys))
		}
	}
}

// TestUnavailableUntilDeadline: with every endpoint dead, a call fails with
// ErrUnavailable when its ctx ends.
func TestUnavailableUntilDeadline(t *testing.T) {
	dead, err := apitest.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{Endpoints: dead})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cl.Get(ctx, "app", []byte("k")); !errors.Is(err, client.ErrUnavailable) || !client.IsRetryable(err) {
		t.Errorf("Get with no member up: %v", err)
	}
}

// BenchmarkPut measures puts through the client against three in-process
// members (fsync on), b.N puts spread over a number of concurrent
// goroutines sharing one client.
func BenchmarkPut(b *testing.B) {
	for _, bc := range []struct {
		par      int
		batching bool
	}{{1, false}, {1, true}, {64, false}, {64, true}, {256, true}} {
		par := bc.par
		b.Run(fmt.Sprintf("clients=%d/batching=%v", par, bc.batching), func(b *testing.B) {
			c := startCluster(b)
			cl, err := client.New(client.Config{Endpoints: c.Endpoints(), DisableBatching: !bc.batching})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := cl.CreateNamespace(ctx, client.NamespaceSpec{Name: "b", Mode: "paxos"}); err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 256)
			var n atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + par - 1) / par
			for g := range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						if _, err := cl.Put(ctx, "b", []byte(fmt.Sprintf("k%03d-%08d", g, i)), value); err != nil {
							b.Error(err)
							return
						}
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
