package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDemoTour runs the README's main job with --tour: three server
// processes (this test binary, acting as chorus through TestMain), writes
// and a transaction, the leader SIGKILLed, a restart, and equal states.
func TestDemoTour(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	t.Setenv(benchMemberEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := runDemo(ctx, demoOptions{out: &out, exe: os.Args[0], dir: t.TempDir(), tour: true})
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"was elected leader", "txn succeeded=true", "its compare fails", "took over after",
		"view change reported", "caught up", "all 3 members hold the same state"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"version"}, exitOK},
		{[]string{"no-such-command"}, exitUsage},
		{[]string{"version", "--no-such-flag"}, exitUsage},
		{[]string{"version", "extra"}, exitUsage},
		{[]string{"demo", "--duration", "-1s"}, exitUsage},
	} {
		if got := run(context.Background(), tc.args); got != tc.want {
			t.Errorf("chorus %v exited %d, want %d", tc.args, got, tc.want)
		}
	}
}
