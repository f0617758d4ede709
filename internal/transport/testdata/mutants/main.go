// Command mutants plants known bugs in package transport, one at a time, and
// checks that the tests which claim to catch each bug fail. The source tree
// is never modified: each mutant is a copy of one file handed to
// `go test -overlay`.
//
// Run from the repository root:
//
//	go run ./internal/transport/testdata/mutants
//
// An argument runs only the mutants whose name contains it. It exits
// non-zero if a mutant survives (its tests pass) or no longer applies (the
// code it patches changed).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type mutant struct {
	name  string
	file  string // in internal/transport
	from  string // must occur exactly once
	to    string
	tests string // -run pattern of the tests that must fail
}

var mutants = []mutant{
	{"acceptor sends no keep-alives", "tcp_inbound.go",
		"if err := writeAll(conn, keepAliveFrame[:], t.cfg.WriteTimeout); err != nil {",
		"if err := error(nil); err != nil {",
		"^TestTCPIdleConnectionSurvives$"},
	{"dialer sends no keep-alives", "tcp.go",
		"case <-keepAlive.C:\n\t\t\tif err := writeAll(conn, keepAliveFrame[:], cfg.WriteTimeout); err != nil {",
		"case <-keepAlive.C:\n\t\t\tif err := error(nil); err != nil {",
		"^TestTCPIdleConnectionSurvives$"},
	{"no read idle deadline", "frame.go",
		"if err := r.conn.SetReadDeadline(time.Now().Add(r.idle)); err != nil {",
		"if err := r.conn.SetReadDeadline(time.Time{}); err != nil {",
		"^(TestTCPDeadAcceptorNoticed|TestTCPDeadDialerNoticed)$"},
	{"no write deadline", "tcp.go",
		"if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {",
		"if err := conn.SetWriteDeadline(time.Time{}); err != nil {",
		"^TestTCPStuckPeerWriteDeadline$"},
	{"frame limit not enforced on read", "frame.go",
		"if uint64(n) > uint64(fr.frameBytesMax) {",
		"if false {",
		"^(TestFrameReader|TestTCPBadInput)$"},
	{"Send does not check FrameBytesMax", "tcp.go",
		"if n > t.cfg.FrameBytesMax {\n\t\tt.refusedTooLarge.Add(1)",
		"if false {\n\t\tt.refusedTooLarge.Add(1)",
		"^TestSendRefusals$/tcp"},
	{"queue frame bound ignored", "queue.go",
		"if q.frames+1 > q.limits.SendQueueFramesMax || q.bytes+frameBytes > q.limits.SendQueueBytesMax {",
		"if q.bytes+frameBytes > q.limits.SendQueueBytesMax {",
		"^(TestDownPeerBounded|TestQueueDropsNewest)$"},
	{"queue drops oldest silently instead of refusing newest", "queue.go",
		"\t\tif countDrop {\n\t\t\tq.dropped++\n\t\t}\n\t\tq.mu.Unlock()\n\t\treturn pushFull",
		"\t\tif countDrop {\n\t\t\tq.dropped++\n\t\t}\n\t\tq.mu.Unlock()\n\t\tif b, ok := q.pop(); ok && countDrop {\n\t\t\t_ = b\n\t\t\treturn q.enqueue(env, bodyBytes, false)\n\t\t}\n\t\treturn pushFull",
		"^(TestDownPeerBounded|TestQueueDropsNewest)$"},
	{"batches popped newest first", "queue.go",
		"b := q.batches[0]\n\tq.batches[0] = batch{}\n\tq.batches = q.batches[1:]",
		"b := q.batches[len(q.batches)-1]\n\tq.batches = q.batches[:len(q.batches)-1]",
		"^(TestIntegrity|TestQueueBatchesInOrder)$"},
	{"body read past its frame", "frame.go",
		"end := min(cap(body), want)",
		"end := min(cap(body), want+1)",
		"^(TestIntegrity|TestFrameReader)$"},
	{"cluster id not checked", "frame.go",
		"case h.cluster != cluster:",
		"case false:",
		"^TestTCPBadInput$/wrong_cluster"},
	{"wire version not checked", "frame.go",
		"case h.version != wire.Version:",
		"case false:",
		"^TestTCPBadInput$/wrong_version"},
	{"dialer trusts whoever answers", "frame.go",
		"case wantFrom != peer.None && h.from != wantFrom:",
		"case false:",
		"^TestTCPWrongMemberAnswers$"},
	{"envelope sender not checked against the hello", "tcp_inbound.go",
		"if env.From != ic.from || env.To != t.cfg.ID {",
		"if env.To != t.cfg.ID {",
		"^TestTCPBadInput$/envelope_from_another_member"},
	{"new connection does not wait for the old one", "tcp_inbound.go",
		"\tif old != nil {\n\t\t// The old connection's last Handler call must return before ours\n\t\t// start, and before ours end (a newer connection waits on ic.done).\n\t\t<-old.done\n\t}",
		"\t_ = old",
		"^TestTCPTakeOverKeepsOrder$"},
	{"failed write not counted as lost", "tcp.go",
		"p.lostFrames.Add(uint64(b.frames))\n\t\t\t\treturn err",
		"return err",
		"^TestTCPStuckPeerWriteDeadline$"},
	{"InboundConnsMax not enforced", "tcp_inbound.go",
		"if t.closed || t.inboundN >= t.cfg.InboundConnsMax {",
		"if t.closed {",
		"^TestTCPInboundConnsMax$"},
	{"no dial backoff", "tcp.go",
		"\t\t\tdelay = p.grow(delay)\n\t\t\tcontinue",
		"\t\t\tcontinue",
		"^TestTCPDialBackoff$"},
	{"mem partition ignored", "mem.go",
		"return !n.isolated[from] && !n.isolated[to] && !n.cut[pairOf(from, to)]",
		"return !n.isolated[from] && !n.isolated[to]",
		"^TestMemPartitionAndIsolate$"},
	{"mem handler called after Close", "mem.go",
		"\tif e.recvClosed {\n\t\te.recvMu.Unlock()\n\t\treturn false\n\t}",
		"",
		"^TestMemCloseRefusesDeliveries$"},
}

