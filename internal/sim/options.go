package sim

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInvalidOptions: Options that cannot be run.
var ErrInvalidOptions = errors.New("sim: invalid options")

// Bounds and defaults of a run. A run is sized so that a sweep of 1000 seeds
// fits in a few minutes on two cores, yet holds a few hundred client
// operations and a dozen faults.
const (
	membersDefault = 3
	// Six clients on three keys make enough concurrent conflicting
	// operations for stale reads to show (see docs/simulator.md for the
	// detection rates this buys).
	clientsDefault = 6
	clientsMax     = 16
	keysDefault    = 3
	keysMax        = 64
	// faultTicksDefault is the faulty phase: 1500 ticks is 150 election
	// timeouts, room for many crashes, partitions and leader changes.
	faultTicksDefault = 1500
	faultTicksMax     = 100_000
	// healTicksDefault bounds the liveness phase: after the faults stop, a
	// leader must be elected (10..19 ticks of timeout plus a pre-vote and a
	// phase 1), every client's operation must finish and every member must
	// catch up, snapshots included. 400 ticks is generous by a factor of ~5.
	healTicksDefault = 400
	healTicksMax     = 100_000
)

// Options configures one simulated run. The zero value of every field but
// Seed takes a default; Seed 0 is a seed like any other.
type Options struct {
	// Seed determines everything: one seed is one run, bit for bit.
	Seed uint64
	// Members is the cluster size: 3 or 5.
	Members int
	// Clients is the number of concurrent clients (1..clientsMax).
	Clients int
	// Keys is the number of distinct keys clients use (1..keysMax). Few keys
	// make conflicts; the linearizability check is per key.
	Keys int
	// FaultTicks is the length of the faulty phase, in ticks (a member ticks
	// about every stepsPerTick simulated steps).
	FaultTicks int
	// HealTicksMax bounds the liveness phase that follows, in ticks.
	HealTicksMax int
	// Bugs plants deliberate bugs in the code under test.
	Bugs Bugs
	// Trace, if not nil, receives every event of the run as a line of text.
	// The trace is hashed whether or not it is written.
	Trace io.Writer
}

// Bugs selects planted bugs of the code under test (internal/paxos and
// internal/node), to show that the simulator's checkers catch them.
type Bugs struct {
	CommitOneShort         bool // paxos.PlantedBugs.CommitOneShort
	ReadWithoutQuorumRound bool // paxos.PlantedBugs.ReadWithoutQuorumRound
	ForgetPromise          bool // node.DiskBugs.ForgetPromise
	SendBeforePersist      bool // node.ReadyBugs.SendBeforePersist
}

// BugNames are the names ParseBugs accepts, in the order String prints them.
var BugNames = []string{"commit-one-short", "read-without-quorum-round", "forget-promise", "send-before-persist"}

func (b *Bugs) field(name string) *bool {
	switch name {
	case "commit-one-short":
		return &b.CommitOneShort
	case "read-without-quorum-round":
		return &b.ReadWithoutQuorumRound
	case "forget-promise":
		return &b.ForgetPromise
	case "send-before-persist":
		return &b.SendBeforePersist
	}
	return nil
}

// ParseBugs parses a comma-separated list of BugNames ("" is no bug).
func ParseBugs(s string) (Bugs, error) {
	var b Bugs
	if s == "" {
		return b, nil
	}
	for name := range strings.SplitSeq(s, ",") {
		f := b.field(strings.TrimSpace(name))
		if f == nil {
			return Bugs{}, fmt.Errorf("%w: unknown bug %q (known: %s)", ErrInvalidOptions, name, strings.Join(BugNames, ", "))
		}
		*f = true
	}
	return b, nil
}

// String returns the bugs as ParseBugs reads them.
func (b Bugs) String() string {
	var on []string
	for _, name := range BugNames {
		if *b.field(name) {
			on = append(on, name)
		}
	}
	return strings.Join(on, ",")
}

func (o Options) withDefaults() (Options, error) {
	if o.Members == 0 {
		o.Members = membersDefault
	}
	if o.Clients == 0 {
		o.Clients = clientsDefault
	}
	if o.Keys == 0 {
		o.Keys = keysDefault
	}
	if o.FaultTicks == 0 {
		o.FaultTicks = faultTicksDefault
	}
	if o.HealTicksMax == 0 {
		o.HealTicksMax = healTicksDefault
	}
	switch {
	case o.Members != 3 && o.Members != 5:
		return o, fmt.Errorf("%w: %d members; the simulator runs 3 or 5", ErrInvalidOptions, o.Members)
	case o.Clients < 1 || o.Clients > clientsMax:
		return o, fmt.Errorf("%w: %d clients, want 1..%d", ErrInvalidOptions, o.Clients, clientsMax)
	case o.Keys < 1 || o.Keys > keysMax:
		return o, fmt.Errorf("%w: %d keys, want 1..%d", ErrInvalidOptions, o.Keys, keysMax)
	case o.FaultTicks < 1 || o.FaultTicks > faultTicksMax:
		return o, fmt.Errorf("%w: FaultTicks %d, want 1..%d", ErrInvalidOptions, o.FaultTicks, faultTicksMax)
	case o.HealTicksMax < 1 || o.HealTicksMax > healTicksMax:
		return o, fmt.Errorf("%w: HealTicksMax %d, want 1..%d", ErrInvalidOptions, o.HealTicksMax, healTicksMax)
	}
	return o, nil
}

