package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/internal/groupbench"
)

// memberCmd is the hidden subcommand a benchmark member process runs.
const memberCmd = "group-member"

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks that start their own processes",
		Args:  noArgs,
	}
	cmd.AddCommand(newBenchGroupCmd(), newBenchGroupMemberCmd())
	return cmd
}

func newBenchGroupCmd() *cobra.Command {
	var (
		sizes, orders, patterns, output, profDir string
		duration, warmup, tick                   time.Duration
		window, stability                        int
	)
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Measure ordered multicast of a three-member group on loopback (issue 4)",
		Long: "group starts three member processes on 127.0.0.1 (this binary, re-executed), forms one group,\n" +
			"and for each order, message size and sender pattern sends as fast as Send returns for --duration\n" +
			"after --warmup. It reports deliveries/s (min over members), MB/s, and two latencies: send to the\n" +
			"sender's own delivery (own, as bench/jgroups measures it) and send to delivery at every member (all,\n" +
			"wall clock, sampled). -o json prints one line per case in bench/jgroups's format with \"system\":\"chorus\".",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := groupbench.Config{Duration: duration, Warmup: warmup, CPUProfileDir: profDir,
				Tuning: groupbench.Tuning{Tick: tick, SendWindowMax: window, StabilityTicks: stability},
				Orders: splitList(orders), Patterns: splitList(patterns)}
			for _, s := range splitList(sizes) {
				n, err := strconv.Atoi(s)
				if err != nil {
					return usageError{fmt.Errorf("--sizes: %q is not a number", s)}
				}
				c.Sizes = append(c.Sizes, n)
			}
			if output != "table" && output != "json" {
				return usageError{fmt.Errorf("-o must be table or json, not %q", output)}
			}
			if profDir != "" {
				abs, err := filepath.Abs(profDir)
				if err != nil {
					return err
				}
				if err := os.MkdirAll(abs, 0o755); err != nil {
					return err
				}
				c.CPUProfileDir = abs
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench group: cannot find this binary to start members: %w", err)
			}
			rs, err := groupbench.Run(cmd.Context(), c, execLauncher(exe, cmd.ErrOrStderr()), cmd.ErrOrStderr())
			if err != nil {
				if errorsIsConfig(err) {
					return usageError{err}
				}
				return err
			}
			out := cmd.OutOrStdout()
			if output == "table" {
				fmt.Fprintf(out, "chorus group, %d members on 127.0.0.1, %v per case after %v warm-up; latency in ms\n",
					groupbench.MembersCount, duration, warmup)
				return groupbench.FormatTable(out, rs)
			}
			enc := json.NewEncoder(out)
			for _, r := range rs {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sizes, "sizes", "64,1024,8192", "message sizes in bytes")
	f.StringVar(&orders, "orders", "total,fifo,safe", "orders to measure (fifo, causal, total, safe)")
	f.StringVar(&patterns, "senders", "one,all", "sender patterns: one (rank 0 sends), all")
	f.DurationVar(&duration, "duration", 10*time.Second, "measured window per case")
	f.DurationVar(&warmup, "warmup", 2*time.Second, "unreported sending before each window")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringVar(&profDir, "cpuprofile-dir", "", "write each member's CPU profile (member-<id>.pprof) here")
	f.DurationVar(&tick, "tick", 0, "group tick interval (0: group's default)")
	f.IntVar(&window, "send-window", 0, "per-sender send window in messages (0: default)")
	f.IntVar(&stability, "stability-ticks", 0, "stability gossip interval in ticks (0: default)")
	return cmd
}

func newBenchGroupMemberCmd() *cobra.Command {
	return &cobra.Command{
		Use:                memberCmd,
		Short:              "One member of `bench group` (started by it; talks JSON lines on stdin/stdout)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := groupbench.ParseMemberArgs(args)
			if err != nil {
				return usageError{err}
			}
			return groupbench.RunMember(cmd.Context(), c, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func errorsIsConfig(err error) bool { return errors.Is(err, groupbench.ErrConfig) }

// execLauncher starts members as child processes of this binary; their
// stderr goes to logw.
func execLauncher(exe string, logw io.Writer) groupbench.Launcher {
	// The members' stderr copiers run concurrently; an *os.File is handed
	// to the children as is, any other writer needs the lock.
	if _, ok := logw.(*os.File); !ok {
		logw = &lockedWriter{w: logw}
	}
	return func(ctx context.Context, c groupbench.MemberConfig) (groupbench.Proc, error) {
		cmd := exec.Command(exe, append([]string{"bench", memberCmd}, c.Args()...)...)
		cmd.Stderr = logw
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return &execProc{cmd: cmd, in: in, out: out}, nil
	}
}

type execProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out io.Reader
}

func (p *execProc) Stdin() io.WriteCloser { return p.in }
func (p *execProc) Stdout() io.Reader     { return p.out }
func (p *execProc) Wait() error           { return p.cmd.Wait() }
func (p *execProc) Kill()                 { _ = p.cmd.Process.Kill() }

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
