package smr

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/vfs"
)

// Environment of a member process started by BenchmarkProposeProcesses: the
// test binary re-executes itself, and TestMain runs the member instead of
// the tests.
const (
	envMemberID    = "SMR_BENCH_MEMBER_ID"
	envMemberPeers = "SMR_BENCH_MEMBER_PEERS" // id=addr,id=addr,...
	envMemberDir   = "SMR_BENCH_MEMBER_DIR"
)

func TestMain(m *testing.M) {
	if os.Getenv(envMemberID) != "" {
		if err := runMemberProcess(); err != nil {
			fmt.Fprintln(os.Stderr, "member process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMemberProcess runs one follower member until its stdin closes. On
// stdin, "reset" zeroes its fsync counter and "report" prints it.
func runMemberProcess() error {
	id, err := strconv.ParseUint(os.Getenv(envMemberID), 10, 64)
	if err != nil {
		return err
	}
	var peers []Peer
	for _, kv := range strings.Split(os.Getenv(envMemberPeers), ",") {
		k, v, _ := strings.Cut(kv, "=")
		pid, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return err
		}
		peers = append(peers, Peer{ID: MemberID(pid), Addr: v})
	}
	var syncs atomic.Int64
	cfg := benchProcessConfig(MemberID(id), peers, os.Getenv(envMemberDir))
	cfg.fs = countingFS{FS: vfs.OS, syncs: &syncs}
	// A follower process campaigns only long after the benchmark's own
	// member has: the load is generated in the benchmark's process, so that
	// member must lead.
	cfg.ElectionTicks *= 20
	m, err := Start(context.Background(), cfg, &recorder{})
	if err != nil {
		return err
	}
	defer m.Close()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "reset":
			syncs.Store(0)
			fmt.Println("ok")
		case "report":
			fmt.Println(syncs.Load())
		}
	}
	return m.Close()
}

func benchProcessConfig(id MemberID, peers []Peer, dir string) Config {
	cfg := DefaultConfig(77, id, peers, dir)
	cfg.Bootstrap = true
	cfg.TickInterval = 10 * time.Millisecond
	cfg.SnapshotEntries = 0
	return cfg
}

// memberProcess is a child running one member.
type memberProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (p *memberProcess) ask(line string) (string, error) {
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		return "", err
	}
	if !p.out.Scan() {
		return "", fmt.Errorf("member process: no answer to %q: %v", line, p.out.Err())
	}
	return p.out.Text(), nil
}

// BenchmarkProposeProcesses is BenchmarkPropose with members 2 and 3 in
// their own processes (this test binary, re-executed), so the three WALs
// and the transport's goroutines do not share one Go runtime. Member 1 runs
// in the benchmark's process, which generates the load and leads (the
// others have a much longer election timeout).
func BenchmarkProposeProcesses(b *testing.B) {
	for _, proposers := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			benchProposeProcesses(b, proposers)
		})
	}
}

func benchProposeProcesses(b *testing.B, proposers int) {
	dir := b.TempDir()
	addrs := freeAddrs(b, 3)
	peers := []Peer{{1, addrs[0]}, {2, addrs[1]}, {3, addrs[2]}}
	var spec []string
	for _, p := range peers {
		spec = append(spec, fmt.Sprintf("%d=%s", p.ID, p.Addr))
	}
	var children []*memberProcess
	for _, id := range []MemberID{2, 3} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(),
			envMemberID+"="+strconv.FormatUint(uint64(id), 10),
			envMemberPeers+"="+strings.Join(spec, ","),
			envMemberDir+"="+fmt.Sprintf("%s/m%d", dir, id))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		p := &memberProcess{cmd: cmd, in: in, out: bufio.NewScanner(out)}
		children = append(children, p)
		b.Cleanup(func() {
			p.in.Close()
			if err := p.cmd.Wait(); err != nil {
				b.Errorf("member process %d: %v", id, err)
			}
		})
	}

	var syncs atomic.Int64
	cfg := benchProcessConfig(1, peers, fmt.Sprintf("%s/m1", dir))
	cfg.fs = countingFS{FS: vfs.OS, syncs: &syncs}
	m, err := Start(context.Background(), cfg, &recorder{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Wait for member 1 to lead: the children's timeouts are far longer.
	for {
		if _, err := m.Propose(ctx, []byte("warm-up")); err == nil {
			break
		} else if ctx.Err() != nil {
			b.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, p := range children {
		if _, err := p.ask("reset"); err != nil {
			b.Fatal(err)
		}
	}
	syncs.Store(0)

	cmd := make([]byte, 256)
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		wg        sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range proposers {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := m.Propose(ctx, cmd); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	total := syncs.Load()
	for _, p := range children {
		s, err := p.ask("report")
		if err != nil {
			b.Fatal(err)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "proposals/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(total)/float64(len(latencies)), "fsyncs/cmd")
	b.ReportMetric(0, "ns/op")
}