// Failure is one property a run broke, named by the checker that saw it.
type Failure struct {
	// Checker is one of: agreement, state, apply-order, command, durability,
	// protocol, codec, disk, restart, panic, linearizability, liveness,
	// convergence, client, options.
	Checker string
	// Step is the simulated step at which it was seen.
	Step   int64
	Detail string
}

// String formats the failure as "[checker] step N: detail".
func (f Failure) String() string { return fmt.Sprintf("[%s] step %d: %s", f.Checker, f.Step, f.Detail) }

// Stats counts what happened in a run.
type Stats struct {
	Steps, Ticks                  int64
	MessagesSent, MessagesDropped int64
	MessagesDuplicated            int64
	Partitions                    int
	Crashes, Restarts             int
	FsyncFaults, TornWriteFaults  int // armed
	PowerCuts                     int // armed: a crash just before an fsync
	DiskFaultCrashes              int // crashes caused by an armed fault firing
	Corruptions                   int // bit flips on synced WAL records
	CorruptionsDetected           int // ... that OpenDisk refused
	Compactions                   int
	SnapshotsInstalled            int
	SnapshotChunksWritten         int // chunks a receiving member wrote
	MultiChunkInstalls            int // installs of a snapshot that took more than one chunk
	LeaderChanges                 int
	OpsInvoked, OpsOK             int
	OpsUnknown                    int // puts whose outcome the client never learned
	ReadsAbandoned                int // gets that timed out (no effect: dropped from the history)
	MaxSlot                       uint64
}

// Result is the outcome of Run.
type Result struct {
	Seed      uint64
	Members   int
	Bugs      Bugs
	TraceHash uint64 // FNV-64a of the whole trace
	Failures  []Failure
	Stats     Stats
}

// OK reports whether every checker passed.
func (r Result) OK() bool { return len(r.Failures) == 0 }

// ReplayCommand is the command line that replays this run verbosely.
func (r Result) ReplayCommand() string {
	s := fmt.Sprintf("go run ./cmd/chorus sim --seed %d", r.Seed)
	if r.Members != membersDefault {
		s += fmt.Sprintf(" --members %d", r.Members)
	}
	if bugs := r.Bugs.String(); bugs != "" {
		s += " --bug " + bugs
	}
	return s
}

// TestCommand is the go test form of the replay.
func (r Result) TestCommand() string {
	env := fmt.Sprintf("CHORUS_SIM_SEED=%d", r.Seed)
	if r.Members != membersDefault {
		env += fmt.Sprintf(" CHORUS_SIM_MEMBERS=%d", r.Members)
	}
	if bugs := r.Bugs.String(); bugs != "" {
		env += " CHORUS_SIM_BUG=" + bugs
	}
	return env + " go test ./internal/sim -run 'TestReplay$' -v"
}

// Summary is a short human-readable account of the run.
func (r Result) Summary() string {
	var b strings.Builder
	s := r.Stats
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "seed %d: %s (members %d", r.Seed, verdict, r.Members)
	if bugs := r.Bugs.String(); bugs != "" {
		fmt.Fprintf(&b, ", bug %s", bugs)
	}
	fmt.Fprintf(&b, ", trace %016x)\n", r.TraceHash)
	fmt.Fprintf(&b, "  steps %d, ticks %d, max slot %d, leader changes %d\n", s.Steps, s.Ticks, s.MaxSlot, s.LeaderChanges)
	fmt.Fprintf(&b, "  ops %d invoked, %d ok, %d unknown puts, %d abandoned gets\n", s.OpsInvoked, s.OpsOK, s.OpsUnknown, s.ReadsAbandoned)
	fmt.Fprintf(&b, "  messages %d sent, %d dropped, %d duplicated; partitions %d\n", s.MessagesSent, s.MessagesDropped, s.MessagesDuplicated, s.Partitions)
	fmt.Fprintf(&b, "  crashes %d (%d by disk faults), restarts %d; armed: %d fsync failures, %d torn writes, %d power cuts at fsync; corruptions %d (%d refused at start)\n",
		s.Crashes, s.DiskFaultCrashes, s.Restarts, s.FsyncFaults, s.TornWriteFaults, s.PowerCuts, s.Corruptions, s.CorruptionsDetected)
	fmt.Fprintf(&b, "  compactions %d, snapshots installed %d (%d of several chunks; %d chunks written)\n",
		s.Compactions, s.SnapshotsInstalled, s.MultiChunkInstalls, s.SnapshotChunksWritten)
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	if !r.OK() {
		fmt.Fprintf(&b, "  replay: %s\n  or:     %s\n", r.ReplayCommand(), r.TestCommand())
	}
	return b.String()
}
