// Package sim is the deterministic simulator of the Multi-Paxos log: a
// cluster of real paxos.Core values, each with a real node.Disk (WAL and
// snapshot files) on its own crashable vfs.Mem, driven through
// node.HandleReady (the production shell's persist, send, apply, advance) by
// one goroutine, with a seeded network, clocks, client workload and fault
// schedule. Run(Options{Seed: s}) is one run, bit for bit, and checks it.
//
// # A run
//
// Time is counted in steps; each member ticks its core every 9-11 steps (a
// fixed rate per member: clock drift). A step delivers the messages due,
// ticks the members due, lets the clients act, lets the nemesis act,
// restarts the members due, then runs every live member's Ready loop to
// quiescence. The faulty phase (Options.FaultTicks) injects message loss,
// duplication, delay and reordering, partitions (symmetric, one-way, leader
// isolation, bridge), crashes that lose or tear un-synced data, failed
// fsyncs, torn writes, power cuts at an fsync, and bit flips on synced WAL
// records, never taking down more than a minority of members at once. The
// liveness phase that follows stops every fault and requires a leader, the
// clients' operations to finish, and the members to converge, within
// Options.HealTicksMax.
//
// # Checkers
//
// At every apply: agreement (one entry per slot across members), state
// (equal store state after each slot, snapshots included), apply order. At
// every delivery: the message decodes and the receiving core does not
// refuse it as invalid. At every restart: the disk restores at least the
// hard state its last successful Save made durable. At the end: linearizability of the clients' history
// with porcupine, per key, puts the client gave up on being "unknown"
// (return at infinity). A failing Result names the checker, and its
// ReplayCommand and TestCommand replay the seed.
//
// # Determinism
//
// All randomness comes from one math/rand/v2 PCG seeded by Options.Seed
// (the cores', the network's, the crash clones'). Nothing reads the clock or
// leaks map order into the run. The WAL's flusher goroutine does the disk
// work, but the simulator's calls into the disk block until it is done, so
// there is one thread of control. Every event goes into an FNV-64a hash
// (Result.TraceHash), and into Options.Trace when set.
//
// The formats of the simulated key-value store (its commands and
// snapshots) are drawn byte by byte in kv.go. docs/simulator.md has the
// fault model, the bounds, how to run and replay, and the planted bugs.
package sim
