package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/internal/httpapi"
	"github.com/chorus-project/chorus/internal/httpapi/apitest"
	"github.com/chorus-project/chorus/internal/server"
)

func startCluster(t *testing.T, opts apitest.Options) *apitest.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := apitest.Start(ctx, t.TempDir(), 3, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errBody(t *testing.T) client.ErrorBody {
	t.Helper()
	var e client.ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return e
}

func do(t *testing.T, method, url string, body []byte, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func decode[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return v
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// follower returns a member that does not lead.
func follower(t *testing.T, c *apitest.Cluster) uint64 {
	t.Helper()
	for id, s := range c.Servers {
		if s.Status().Role != "leader" {
			return id
		}
	}
	t.Fatal("no follower")
	return 0
}

// TestEndpoints drives every endpoint through a follower (which forwards to
// the leader) and checks the answers.
func TestEndpoints(t *testing.T) {
	c := startCluster(t, apitest.Options{})
	leader, err := c.WaitLeader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u := c.URL(follower(t, c))

	r := do(t, "POST", u+"/v1/namespaces", []byte(`{"name":"app","mode":"paxos","params":{"x":"1"}}`))
	if r.status != 201 {
		t.Fatalf("create namespace: %d %s", r.status, r.body)
	}
	if got := r.header.Get(client.HeaderLeader); got != c.HTTPPeers[leader] {
		t.Errorf("Chorus-Leader = %q, want %q", got, c.HTTPPeers[leader])
	}
	if ns := decode[client.Namespace](t, r); ns.Name != "app" || ns.Mode != "paxos" || ns.Params["x"] != "1" {
		t.Errorf("created %+v", ns)
	}
	r = do(t, "GET", u+"/v1/namespaces", nil)
	if l := decode[client.NamespaceList](t, r); r.status != 200 || len(l.Namespaces) != 1 || l.Namespaces[0].Name != "app" {
		t.Errorf("list: %d %s", r.status, r.body)
	}

	// A key with a slash and a space, URL-escaped.
	r = do(t, "PUT", u+"/v1/ns/app/kv/a%2Fb%20c", []byte("v1"))
	if r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	r = do(t, "PUT", u+"/v1/ns/app/kv/a%2Fb%20c?prev_kv=true", []byte("v2"))
	if p := decode[client.PutResult](t, r); r.status != 200 || p.PrevKV == nil || string(p.PrevKV.Value) != "v1" {
		t.Errorf("put prev_kv: %d %s", r.status, r.body)
	}
	r = do(t, "GET", u+"/v1/ns/app/kv/a%2Fb%20c", nil)
	if g := decode[client.GetResult](t, r); r.status != 200 || string(g.KV.Key) != "a/b c" || string(g.KV.Value) != "v2" || g.KV.Version != 2 {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	r = do(t, "GET", u+"/v1/namespaces/app", nil)
	if ns := decode[client.Namespace](t, r); r.status != 200 || ns.Keys != 1 {
		t.Errorf("describe: %d %s", r.status, r.body)
	}
	r = do(t, "DELETE", u+"/v1/ns/app/kv/a%2Fb%20c?prev_kv=true", nil)
	if d := decode[client.DeleteResult](t, r); r.status != 200 || d.Deleted != 1 || d.PrevKV == nil {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	r = do(t, "DELETE", u+"/v1/ns/app/kv/a%2Fb%20c", nil)
	if d := decode[client.DeleteResult](t, r); r.status != 200 || d.Deleted != 0 {
		t.Errorf("delete missing: %d %s", r.status, r.body)
	}

	// Scan with pagination, and with a prefix.
	for i := range 25 {
		if r := do(t, "PUT", fmt.Sprintf("%s/v1/ns/app/kv/k%02d", u, i), []byte("x")); r.status != 200 {
			t.Fatalf("put k%02d: %d %s", i, r.status, r.body)
		}
	}
	do(t, "PUT", u+"/v1/ns/app/kv/other", []byte("o"))
	var keys []string
	token := ""
	for pages := 0; ; pages++ {
		q := "?limit=10&end=l"
		if token != "" {
			q += "&page_token=" + token
		}
		r := do(t, "GET", u+"/v1/ns/app/scan"+q, nil)
		s := decode[client.ScanResult](t, r)
		if r.status != 200 || pages > 5 {
			t.Fatalf("scan page %d: %d %s", pages, r.status, r.body)
		}
		for _, kv := range s.KVs {
			keys = append(keys, string(kv.Key))
		}
		if !s.More {
			break
		}
		token = s.PageToken
	}
	if len(keys) != 25 || keys[0] != "k00" || keys[24] != "k24" {
		t.Errorf("paged scan got %d keys: %v", len(keys), keys)
	}
	r = do(t, "GET", u+"/v1/ns/app/scan?prefix=oth", nil)
	if s := decode[client.ScanResult](t, r); len(s.KVs) != 1 || string(s.KVs[0].Key) != "other" {
		t.Errorf("prefix scan: %s", r.body)
	}
	r = do(t, "GET", u+"/v1/ns/app/scan", nil)
	if s := decode[client.ScanResult](t, r); len(s.KVs) != 26 {
		t.Errorf("full scan: %d keys", len(s.KVs))
	}

	// Txn: compare-and-swap succeeds, then fails with 409 and the else
	// branch's result.
	txn := fmt.Sprintf(`{"compare":[{"key":%q,"target":"value","result":"equal","value":%q}],
		"then":[{"type":"put","key":%q,"value":%q}],"else":[{"type":"get","key":%q}]}`,
		b64("other"), b64("o"), b64("other"), b64("o2"), b64("other"))
	r = do(t, "POST", u+"/v1/ns/app/txn", []byte(txn))
	if tr := decode[client.TxnResult](t, r); r.status != 200 || !tr.Succeeded {
		t.Errorf("txn: %d %s", r.status, r.body)
	}
	r = do(t, "POST", u+"/v1/ns/app/txn", []byte(txn))
	tr := decode[client.TxnResult](t, r)
	if r.status != 409 || tr.Succeeded || len(tr.Results) != 1 || string(tr.Results[0].KVs[0].Value) != "o2" {
		t.Errorf("failed txn: %d %s", r.status, r.body)
	}
	if e := r.errBody(t); e.Code != client.CodeCompareFailed {
		t.Errorf("failed txn code %q", e.Code)
	}
	// A read-only txn runs as a query.
	r = do(t, "POST", u+"/v1/ns/app/txn", []byte(fmt.Sprintf(`{"then":[{"type":"range","key":%q,"end":%q}]}`, b64("k"), b64("l"))))
	if tr := decode[client.TxnResult](t, r); r.status != 200 || len(tr.Results[0].KVs) != 25 {
		t.Errorf("read-only txn: %d %s", r.status, r.body)
	}

	if r := do(t, "POST", u+"/v1/namespaces", []byte(`{"name":"tmp","mode":"paxos"}`)); r.status != 201 {
		t.Fatalf("create tmp: %d %s", r.status, r.body)
	}
	do(t, "PUT", u+"/v1/ns/tmp/kv/k", []byte("v"))
	if r := do(t, "DELETE", u+"/v1/namespaces/tmp", nil); r.status != 200 {
		t.Errorf("delete namespace: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", u+"/v1/ns/tmp/kv/k", nil); r.status != 404 || r.errBody(t).Code != client.CodeNamespaceNotFound {
		t.Errorf("get in a deleted namespace: %d %s", r.status, r.body)
	}

	r = do(t, "GET", u+"/v1/members", nil)
	if m := decode[client.MemberList](t, r); r.status != 200 || len(m.Members) != 3 || m.Leader != leader {
		t.Errorf("members: %d %s", r.status, r.body)
	}
	r = do(t, "GET", u+"/v1/views", nil)
	if v := decode[client.ViewList](t, r); r.status != 200 || len(v.Views) != 1 || len(v.Views[0].Members) != 3 {
		t.Errorf("views: %d %s", r.status, r.body)
	}
	r = do(t, "GET", u+"/v1/health", nil)
	if h := decode[client.Health](t, r); r.status != 200 || h.Status != "ok" || h.Leader != leader {
		t.Errorf("health: %d %s", r.status, r.body)
	}
	r = do(t, "GET", u+"/v1/status", nil)
	if s := decode[client.Status](t, r); r.status != 200 || s.Role != "follower" || s.Leader != leader || s.ClusterID != 42 {
		t.Errorf("status: %d %s", r.status, r.body)
	}
}

// TestErrors checks every error code, and that no refused request changed
// the data.
func TestErrors(t *testing.T) {
	c := startCluster(t, apitest.Options{Config: func(cfg *server.Config) {
		cfg.KV.KeyBytesMax = 64
		cfg.KV.ValueBytesMax = 1024
		cfg.KV.TxnOpsMax = 4
	}, API: httpapi.Config{BodyBytesMax: 4096}})
	u := c.URL(follower(t, c))
	if r := do(t, "POST", u+"/v1/namespaces", []byte(`{"name":"app","mode":"paxos"}`)); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	do(t, "PUT", u+"/v1/ns/app/kv/k", []byte("v"))
	snapshot := func() string {
		r := do(t, "GET", u+"/v1/ns/app/scan", nil)
		l := do(t, "GET", u+"/v1/namespaces", nil)
		var s client.ScanResult
		json.Unmarshal(r.body, &s)
		var nl client.NamespaceList
		json.Unmarshal(l.body, &nl)
		return fmt.Sprintf("%+v %+v", s.KVs, nl.Namespaces)
	}
	before := snapshot()
	big := strings.Repeat("x", 1025)
	longKey := strings.Repeat("k", 65)
	manyOps := `{"then":[` + strings.Repeat(`{"type":"put","key":"YQ==","value":"YQ=="},`, 4) + `{"type":"put","key":"YQ==","value":"YQ=="}]}`
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"malformed json ns", "POST", "/v1/namespaces", `{"name":`, nil, 400, client.CodeBadRequest},
		{"unknown field", "POST", "/v1/namespaces", `{"name":"x","mode":"paxos","colour":1}`, nil, 400, client.CodeBadRequest},
		{"trailing json", "POST", "/v1/namespaces", `{"name":"x","mode":"paxos"} {}`, nil, 400, client.CodeBadRequest},
		{"empty name", "POST", "/v1/namespaces", `{"mode":"paxos"}`, nil, 400, client.CodeBadRequest},
		{"bad name", "POST", "/v1/namespaces", `{"name":"a b","mode":"paxos"}`, nil, 400, client.CodeBadRequest},
		{"empty mode", "POST", "/v1/namespaces", `{"name":"x"}`, nil, 400, client.CodeBadRequest},
		{"unknown mode", "POST", "/v1/namespaces", `{"name":"x","mode":"weird"}`, nil, 400, client.CodeUnknownMode},
		{"active unavailable", "POST", "/v1/namespaces", `{"name":"x","mode":"active"}`, nil, 400, client.CodeModeUnavailable},
		{"quorum unsupported", "POST", "/v1/namespaces", `{"name":"x","mode":"quorum"}`, nil, 400, client.CodeModeUnavailable},
		{"exists", "POST", "/v1/namespaces", `{"name":"app","mode":"paxos"}`, nil, 409, client.CodeNamespaceExists},
		{"describe missing", "GET", "/v1/namespaces/nope", "", nil, 404, client.CodeNamespaceNotFound},
		{"delete missing ns", "DELETE", "/v1/namespaces/nope", "", nil, 404, client.CodeNamespaceNotFound},
		{"put missing ns", "PUT", "/v1/ns/nope/kv/k", "v", nil, 404, client.CodeNamespaceNotFound},
		{"get missing ns", "GET", "/v1/ns/nope/kv/k", "", nil, 404, client.CodeNamespaceNotFound},
		{"scan missing ns", "GET", "/v1/ns/nope/scan", "", nil, 404, client.CodeNamespaceNotFound},
		{"txn missing ns", "POST", "/v1/ns/nope/txn", `{"then":[{"type":"put","key":"YQ==","value":"YQ=="}]}`, nil, 404, client.CodeNamespaceNotFound},
		{"missing key", "GET", "/v1/ns/app/kv/nokey", "", nil, 404, client.CodeKeyNotFound},
		{"value too large", "PUT", "/v1/ns/app/kv/k", big, nil, 413, client.CodeTooLarge},
		{"key too large", "PUT", "/v1/ns/app/kv/" + longKey, "v", nil, 413, client.CodeTooLarge},
		{"get key too large", "GET", "/v1/ns/app/kv/" + longKey, "", nil, 413, client.CodeTooLarge},
		{"txn body too large", "POST", "/v1/ns/app/txn", `{"then":[{"type":"put","key":"YQ==","value":"` + b64(strings.Repeat("v", 4000)) + `"}]}`, nil, 413, client.CodeTooLarge},
		{"txn value too large", "POST", "/v1/ns/app/txn", `{"then":[{"type":"put","key":"YQ==","value":"` + b64(big) + `"}]}`, nil, 413, client.CodeTooLarge},
		{"txn too many ops", "POST", "/v1/ns/app/txn", manyOps, nil, 400, client.CodeBadRequest},
		{"txn bad op", "POST", "/v1/ns/app/txn", `{"then":[{"type":"frob","key":"YQ=="}]}`, nil, 400, client.CodeBadRequest},
		{"txn bad target", "POST", "/v1/ns/app/txn", `{"compare":[{"key":"YQ==","target":"colour","result":"equal"}]}`, nil, 400, client.CodeBadRequest},
		{"txn bad base64", "POST", "/v1/ns/app/txn", `{"then":[{"type":"put","key":"!!","value":"YQ=="}]}`, nil, 400, client.CodeBadRequest},
		{"txn get with value", "POST", "/v1/ns/app/txn", `{"then":[{"type":"get","key":"YQ==","value":"YQ=="}]}`, nil, 400, client.CodeBadRequest},
		{"empty key", "PUT", "/v1/ns/app/kv/", "v", nil, 400, client.CodeBadRequest},
		{"bad prev_kv", "PUT", "/v1/ns/app/kv/k?prev_kv=maybe", "v", nil, 400, client.CodeBadRequest},
		{"bad session", "PUT", "/v1/ns/app/kv/k", "v", []string{client.HeaderSession, "1-2"}, 400, client.CodeBadRequest},
		{"zero session", "PUT", "/v1/ns/app/kv/k", "v", []string{client.HeaderSession, "0:1"}, 400, client.CodeBadRequest},
		{"bad limit", "GET", "/v1/ns/app/scan?limit=-1", "", nil, 400, client.CodeBadRequest},
		{"bad token", "GET", "/v1/ns/app/scan?page_token=***", "", nil, 400, client.CodeBadRequest},
		{"unknown scan param", "GET", "/v1/ns/app/scan?colour=red", "", nil, 400, client.CodeBadRequest},
		{"add member bad json", "POST", "/v1/members", `{"id":`, nil, 400, client.CodeBadRequest},
		{"add member id 0", "POST", "/v1/members", `{"id":0,"peer_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, nil, 400, client.CodeBadRequest},
		{"add member bad addr", "POST", "/v1/members", `{"id":9,"peer_addr":"nowhere","http_addr":"127.0.0.1:2"}`, nil, 400, client.CodeBadRequest},
		{"add existing member", "POST", "/v1/members", `{"id":1,"peer_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, nil, 409, client.CodeMembership},
		{"remove bad id", "DELETE", "/v1/members/x", "", nil, 400, client.CodeBadRequest},
		{"remove non-member", "DELETE", "/v1/members/9", "", nil, 409, client.CodeMembership},
		{"no endpoint", "GET", "/v2/things", "", nil, 404, client.CodeNotFound},
		{"bad method", "PATCH", "/v1/ns/app/kv/k", "", nil, 405, client.CodeMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, u+tc.path, []byte(tc.body), tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if e := r.errBody(t); e.Code != tc.code || e.Message == "" {
				t.Errorf("error body %+v, want code %s and a message", e, tc.code)
			}
		})
	}
	if after := snapshot(); after != before {
		t.Errorf("refused requests changed the data:\nbefore %s\nafter  %s", before, after)
	}
}

// TestSessionRetry sends the same write twice with one session: it applies
// once (same index, version 1), and a lower seq is refused.
func TestSessionRetry(t *testing.T) {
	c := startCluster(t, apitest.Options{})
	u := c.URL(follower(t, c))
	do(t, "POST", u+"/v1/namespaces", []byte(`{"name":"app","mode":"paxos"}`))
	put := func(seq string) reply {
		return do(t, "PUT", u+"/v1/ns/app/kv/k", []byte("v"), client.HeaderSession, "77:"+seq)
	}
	r1, r2 := put("5"), put("5")
	if r1.status != 200 || string(r1.body) != string(r2.body) {
		t.Fatalf("retry answered differently: %d %s / %d %s", r1.status, r1.body, r2.status, r2.body)
	}
	g := decode[client.GetResult](t, do(t, "GET", u+"/v1/ns/app/kv/k", nil))
	if g.KV.Version != 1 {
		t.Errorf("version %d after a retried put, want 1 (applied once)", g.KV.Version)
	}
	if r := put("4"); r.status != 400 || r.errBody(t).Code != client.CodeStaleSession {
		t.Errorf("stale seq: %d %s", r.status, r.body)
	}
}

// TestUnavailable stops two of three members: requests get 503 with
// Retry-After, and health says unavailable.
func TestUnavailable(t *testing.T) {
	c := startCluster(t, apitest.Options{API: httpapi.Config{RequestTimeout: 500 * time.Millisecond}})
	leader, _ := c.WaitLeader(context.Background())
	do(t, "POST", c.URL(leader)+"/v1/namespaces", []byte(`{"name":"app","mode":"paxos"}`))
	var left uint64
	for id := range c.Servers {
		if id != leader && left == 0 {
			left = id
			continue
		}
	}
	for id := range c.Servers {
		if id != left {
			if err := c.StopMember(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	u := c.URL(left)
	for _, req := range []struct{ method, path, body string }{
		{"PUT", "/v1/ns/app/kv/k", "v"},
		{"GET", "/v1/ns/app/kv/k", ""},
		{"GET", "/v1/namespaces", ""},
	} {
		r := do(t, req.method, u+req.path, []byte(req.body))
		if r.status != 503 || r.header.Get("Retry-After") == "" || r.errBody(t).Code != client.CodeUnavailable {
			t.Errorf("%s %s with no quorum: %d %v %s", req.method, req.path, r.status, r.header, r.body)
		}
	}
}

// TestBatch: a batch through a follower (forwarded whole) runs each op as on
// its own endpoint, with per-op errors; an over-limit batch is refused.
func TestBatch(t *testing.T) {
	c := startCluster(t, apitest.Options{Config: func(cfg *server.Config) { cfg.KV.ValueBytesMax = 1024 }})
	u := c.URL(follower(t, c))
	do(t, "POST", u+"/v1/namespaces", []byte(`{"name":"app","mode":"paxos"}`))
	body := fmt.Sprintf(`{"ops":[
		{"ns":"app","type":"put","key":%q,"value":%q,"session":"5:1"},
		{"ns":"app","type":"put","key":%q,"value":%q},
		{"ns":"nope","type":"put","key":%q,"value":%q},
		{"ns":"app","type":"get","key":%q},
		{"ns":"app","type":"put","key":%q,"value":%q},
		{"ns":"app","type":"frob","key":%q},
		{"ns":"app","type":"delete","key":%q,"prev_kv":true},
		{"ns":"app","type":"put","key":%q,"value":"","session":"0:1"}]}`,
		b64("a"), b64("1"), b64("b"), b64("2"), b64("c"), b64("3"), b64("missing"),
		b64("big"), b64(strings.Repeat("x", 1025)), b64("a"), b64("b"), b64("d"))
	r := do(t, "POST", u+"/v1/batch", []byte(body))
	if r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	res := decode[client.BatchResponse](t, r).Results
	want := []struct {
		status int
		code   string
	}{{200, ""}, {200, ""}, {404, client.CodeNamespaceNotFound}, {404, client.CodeKeyNotFound},
		{413, client.CodeTooLarge}, {400, client.CodeBadRequest}, {200, ""}, {400, client.CodeBadRequest}}
	if len(res) != len(want) {
		t.Fatalf("%d results for %d ops: %s", len(res), len(want), r.body)
	}
	for i, w := range want {
		if res[i].Status != w.status || res[i].Code != w.code {
			t.Errorf("op %d: %+v, want status %d code %q", i, res[i], w.status, w.code)
		}
	}
	if res[6].Deleted != 1 || res[6].PrevKV == nil || string(res[6].PrevKV.Value) != "2" {
		t.Errorf("delete in a batch: %+v", res[6])
	}
	// The session of op 0 makes a resent batch op a no-op.
	r = do(t, "POST", u+"/v1/batch", []byte(fmt.Sprintf(`{"ops":[{"ns":"app","type":"put","key":%q,"value":%q,"session":"5:1"},{"ns":"app","type":"get","key":%q}]}`,
		b64("a"), b64("1"), b64("a"))))
	res = decode[client.BatchResponse](t, r).Results
	if len(res) != 2 || res[1].KV == nil || res[1].KV.Version != 1 {
		t.Errorf("resent batch op applied again: %s", r.body)
	}
	ops := strings.Repeat(`{"ns":"app","type":"get","key":"YQ=="},`, 1024) + `{"ns":"app","type":"get","key":"YQ=="}`
	if r := do(t, "POST", u+"/v1/batch", []byte(`{"ops":[`+ops+`]}`)); r.status != 400 || r.errBody(t).Code != client.CodeBadRequest {
		t.Errorf("batch of 1025 ops: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", u+"/v1/batch", []byte(`{"ops":`)); r.status != 400 {
		t.Errorf("malformed batch: %d %s", r.status, r.body)
	}
}
