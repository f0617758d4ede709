package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/internal/httpapi/apitest"
)

// e2eCluster is three `chorus server` processes on loopback.
type e2eCluster struct {
	t         *testing.T
	bin, dir  string
	peers     string
	httpPeers string
	peerAddr  map[int]string
	httpAddr  map[int]string
	procs     map[int]*exec.Cmd
	exited    map[int]chan error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chorus")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func newE2ECluster(t *testing.T, bin string) *e2eCluster {
	addrs, err := apitest.FreeAddrs(6)
	if err != nil {
		t.Fatal(err)
	}
	c := &e2eCluster{t: t, bin: bin, dir: t.TempDir(), peerAddr: map[int]string{}, httpAddr: map[int]string{},
		procs: map[int]*exec.Cmd{}, exited: map[int]chan error{}}
	var ps, hs []string
	for i := 1; i <= 3; i++ {
		c.peerAddr[i], c.httpAddr[i] = addrs[2*i-2], addrs[2*i-1]
		ps = append(ps, fmt.Sprintf("%d=%s", i, c.peerAddr[i]))
		hs = append(hs, fmt.Sprintf("%d=%s", i, c.httpAddr[i]))
	}
	c.peers, c.httpPeers = strings.Join(ps, ","), strings.Join(hs, ",")
	t.Cleanup(func() {
		for id := range c.procs {
			c.kill(id)
		}
	})
	return c
}

// serverArgs are member id's flags, with extra ones appended.
func (c *e2eCluster) serverArgs(id int, extra ...string) []string {
	return append([]string{"server", "--id", fmt.Sprint(id), "--cluster-id", "9",
		"--data-dir", filepath.Join(c.dir, fmt.Sprint(id)), "--bootstrap",
		"--listen-peer", c.peerAddr[id], "--listen-http", c.httpAddr[id],
		"--peers", c.peers, "--http-peers", c.httpPeers, "--tick-interval", "20ms", "--log-format", "json"}, extra...)
}

func (c *e2eCluster) start(id int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, c.serverArgs(id)...)
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("log%d", id)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait(); logf.Close() }()
	c.procs[id], c.exited[id] = cmd, ch
}

func (c *e2eCluster) kill(id int) {
	if p := c.procs[id]; p != nil {
		p.Process.Signal(syscall.SIGKILL)
		<-c.exited[id]
		delete(c.procs, id)
	}
}

func (c *e2eCluster) endpoints() string {
	return c.httpAddr[1] + "," + c.httpAddr[2] + "," + c.httpAddr[3]
}

func (c *e2eCluster) log(id int) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("log%d", id)))
	return string(b)
}

// cli runs the binary with CHORUS_ENDPOINTS set and returns stdout, stderr
// and the exit code.
func (c *e2eCluster) cli(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "CHORUS_ENDPOINTS="+c.endpoints())
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	c.t.Fatalf("chorus %v: %v", args, err)
	return "", "", -1
}

