package history

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors of this package.
var (
	// ErrFull: the Recorder holds OpsMax operations already.
	ErrFull = errors.New("history: recorder full")
	// ErrBadID: Complete was given an id Invoke did not return, or one
	// already completed.
	ErrBadID = errors.New("history: unknown or completed operation id")
)

// Outcome is how an operation ended.
type Outcome uint8

// Outcomes.
const (
	// Pending: invoked, not completed (yet). Checkers treat it as Unknown.
	Pending Outcome = iota
	// OK: the operation happened, with the recorded result.
	OK
	// Fail: the operation definitely did not take effect.
	Fail
	// Unknown: the operation may or may not have taken effect.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case OK:
		return "ok"
	case Fail:
		return "fail"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Kind is the type of an operation.
type Kind uint8

// Kinds of operation.
const (
	// Get reads Key: Found and Result.
	Get Kind = iota + 1
	// Put writes Value to Key.
	Put
	// CAS writes Value to Key if Key holds Old (a txn comparing the value);
	// Swapped says whether it did.
	CAS
	// BankRead reads every account in one read-only txn: Balances.
	BankRead
	// Transfer moves Amount from account From to account To in one txn that
	// compares both accounts' values first.
	Transfer
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case CAS:
		return "cas"
	case BankRead:
		return "bank-read"
	case Transfer:
		return "transfer"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Op is one recorded operation: what was invoked, and how it completed.
type Op struct {
	// ID is the operation's index in the history; Process is the Jepsen
	// process (one client at a time, at most one operation outstanding).
	ID      int
	Process int
	Kind    Kind

	// Inputs. Key, Value, Old: Get, Put and CAS. From, To, Amount:
	// Transfer.
	Key    string
	Value  string
	Old    string
	From   string
	To     string
	Amount int64

	// Outcome and results. Found and Result: Get. Swapped: CAS. Balances:
	// BankRead (an absent account is missing from the map). Err: why an
	// operation failed or is unknown.
	Outcome  Outcome
	Found    bool
	Result   string
	Swapped  bool
	Balances map[string]int64
	Err      string

	// CallNs and ReturnNs are monotonic nanoseconds since the Recorder was
	// made; ReturnNs is math.MaxInt64 while the operation is pending.
	CallNs, ReturnNs int64
}

// String describes op on one line.
func (op Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d p%d [%.3fs, ", op.ID, op.Process, float64(op.CallNs)/1e9)
	if op.ReturnNs == math.MaxInt64 {
		b.WriteString("inf] ")
	} else {
		fmt.Fprintf(&b, "%.3fs] ", float64(op.ReturnNs)/1e9)
	}
	switch op.Kind {
	case Get:
		fmt.Fprintf(&b, "get %s", op.Key)
		if op.Outcome == OK {
			if op.Found {
				fmt.Fprintf(&b, " -> %q", op.Result)
			} else {
				b.WriteString(" -> not found")
			}
		}
	case Put:
		fmt.Fprintf(&b, "put %s=%q", op.Key, op.Value)
	case CAS:
		fmt.Fprintf(&b, "cas %s %q->%q", op.Key, op.Old, op.Value)
		if op.Outcome == OK {
			fmt.Fprintf(&b, " swapped=%v", op.Swapped)
		}
	case BankRead:
		b.WriteString("bank-read")
		if op.Outcome == OK {
			fmt.Fprintf(&b, " %s (sum %d)", formatBalances(op.Balances), sum(op.Balances))
		}
	case Transfer:
		fmt.Fprintf(&b, "transfer %d %s->%s", op.Amount, op.From, op.To)
	default:
		b.WriteString(op.Kind.String())
	}
	fmt.Fprintf(&b, " : %s", op.Outcome)
	if op.Err != "" {
		fmt.Fprintf(&b, " (%s)", op.Err)
	}
	return b.String()
}

func formatBalances(m map[string]int64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, m[n])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func sum(m map[string]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

// Format prints ops one per line, in invocation order.
func Format(ops []Op) string {
	sorted := append([]Op(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].CallNs < sorted[j].CallNs })
	var b strings.Builder
	for _, op := range sorted {
		b.WriteString("  ")
		b.WriteString(op.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Recorder records operations from concurrent clients. The zero value is
// not usable; call NewRecorder.
type Recorder struct {
	start  time.Time // carries the monotonic clock reading
	opsMax int

	mu  sync.Mutex
	ops []Op
}

// NewRecorder returns an empty Recorder that holds at most opsMax
// operations (Invoke refuses more, so a runaway workload cannot exhaust
// memory or make the checkers intractable).
func NewRecorder(opsMax int) *Recorder {
	return &Recorder{start: time.Now(), opsMax: opsMax}
}

// now is monotonic nanoseconds since the Recorder was made, under r.mu so
// that the order of timestamps matches the order of Invoke and Complete
// calls.
func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

// Invoke records the invocation of op (its inputs and Process) and returns
// its id for Complete. It fails with ErrFull when OpsMax operations are
// recorded.
func (r *Recorder) Invoke(op Op) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ops) >= r.opsMax {
		return 0, fmt.Errorf("%w: %d operations", ErrFull, r.opsMax)
	}
	op.ID = len(r.ops)
	op.Outcome = Pending
	op.CallNs = r.now()
	op.ReturnNs = math.MaxInt64
	r.ops = append(r.ops, op)
	return op.ID, nil
}

// Complete records how operation id ended: res carries the Outcome and the
// result fields (Found, Result, Swapped, Balances, Err); its inputs are
// ignored. An Unknown outcome keeps ReturnNs at +infinity: the operation may
// take effect at any later time.
func (r *Recorder) Complete(id int, res Op) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id < 0 || id >= len(r.ops) || r.ops[id].Outcome != Pending {
		return fmt.Errorf("%w: %d", ErrBadID, id)
	}
	if res.Outcome == Pending {
		res.Outcome = Unknown
	}
	op := &r.ops[id]
	op.Outcome, op.Found, op.Result, op.Swapped, op.Err = res.Outcome, res.Found, res.Result, res.Swapped, res.Err
	if res.Balances != nil {
		op.Balances = make(map[string]int64, len(res.Balances))
		for k, v := range res.Balances {
			op.Balances[k] = v
		}
	}
	if res.Outcome != Unknown {
		op.ReturnNs = r.now()
	}
	return nil
}

// History returns a copy of the operations recorded so far, in invocation
// order; pending ones are returned as Unknown.
func (r *Recorder) History() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Op, len(r.ops))
	copy(out, r.ops)
	for i := range out {
		if out[i].Outcome == Pending {
			out[i].Outcome = Unknown
		}
	}
	return out
}

// Counts are operations by outcome.
type Counts struct {
	OK, Fail, Unknown int
}

// Total is the number of operations counted.
func (c Counts) Total() int { return c.OK + c.Fail + c.Unknown }

// Summarize counts ops by kind and outcome (pending as unknown).
func Summarize(ops []Op) map[Kind]Counts {
	out := map[Kind]Counts{}
	for _, op := range ops {
		c := out[op.Kind]
		switch op.Outcome {
		case OK:
			c.OK++
		case Fail:
			c.Fail++
		default:
			c.Unknown++
		}
		out[op.Kind] = c
	}
	return out
}

// FormatSummary prints Summarize's counts, one kind per line.
func FormatSummary(ops []Op) string {
	s := Summarize(ops)
	var b strings.Builder
	var all Counts
	for k := Get; k <= Transfer; k++ {
		c, ok := s[k]
		if !ok {
			continue
		}
		all.OK, all.Fail, all.Unknown = all.OK+c.OK, all.Fail+c.Fail, all.Unknown+c.Unknown
		fmt.Fprintf(&b, "  %-9s %6d ops: %6d ok %5d fail %5d unknown\n", k, c.Total(), c.OK, c.Fail, c.Unknown)
	}
	fmt.Fprintf(&b, "  %-9s %6d ops: %6d ok %5d fail %5d unknown\n", "all", all.Total(), all.OK, all.Fail, all.Unknown)
	return b.String()
}
