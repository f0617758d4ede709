package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// benchMemberEnv makes this test binary act as the chorus binary: `bench
// group` re-executes os.Executable() to start its members, which under go
// test is the test binary.
const benchMemberEnv = "CHORUS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(benchMemberEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestBenchGroupEndToEnd runs `chorus bench group` with three member
// processes and a tiny window, and checks the JSON lines it prints.
func TestBenchGroupEndToEnd(t *testing.T) {
	t.Setenv(benchMemberEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"bench", "group", "-o", "json", "--duration", "400ms", "--warmup", "100ms",
		"--sizes", "64,1024", "--orders", "total,fifo", "--senders", "one,all"})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench group: %v\nstderr:\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2*2*2 {
		t.Fatalf("got %d lines, want 8:\n%s\nstderr:\n%s", len(lines), out.String(), errOut.String())
	}
	for i, l := range lines {
		var r struct {
			System    string   `json:"system"`
			Order     string   `json:"order"`
			Size      int      `json:"size"`
			Senders   string   `json:"senders"`
			MsgsPS    float64  `json:"msgs_per_s"`
			MBPS      float64  `json:"mb_per_s"`
			P50Ms     *float64 `json:"p50_ms"`
			P99Ms     *float64 `json:"p99_ms"`
			Sent      uint64   `json:"sent"`
			Delivered []uint64 `json:"delivered"`
			Views     int      `json:"views"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		wantOrder := []string{"total", "fifo"}[i/4]
		wantSize := []int{64, 1024}[i/2%2]
		wantSenders := []string{"one", "all"}[i%2]
		if r.System != "chorus" || r.Order != wantOrder || r.Size != wantSize || r.Senders != wantSenders {
			t.Errorf("line %d is %s/%s/%d/%s, want chorus/%s/%d/%s", i, r.System, r.Order, r.Size, r.Senders,
				wantOrder, wantSize, wantSenders)
		}
		if r.MsgsPS <= 0 || r.MBPS <= 0 || r.Sent == 0 || len(r.Delivered) != 3 || r.P50Ms == nil || r.P99Ms == nil ||
			*r.P50Ms <= 0 || *r.P99Ms < *r.P50Ms || r.Views != 0 {
			t.Errorf("line %d has implausible figures: %s", i, l)
		}
	}
}

func TestBenchGroupBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "group", "--sizes", "8"},
		{"bench", "group", "--sizes", "x"},
		{"bench", "group", "--orders", "random"},
		{"bench", "group", "--senders", "some"},
		{"bench", "group", "--duration", "0s"},
		{"bench", "group", "-o", "xml"},
		{"bench", "group-member", "--id", "0", "--bootstrap"},
		{"bench", "group-member", "--id", "2"},
	} {
		if got := run(context.Background(), args); got != exitUsage {
			t.Errorf("chorus %v exited %d, want %d", args, got, exitUsage)
		}
	}
}
