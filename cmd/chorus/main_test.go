package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoEndToEnd runs the README's main job in process: three members,
// a leader killed, a restart, and equal states at the end.
func TestDemoEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := runDemo(ctx, &out, t.TempDir(), 50); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"was elected leader", "took over after", "caught up", "all 3 members hold the same state"} {
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
		{[]string{"demo", "--writes", "0"}, exitUsage},
	} {
		if got := run(context.Background(), tc.args); got != tc.want {
			t.Errorf("chorus %v exited %d, want %d", tc.args, got, tc.want)
		}
	}
}
