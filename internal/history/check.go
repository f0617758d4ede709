package history

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Anomaly is one violation a checker found, with the operations that show
// it.
type Anomaly struct {
	// Checker names the checker: "linearizable", "bank" or "lost-write".
	Checker string
	// Key is the key or account concerned ("" when several).
	Key string
	Msg string
	// Ops is the sub-history that shows the anomaly.
	Ops []Op
}

// String prints the anomaly and its sub-history.
func (a Anomaly) String() string {
	return fmt.Sprintf("%s: %s\n%s", a.Checker, a.Msg, Format(a.Ops))
}

// FormatAnomalies prints anomalies, each with its sub-history, at most
// opsMax operations each (the latest ones: anomalies show at the end).
func FormatAnomalies(as []Anomaly, opsMax int) string {
	var b strings.Builder
	for _, a := range as {
		ops := a.Ops
		if len(ops) > opsMax {
			fmt.Fprintf(&b, "%s: %s\n  (%d earlier operations left out)\n", a.Checker, a.Msg, len(ops)-opsMax)
			b.WriteString(Format(ops[len(ops)-opsMax:]))
			continue
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// registerState is the model's state of one key.
type registerState struct {
	exists bool
	value  string
}

// registerModel is a register per key with get, put and compare-and-set.
// Partitioning by key is done by CheckLinearizable itself, so that it can
// name the keys that fail.
var registerModel = porcupine.Model{
	Init: func() any { return registerState{} },
	Step: func(state, input, output any) (bool, any) {
		s := state.(registerState)
		op := input.(Op)
		switch op.Kind {
		case Get:
			if op.Found != s.exists || (op.Found && op.Result != s.value) {
				return false, s
			}
			return true, s
		case Put:
			return true, registerState{exists: true, value: op.Value}
		case CAS:
			holds := s.exists && s.value == op.Old
			if op.Outcome == OK && op.Swapped != holds {
				return false, s
			}
			// An unknown CAS did whatever the state made it do.
			if holds {
				return true, registerState{exists: true, value: op.Value}
			}
			return true, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string { return input.(Op).String() },
	DescribeState: func(state any) string {
		s := state.(registerState)
		if !s.exists {
			return "absent"
		}
		return fmt.Sprintf("%q", s.value)
	},
}

// LinearizableResult is CheckLinearizable's verdict.
type LinearizableResult struct {
	// Keys is how many keys were checked; Ops how many operations.
	Keys, Ops int
	// TimedOut lists keys porcupine could not decide in time (neither
	// proven linearizable nor not).
	TimedOut []string
	// Anomalies: one per key whose history is not linearizable.
	Anomalies []Anomaly
}

// registerOps returns the Get, Put and CAS operations of h by key, in the
// form the model checks: failed operations and unknown reads are dropped,
// unknown writes complete at +infinity.
func registerOps(h []Op) map[string][]Op {
	byKey := map[string][]Op{}
	for _, op := range h {
		if op.Kind != Get && op.Kind != Put && op.Kind != CAS {
			continue
		}
		switch op.Outcome {
		case Fail:
			continue
		case OK:
		default: // unknown or pending
			if op.Kind == Get {
				continue
			}
			op.Outcome = Unknown
			op.ReturnNs = math.MaxInt64
		}
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	return byKey
}

// CheckLinearizable checks, key by key, that h's gets, puts and
// compare-and-sets are linearizable as a register whose initial state is
// absent. timeoutPerKey bounds porcupine's search on one key (0: none).
func CheckLinearizable(h []Op, timeoutPerKey time.Duration) LinearizableResult {
	byKey := registerOps(h)
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := LinearizableResult{Keys: len(keys)}
	for _, k := range keys {
		ops := byKey[k]
		res.Ops += len(ops)
		pops := make([]porcupine.Operation, len(ops))
		for i, op := range ops {
			pops[i] = porcupine.Operation{ClientId: op.Process, Input: op, Call: op.CallNs, Output: op, Return: op.ReturnNs}
		}
		r, info := porcupine.CheckOperationsVerbose(registerModel, pops, timeoutPerKey)
		switch r {
		case porcupine.Ok:
		case porcupine.Unknown:
			res.TimedOut = append(res.TimedOut, k)
		default:
			res.Anomalies = append(res.Anomalies, Anomaly{
				Checker: "linearizable", Key: k,
				Msg: fmt.Sprintf("key %s: no linearization of its %d operations; longest linearizable prefix ends at %s",
					k, len(ops), longestPrefixEnd(info)),
				Ops: ops,
			})
		}
	}
	return res
}

// longestPrefixEnd describes the last operation of the longest partial
// linearization porcupine found: the anomaly is just after it.
func longestPrefixEnd(info porcupine.LinearizationInfo) string {
	var best []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, lin := range part {
			if len(lin) > len(best) {
				best = lin
			}
		}
	}
	if len(best) == 0 {
		return "the start"
	}
	return best[len(best)-1].Input.(Op).String()
}

// CheckBank checks the bank invariant: every successful BankRead in h sees
// every one of accounts, none negative, summing to total.
func CheckBank(h []Op, accounts []string, total int64) []Anomaly {
	var out []Anomaly
	for _, op := range h {
		if op.Kind != BankRead || op.Outcome != OK {
			continue
		}
		var problems []string
		for _, a := range accounts {
			v, ok := op.Balances[a]
			switch {
			case !ok:
				problems = append(problems, "account "+a+" missing")
			case v < 0:
				problems = append(problems, fmt.Sprintf("account %s negative (%d)", a, v))
			}
		}
		if s := sum(op.Balances); s != total {
			problems = append(problems, fmt.Sprintf("sum %d, want %d", s, total))
		}
		if len(problems) == 0 {
			continue
		}
		out = append(out, Anomaly{
			Checker: "bank",
			Msg:     fmt.Sprintf("read #%d: %s", op.ID, strings.Join(problems, "; ")),
			Ops:     bankContext(h, op),
		})
	}
	return out
}

// bankContext is the bad read with the transfers that may have preceded it
// (invoked before it returned), so a reader sees which ones it reflects.
func bankContext(h []Op, bad Op) []Op {
	var out []Op
	for _, op := range h {
		if op.Kind == Transfer && op.Outcome != Fail && op.CallNs <= bad.ReturnNs {
			out = append(out, op)
		}
	}
	return append(out, bad)
}

// Final is the value of a key at the end of a test; Found false: absent.
type Final struct {
	Found bool
	Value string
}

// CheckNoLostWrites checks that no acknowledged write was lost: for every
// key of final, every OK put and swapped CAS is the final value, or a write
// that may have come after it wrote the final value. Writes must have
// values unique per key (the test makes them so); an OK write whose key is
// missing from final is not checked.
func CheckNoLostWrites(h []Op, final map[string]Final) []Anomaly {
	byKey := map[string][]Op{}
	for _, op := range h {
		if _, ok := final[op.Key]; !ok {
			continue
		}
		mayWrite := (op.Kind == Put && op.Outcome != Fail) ||
			(op.Kind == CAS && (op.Outcome == OK && op.Swapped || op.Outcome == Unknown || op.Outcome == Pending))
		if mayWrite {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Anomaly
	for _, k := range keys {
		writes, f := byKey[k], final[k]
		acked := func(op Op) bool { return op.Outcome == OK }
		var last *Op // the write of the final value
		for i := range writes {
			if f.Found && writes[i].Value == f.Value {
				last = &writes[i]
				break
			}
		}
		switch {
		case !f.Found:
			for _, w := range writes {
				if acked(w) {
					out = append(out, Anomaly{Checker: "lost-write", Key: k,
						Msg: fmt.Sprintf("key %s is absent at the end, yet write #%d was acknowledged", k, w.ID), Ops: writes})
					break
				}
			}
		case last == nil:
			out = append(out, Anomaly{Checker: "lost-write", Key: k,
				Msg: fmt.Sprintf("key %s ends with %q, which no write wrote", k, f.Value), Ops: writes})
		default:
			// Lost: an acknowledged write invoked after the final value's
			// write returned, so it must have come later, yet did not stay.
			for _, w := range writes {
				if acked(w) && w.ID != last.ID && last.ReturnNs < w.CallNs {
					out = append(out, Anomaly{Checker: "lost-write", Key: k,
						Msg: fmt.Sprintf("key %s: acknowledged write #%d (%q) began after write #%d (%q) returned, yet the key ends with the earlier %q",
							k, w.ID, w.Value, last.ID, last.Value, f.Value),
						Ops: writes})
					break
				}
			}
		}
	}
	return out
}