// want runs the CLI and checks its exit code, and that stdout contains
// every string of contains.
func (c *e2eCluster) want(code int, stdin string, args []string, contains ...string) string {
	c.t.Helper()
	out, errOut, got := c.cli(stdin, args...)
	if got != code {
		c.t.Errorf("chorus %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errOut)
		return out
	}
	for _, s := range contains {
		if !strings.Contains(out+errOut, s) {
			c.t.Errorf("chorus %s: output lacks %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), s, out, errOut)
		}
	}
	return out
}

func waitHealthy(ctx context.Context, t *testing.T, cl *client.Client, eps []string) uint64 {
	t.Helper()
	for {
		var leader uint64
		ok := true
		for _, ep := range eps {
			st, err := cl.Status(ctx, ep)
			if err != nil || st.Leader == 0 || (leader != 0 && st.Leader != leader) {
				ok = false
				break
			}
			leader = st.Leader
		}
		if ok {
			return leader
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster not healthy: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestE2E starts three real server processes and drives them with the CLI
// binary and the client package: every command, -o json, exit codes, bad
// flags, data directory refusals, an oversized value, a SIGKILLed leader and
// its restart, and a graceful shutdown.
func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bin := buildBinary(t)
	c := newE2ECluster(t, bin)
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	eps := strings.Split(c.endpoints(), ",")
	cl, err := client.New(client.Config{Endpoints: eps, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	leader := waitHealthy(ctx, t, cl, eps)
	t.Logf("leader is member %d", leader)

	t.Run("cli", func(t *testing.T) {
		c.t = t
		defer func() { c.t = nil }()
		c.want(0, "", []string{"ns", "create", "app", "--param", "owner=me"}, "app", "paxos", "owner=me")
		c.want(1, "", []string{"ns", "create", "app"}, "namespace_exists")
		c.want(1, "", []string{"ns", "create", "x", "--mode", "active"}, "mode_unavailable", "active")
		c.want(1, "", []string{"ns", "create", "x", "--mode", "nonsense"}, "unknown_mode")
		out := c.want(0, "", []string{"ns", "list", "-o", "json"})
		var nl client.NamespaceList
		if err := json.Unmarshal([]byte(out), &nl); err != nil || len(nl.Namespaces) != 1 {
			t.Errorf("ns list -o json: %v %q", err, out)
		}
		c.want(0, "", []string{"ns", "list"}, "NAME", "app")
		c.want(0, "", []string{"ns", "get", "app"}, "app")
		c.want(3, "", []string{"ns", "get", "nope"}, "namespace_not_found")
		c.want(0, "", []string{"ns", "create", "gone"})
		c.want(0, "", []string{"ns", "delete", "gone"}, "namespace gone deleted")
		c.want(3, "", []string{"ns", "delete", "gone"}, "namespace_not_found")

		c.want(0, "", []string{"kv", "put", "-n", "app", "greeting", "hello"}, "OK index=")
		c.want(0, "from stdin", []string{"kv", "put", "-n", "app", "piped"}, "OK")
		c.want(0, "", []string{"kv", "put", "-n", "app", "greeting", "hi", "--prev-kv"}, "hello")
		c.want(0, "", []string{"kv", "get", "-n", "app", "greeting"}, "KEY", "hi")
		if out := c.want(0, "", []string{"kv", "get", "-n", "app", "piped", "-o", "value"}); out != "from stdin" {
			t.Errorf("kv get -o value = %q", out)
		}
		out = c.want(0, "", []string{"kv", "get", "-n", "app", "greeting", "-o", "json"})
		var g client.GetResult
		if err := json.Unmarshal([]byte(out), &g); err != nil || string(g.KV.Value) != "hi" || g.KV.Version != 2 {
			t.Errorf("kv get -o json: %v %q", err, out)
		}
		c.want(3, "", []string{"kv", "get", "-n", "app", "missing"}, "key_not_found")
		c.want(3, "", []string{"kv", "get", "-n", "nope", "k"}, "namespace_not_found")
		c.want(3, "", []string{"kv", "put", "-n", "nope", "k", "v"}, "namespace_not_found")
		for i := range 7 {
			c.want(0, "", []string{"kv", "put", "-n", "app", fmt.Sprintf("p/%d", i), "v"})
		}
		c.want(0, "", []string{"kv", "scan", "-n", "app", "--prefix", "p/"}, "p/0", "p/6")
		c.want(0, "", []string{"kv", "scan", "-n", "app", "--prefix", "p/", "--limit", "3"}, "more keys")
		out = c.want(0, "", []string{"kv", "scan", "-n", "app", "--prefix", "p/", "--limit", "3", "--all", "-o", "json"})
		var sr client.ScanResult
		if err := json.Unmarshal([]byte(out), &sr); err != nil || len(sr.KVs) != 7 || sr.More {
			t.Errorf("kv scan --all -o json: %v %q", err, out)
		}
		c.want(0, "", []string{"kv", "scan", "-n", "app", "a", "h"}, "greeting")
		c.want(0, "", []string{"kv", "del", "-n", "app", "p/0", "--prev-kv"}, "deleted 1")
		c.want(0, "", []string{"kv", "del", "-n", "app", "p/0"}, "deleted 0")

		k, v := b64("greeting"), b64("hi")
		txn := fmt.Sprintf(`{"compare":[{"key":%q,"target":"value","result":"equal","value":%q}],"then":[{"type":"put","key":%q,"value":%q}],"else":[{"type":"get","key":%q}]}`,
			k, v, k, b64("hey"), k)
		c.want(0, txn, []string{"kv", "txn", "-n", "app"}, "succeeded=true")
		c.want(4, txn, []string{"kv", "txn", "-n", "app"}, "succeeded=false", "hey", "compare_failed")
		out = c.want(4, txn, []string{"kv", "txn", "-n", "app", "-o", "json"})
		var tr client.TxnResult
		if err := json.Unmarshal([]byte(out), &tr); err != nil || tr.Succeeded {
			t.Errorf("kv txn -o json: %v %q", err, out)
		}
		c.want(2, "{not json", []string{"kv", "txn", "-n", "app"}, "txn JSON")

		c.want(0, "", []string{"members"}, "PEER_ADDR", c.httpAddr[1], "true")
		out = c.want(0, "", []string{"members", "-o", "json"})
		var ml client.MemberList
		if err := json.Unmarshal([]byte(out), &ml); err != nil || len(ml.Members) != 3 || ml.Leader == 0 {
			t.Errorf("members -o json: %v %q", err, out)
		}
		c.want(0, "", []string{"status"}, "leader", "follower")
		out = c.want(0, "", []string{"status", "-o", "json"})
		var sts []client.Status
		if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 3 {
			t.Errorf("status -o json: %v %q", err, out)
		}
		c.want(0, "", []string{"completion", "bash"}, "bash completion")

		// An oversized value: refused with 413, exit 1, nothing written.
		c.want(1, strings.Repeat("x", 600<<10), []string{"kv", "put", "-n", "app", "big"}, "too_large")
		c.want(3, "", []string{"kv", "get", "-n", "app", "big"})

		// Bad flags and arguments: exit 2.
		for _, args := range [][]string{
			{"kv", "get", "k"}, // no --ns
			{"kv", "get", "-n", "app"},
			{"kv", "get", "-n", "app", "a", "b"},
			{"kv", "get", "-n", "app", "k", "-o", "yaml"},
			{"kv", "scan", "-n", "app", "--limit", "-1"},
			{"kv", "put", "-n", "app", "k", "v", "--timeout", "0s"},
			{"kv", "put", "-n", "app", "k", "v", "--endpoints", "http://"},
			{"ns", "create", "x", "--param", "novalue"},
			{"members", "--no-such-flag"},
			{"server", "--id", "x"},
			{"server", "--id", "1", "--cluster-id", "1", "--data-dir", c.dir + "/z", "--peers", "1=a"},
			{"server", "--id", "1", "--cluster-id", "1", "--data-dir", c.dir + "/z", "--log-format", "xml"},
			{"server", "--cluster-id", "1", "--data-dir", c.dir + "/z"}, // no --id
		} {
			c.want(2, "", args)
		}
		// Environment variables and a config file feed the same flags.
		cfg := filepath.Join(c.dir, "bad.json")
		os.WriteFile(cfg, []byte(`{"id": 1, "cluster-id": 1, "colour": "red"}`), 0o644)
		c.want(2, "", []string{"server", "--config", cfg}, `unknown key "colour"`)
		os.WriteFile(cfg, []byte(`{"id": 1, "cluster-id": 1, "data-dir": "/nonexistent/parent/dir"}`), 0o644)
		c.want(exitDataDir, "", []string{"server", "--config", cfg}, "parent")
		// An empty data directory without --bootstrap or --join.
		empty := filepath.Join(c.dir, "empty")
		c.want(exitDataDir, "", []string{"server", "--id", "1", "--cluster-id", "1", "--data-dir", empty,
			"--listen-http", "127.0.0.1:0", "--listen-peer", "127.0.0.1:1"}, "--bootstrap")
	})
	c.t = t
	if t.Failed() {
		t.Logf("member logs:\n%s", c.log(int(leader)))
		return
	}

	t.Run("client", func(t *testing.T) {
		if _, err := cl.CreateNamespace(ctx, client.NamespaceSpec{Name: "go", Mode: "paxos"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.CreateNamespace(ctx, client.NamespaceSpec{Name: "go", Mode: "paxos"}); !errors.Is(err, client.ErrExists) {
			t.Errorf("second create: %v", err)
		}
		if _, err := cl.Put(ctx, "go", []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if r, err := cl.Get(ctx, "go", []byte("k")); err != nil || string(r.KV.Value) != "v" {
			t.Errorf("get: %v %+v", err, r)
		}
		var ce *client.Error
		if _, err := cl.Get(ctx, "go", []byte("none")); !errors.Is(err, client.ErrKeyNotFound) || !errors.As(err, &ce) || ce.HTTPStatus != 404 {
			t.Errorf("get missing: %v", err)
		}
		if _, err := cl.Put(ctx, "nope", []byte("k"), nil); !errors.Is(err, client.ErrNamespaceNotFound) {
			t.Errorf("put to a missing namespace: %v", err)
		}
		res, err := cl.Txn(ctx, "go", client.Txn{
			Compares: []client.Compare{{Key: []byte("k"), Target: client.TargetVersion, Result: client.ResultEqual, Version: 7}},
			Else:     []client.Op{{Type: client.OpGet, Key: []byte("k")}},
		})
		if !errors.Is(err, client.ErrCompareFailed) || res.Succeeded || len(res.Results) != 1 {
			t.Errorf("failed txn: %v %+v", err, res)
		}
		if nss, err := cl.Namespaces(ctx); err != nil || len(nss) != 2 {
			t.Errorf("namespaces: %v %+v", err, nss)
		}
		if ms, err := cl.Members(ctx); err != nil || len(ms.Members) != 3 {
			t.Errorf("members: %v %+v", err, ms)
		}
		if vs, err := cl.Views(ctx); err != nil || len(vs.Views) != 1 {
			t.Errorf("views: %v %+v", err, vs)
		}
		if sr, err := cl.Scan(ctx, "go", client.ScanRequest{}); err != nil || len(sr.KVs) != 1 {
			t.Errorf("scan: %v %+v", err, sr)
		}
	})

	t.Run("failover", func(t *testing.T) {
		// SIGKILL the leader; writes continue through the survivors (the
		// client finds the new leader), then the old leader restarts and
		// catches up.
		c.t = t
		c.kill(int(leader))
		// Another cluster's data directory: refused with exit 5.
		args := c.serverArgs(int(leader))
		for i, a := range args {
			if a == "--cluster-id" {
				args[i+1] = "1234"
			}
		}
		c.want(exitDataDir, "", args, "another cluster")
		for i := range 20 {
			if _, err := cl.Put(ctx, "go", []byte(fmt.Sprintf("after/%d", i)), []byte("v")); err != nil {
				t.Fatalf("put %d after killing the leader: %v", i, err)
			}
		}
		c.start(int(leader))
		newLeader := waitHealthy(ctx, t, cl, eps)
		var want uint64
		for {
			st, err := cl.Status(ctx, c.httpAddr[int(newLeader)])
			if err != nil {
				t.Fatal(err)
			}
			want = st.Commit
			back, err := cl.Status(ctx, c.httpAddr[int(leader)])
			if err == nil && back.Applied >= want {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("restarted member %d did not catch up to %d: %+v %v", leader, want, back, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		// The restarted member answers (forwarding to the leader if needed).
		one, err := client.New(client.Config{Endpoints: []string{c.httpAddr[int(leader)]}})
		if err != nil {
			t.Fatal(err)
		}
		sr, err := one.Scan(ctx, "go", client.ScanRequest{Prefix: []byte("after/")})
		if err != nil || len(sr.KVs) != 20 {
			t.Errorf("scan through the restarted member: %v, %d keys", err, len(sr.KVs))
		}
	})

	t.Run("join", func(t *testing.T) {
		// A fourth member: added through the API, started with --join and
		// only its own HTTP address; it learns the others' through the log,
		// catches up, serves (forwarding), and is removed again.
		c.t = t
		addrs, err := apitest.FreeAddrs(2)
		if err != nil {
			t.Fatal(err)
		}
		c.peerAddr[4], c.httpAddr[4] = addrs[0], addrs[1]
		c.want(0, "", []string{"members", "add", "4", "--peer-addr", addrs[0], "--http-addr", addrs[1]}, "member 4 added")
		c.want(1, "", []string{"members", "add", "4", "--peer-addr", addrs[0], "--http-addr", addrs[1]}, "membership_refused")
		c.want(2, "", []string{"members", "add", "0", "--peer-addr", addrs[0], "--http-addr", addrs[1]})
		args := []string{"server", "--id", "4", "--cluster-id", "9", "--data-dir", filepath.Join(c.dir, "4"), "--join",
			"--listen-peer", addrs[0], "--listen-http", addrs[1], "--peers", c.peers + ",4=" + addrs[0],
			"--tick-interval", "20ms", "--log-format", "json"}
		cmd := exec.Command(c.bin, args...)
		logf, err := os.Create(filepath.Join(c.dir, "log4"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ch := make(chan error, 1)
		go func() { ch <- cmd.Wait(); logf.Close() }()
		c.procs[4], c.exited[4] = cmd, ch
		four, err := client.New(client.Config{Endpoints: []string{addrs[1]}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			r, err := four.Get(ctx, "go", []byte("after/19"))
			if err == nil && string(r.KV.Value) == "v" {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the joined member never served a read: %v\n%s", err, c.log(4))
			case <-time.After(50 * time.Millisecond):
			}
		}
		st, err := four.Status(ctx, addrs[1])
		if err != nil || len(st.Members) != 4 || st.LeaderHTTP == "" {
			t.Errorf("joined member's status: %v %+v", err, st)
		}
		c.want(0, "", []string{"members", "remove", "4"}, "member 4 removed")
		out := c.want(0, "", []string{"members", "-o", "json"})
		var ml client.MemberList
		if err := json.Unmarshal([]byte(out), &ml); err != nil || len(ml.Members) != 3 {
			t.Errorf("members after removing 4: %v %s", err, out)
		}
		c.kill(4)
	})

	t.Run("shutdown", func(t *testing.T) {
		// SIGTERM: graceful shutdown, exit 0.
		for id, p := range c.procs {
			p.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-c.exited[id]:
				if err != nil {
					t.Errorf("member %d exited with %v after SIGTERM\n%s", id, err, c.log(id))
				}
			case <-time.After(15 * time.Second):
				t.Errorf("member %d did not stop after SIGTERM", id)
				p.Process.Kill()
				<-c.exited[id]
			}
			delete(c.procs, id)
		}
		if !strings.Contains(c.log(1), `"msg":"shutting down"`) {
			t.Errorf("member 1's JSON log lacks the shutdown:\n%s", c.log(1))
		}
	})
}

func b64(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}
