package nemesis

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/history"
)

// chorusBin is the chorus binary TestMain builds once per test run.
var chorusBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "chorus-nemesis-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "nemesis: temp dir:", err)
		os.Exit(2)
	}
	chorusBin = filepath.Join(dir, "chorus")
	build := exec.Command("go", "build", "-o", chorusBin, "github.com/chorus-project/chorus/cmd/chorus")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "nemesis: go build ./cmd/chorus:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// faultDuration is CHORUS_FAULT_SECONDS (default 15 s).
func faultDuration(t *testing.T) time.Duration {
	s := os.Getenv("CHORUS_FAULT_SECONDS")
	if s == "" {
		return 15 * time.Second
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || n > 3600 {
		t.Fatalf("CHORUS_FAULT_SECONDS=%q: want a number of seconds in (0, 3600]", s)
	}
	return time.Duration(n * float64(time.Second))
}

// opTimeout is CHORUS_FAULT_OP_TIMEOUT_MS (default 4000): shorter makes
// more operations end unknown, which exercises "may have happened".
func opTimeout(t *testing.T) time.Duration {
	s := os.Getenv("CHORUS_FAULT_OP_TIMEOUT_MS")
	if s == "" {
		return 4 * time.Second
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 50 || n > 60_000 {
		t.Fatalf("CHORUS_FAULT_OP_TIMEOUT_MS=%q: want milliseconds in [50, 60000]", s)
	}
	return time.Duration(n) * time.Millisecond
}

// faultSeed is CHORUS_FAULT_SEED, else the clock: the schedule is random,
// and the seed is printed so a run's schedule can be repeated (the timing
// of real processes cannot).
func faultSeed(t *testing.T) uint64 {
	if s := os.Getenv("CHORUS_FAULT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHORUS_FAULT_SEED=%q: want an unsigned integer", s)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestFaultsPaxos: a 3-member cluster of real processes, 8 clients on
// paxos namespaces (5 on registers, 3 on the bank), members killed with
// SIGKILL and restarted for CHORUS_FAULT_SECONDS; then heal, final reads
// and every checker.
func TestFaultsPaxos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test starts real processes; skipped under -short")
	}
	runFaultTest(t, "paxos")
}

// TestFaultsActive is the same workload on active namespaces: commands
// and reads through each namespace's group in total order, in memory, the
// killed member rejoining its groups with state transfer. One member is
// down at a time, so a copy of the state always survives.
func TestFaultsActive(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test starts real processes; skipped under -short")
	}
	runFaultTest(t, "active")
}

