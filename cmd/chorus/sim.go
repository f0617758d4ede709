package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/chorus-project/chorus/internal/sim"
)

// errSimFailed is returned when a replayed or swept seed fails, so that the
// command exits 1.
var errSimFailed = errors.New("simulation failed")

// simSeedsMax bounds one sweep; larger sweeps are several commands.
const simSeedsMax = 1_000_000

func newSimCmd() *cobra.Command {
	var (
		seed    uint64
		seeds   int
		from    uint64
		members int
		bug     string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Replay or sweep seeds of the deterministic Multi-Paxos simulator",
		Long: `sim runs the deterministic simulator (internal/sim): a cluster of real paxos
cores and node disks on crashable in-memory file systems, with a seeded
network, clocks, crashes and disk faults, checked for agreement, state
equality, linearizability (porcupine), liveness and convergence.

  chorus sim --seed 42 -v          replay seed 42 and print its trace
  chorus sim --seeds 1000 --from 1 sweep seeds 1..1000
  chorus sim --seeds 50 --bug send-before-persist

Bugs: ` + fmt.Sprint(sim.BugNames) + `.
Exit status 1 if any seed fails.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bugs, err := sim.ParseBugs(bug)
			if err != nil {
				return usageError{err}
			}
			if members != 3 && members != 5 {
				return usageError{fmt.Errorf("--members %d: 3 or 5", members)}
			}
			out := cmd.OutOrStdout()
			switch {
			case cmd.Flags().Changed("seed") && cmd.Flags().Changed("seeds"):
				return usageError{errors.New("--seed replays one seed, --seeds sweeps: give one")}
			case cmd.Flags().Changed("seeds"):
				if seeds < 1 || seeds > simSeedsMax {
					return usageError{fmt.Errorf("--seeds %d: want 1..%d", seeds, simSeedsMax)}
				}
				return simSweep(out, from, seeds, members, bugs)
			case cmd.Flags().Changed("seed"):
				return simReplay(out, seed, members, bugs, verbose)
			}
			return usageError{errors.New("give --seed N to replay one seed or --seeds N to sweep")}
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&seed, "seed", 0, "replay this seed and print its summary (and trace with -v)")
	f.IntVar(&seeds, "seeds", 0, "sweep this many seeds")
	f.Uint64Var(&from, "from", 1, "first seed of a sweep")
	f.IntVar(&members, "members", 3, "cluster size: 3 or 5")
	f.StringVar(&bug, "bug", "", "comma-separated planted bugs to enable")
	f.BoolVarP(&verbose, "verbose", "v", false, "print the trace of a replayed seed")
	return cmd
}

func simReplay(out io.Writer, seed uint64, members int, bugs sim.Bugs, verbose bool) error {
	opts := sim.Options{Seed: seed, Members: members, Bugs: bugs}
	if verbose {
		opts.Trace = out
	}
	r := sim.Run(opts)
	fmt.Fprint(out, r.Summary())
	if !r.OK() {
		return errSimFailed
	}
	return nil
}

// simSweep runs seeds on every core; results are printed in seed order.
func simSweep(out io.Writer, from uint64, count, members int, bugs sim.Bugs) error {
	start := time.Now()
	results := make([]sim.Result, count)
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= count {
					return
				}
				results[i] = sim.Run(sim.Options{Seed: from + uint64(i), Members: members, Bugs: bugs})
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	failed := 0
	var ops, crashes int
	for _, r := range results {
		ops += r.Stats.OpsInvoked
		crashes += r.Stats.Crashes
		if !r.OK() {
			failed++
			f := r.Failures[0]
			fmt.Fprintf(out, "FAIL seed %d [%s] %.200s\n  replay: %s\n", r.Seed, f.Checker, f.Detail, r.ReplayCommand())
		}
	}
	fmt.Fprintf(out, "%d seeds from %d (members %d", count, from, members)
	if s := bugs.String(); s != "" {
		fmt.Fprintf(out, ", bug %s", s)
	}
	fmt.Fprintf(out, "): %d passed, %d failed in %.1f s (%.1f seeds/s; %.0f ops and %.1f crashes per run)\n",
		count-failed, failed, elapsed.Seconds(), float64(count)/elapsed.Seconds(),
		float64(ops)/float64(count), float64(crashes)/float64(count))
	if failed > 0 {
		return errSimFailed
	}
	return nil
}