func main() {
	pkg, err := filepath.Abs("internal/transport")
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(filepath.Join(pkg, "transport.go")); err != nil {
		fail(fmt.Errorf("run from the repository root: %w", err))
	}
	tmp, err := os.MkdirTemp("", "transport-mutants")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	bad, ran := 0, 0
	for i, m := range mutants {
		if len(os.Args) > 1 && !strings.Contains(m.name, os.Args[1]) {
			continue
		}
		ran++
		src, err := os.ReadFile(filepath.Join(pkg, m.file))
		if err != nil {
			fail(err)
		}
		if n := strings.Count(string(src), m.from); n != 1 {
			fmt.Printf("STALE     %-55s %q occurs %d times in %s\n", m.name, firstLine(m.from), n, m.file)
			bad++
			continue
		}
		mutated := filepath.Join(tmp, fmt.Sprintf("%d_%s", i, m.file))
		if err := os.WriteFile(mutated, []byte(strings.Replace(string(src), m.from, m.to, 1)), 0o644); err != nil {
			fail(err)
		}
		overlay := filepath.Join(tmp, fmt.Sprintf("%d.json", i))
		js, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(pkg, m.file): mutated}})
		if err := os.WriteFile(overlay, js, 0o644); err != nil {
			fail(err)
		}
		start := time.Now()
		cmd := exec.Command("go", "test", "-count=1", "-timeout=120s", "-overlay="+overlay, "-run="+m.tests, ".")
		cmd.Dir = pkg
		out, err := cmd.CombinedOutput()
		switch {
		case err == nil:
			fmt.Printf("SURVIVED  %-55s tests %s passed\n", m.name, m.tests)
			bad++
		case strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "setup failed"):
			fmt.Printf("BROKEN    %-55s does not compile:\n%s\n", m.name, out)
			bad++
		default:
			fmt.Printf("caught    %-55s by %s (%v)\n          %s\n", m.name, m.tests, time.Since(start).Round(100*time.Millisecond), evidence(string(out)))
		}
	}
	if bad > 0 {
		fmt.Printf("%d of %d mutants not caught\n", bad, ran)
		os.Exit(1)
	}
	fmt.Printf("all %d mutants caught\n", ran)
}

// evidence is the first test failure message in a go test output.
func evidence(out string) string {
	for l := range strings.Lines(out) {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "_test.go:") || strings.HasPrefix(l, "panic:") {
			if len(l) > 160 {
				l = l[:160] + "..."
			}
			return l
		}
	}
	return "(no failure message: timeout or crash)"
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}