func runFaultTest(t *testing.T, mode string) {
	dur, seed := faultDuration(t), faultSeed(t)
	t.Logf("mode %s, %v of faults, %v per operation, seed %d (CHORUS_FAULT_SEED=%d repeats the schedule)", mode, dur, opTimeout(t), seed, seed)
	c, err := StartCluster(ClusterConfig{Binary: chorusBin, Dir: t.TempDir(), Size: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dumpLogs := func() {
		for _, m := range c.Members {
			t.Logf("last lines of member %d's log:\n%s", m.ID, c.LogTail(m.ID, 30))
		}
	}

	w := &Workload{
		Endpoints: c.Endpoints(), Mode: mode, RegisterNS: "reg-" + mode, BankNS: "bank-" + mode,
		Keys: []string{"k0", "k1", "k2", "k3", "k4"}, Accounts: []string{"a0", "a1", "a2", "a3", "a4"},
		Initial: 100, OpTimeout: opTimeout(t), Rec: history.NewRecorder(200_000),
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	// Setup is not checked: give it time even with a short OpTimeout.
	short := w.OpTimeout
	w.OpTimeout = max(short, 4*time.Second)
	err = w.Setup(sctx)
	w.OpTimeout = short
	cancel()
	if err != nil {
		dumpLogs()
		t.Fatal(err)
	}

	if mode == "active" {
		c.Groups = []string{w.RegisterNS, w.BankNS}
		gctx, gcancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.WaitGroups(gctx)
		gcancel()
		if err != nil {
			dumpLogs()
			t.Fatal(err)
		}
	}

	// Faults and clients for dur; clients stop after their current
	// operation, the nemesis restarts the member it killed last.
	nctx, ncancel := context.WithTimeout(context.Background(), dur)
	defer ncancel()
	stop := make(chan struct{})
	clientsDone := make(chan error, 1)
	go func() { clientsDone <- w.RunClients(context.Background(), stop, 5, 3, seed) }()
	start := time.Now()
	stats := RunNemesis(nctx, c, seed, 0.5, t.Logf)
	close(stop)
	if err := <-clientsDone; err != nil {
		t.Fatalf("clients: %v", err)
	}
	elapsed := time.Since(start)

	hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer hcancel()
	if err := c.WaitHealthy(hctx); err != nil {
		dumpLogs()
		t.Fatalf("after healing: %v", err)
	}
	final, err := w.FinalReads(hctx)
	if err != nil {
		dumpLogs()
		t.Fatalf("final reads: %v", err)
	}

	if digest, commands, err := c.WaitConverged(hctx); err != nil {
		dumpLogs()
		t.Errorf("after healing: %v", err)
	} else {
		t.Logf("members converged: digest %.16s... after %d commands on all three", digest, commands)
	}

	h := w.Rec.History()
	if os.Getenv("CHORUS_FAULT_PLANT") != "" {
		h = plant(t, h)
	}
	t.Logf("%v with faults: %d kills (%d of the leader), %d restarts, %d processes started; %d ops (%.0f/s):\n%s",
		elapsed.Round(time.Millisecond), stats.Kills, stats.LeaderKills, stats.Restarts, c.Starts(), len(h),
		float64(len(h))/elapsed.Seconds(), history.FormatSummary(h))
	for _, err := range stats.Errors {
		t.Errorf("nemesis: %v", err)
	}
	for _, err := range c.Unexpected() {
		t.Errorf("%v", err)
	}
	if stats.Kills == 0 {
		t.Errorf("the nemesis killed no member in %v", dur)
	}

	checkStart := time.Now()
	lin := history.CheckLinearizable(h, 20*time.Second)
	bank := history.CheckBank(h, w.Accounts, w.Total())
	lost := history.CheckNoLostWrites(h, final)
	t.Logf("checkers (%v): linearizable: %d keys, %d ops, %d anomalies, %d undecided; bank: %d anomalies; lost writes: %d anomalies",
		time.Since(checkStart).Round(time.Millisecond), lin.Keys, lin.Ops, len(lin.Anomalies), len(lin.TimedOut), len(bank), len(lost))
	if len(lin.TimedOut) > 0 {
		t.Logf("porcupine could not decide keys %v in time: not checked", lin.TimedOut)
	}
	all := append(append(append([]history.Anomaly(nil), lin.Anomalies...), bank...), lost...)
	if len(all) > 0 {
		t.Errorf("%d anomalies:\n%s", len(all), history.FormatAnomalies(all, 60))
		dumpLogs()
	}
	var okTransfers int
	for _, op := range h {
		if op.Kind == history.Transfer && op.Outcome == history.OK {
			okTransfers++
		}
	}
	if okTransfers == 0 {
		t.Errorf("no transfer succeeded: the bank checker checked nothing interesting")
	}
}

// plant adds anomalies to a real history (CHORUS_FAULT_PLANT=1): a read of
// k0, after everything, that returns the first value ever written to it
// (stale unless it is the final one), and a bank read one unit short. The
// test must then fail; this shows the real run's history reaches the
// checkers.
func plant(t *testing.T, h []history.Op) []history.Op {
	end := int64(0)
	for _, op := range h {
		if op.Outcome != history.Unknown {
			end = max(end, op.ReturnNs)
		}
	}
	for _, op := range h {
		if op.Kind == history.Put && op.Key == "k0" && op.Outcome == history.OK {
			h = append(h, history.Op{ID: len(h), Process: -1, Kind: history.Get, Key: "k0", Outcome: history.OK,
				Found: true, Result: op.Value, CallNs: end + 1, ReturnNs: end + 2})
			t.Logf("planted: a read of k0 returning %q after the end", op.Value)
			break
		}
	}
	bal := map[string]int64{"a0": 99, "a1": 100, "a2": 100, "a3": 100, "a4": 100}
	h = append(h, history.Op{ID: len(h), Process: -1, Kind: history.BankRead, Outcome: history.OK, Balances: bal,
		CallNs: end + 1, ReturnNs: end + 2})
	t.Logf("planted: a bank read summing to 499")
	return h
}
