package history

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// op builds a completed operation for hand-made histories; times in ms.
func op(process int, kind Kind, key string, callMs, returnMs int64, outcome Outcome) Op {
	o := Op{Process: process, Kind: kind, Key: key, Outcome: outcome, CallNs: callMs * 1e6, ReturnNs: returnMs * 1e6}
	if outcome == Unknown {
		o.ReturnNs = math.MaxInt64
	}
	return o
}

func put(p int, key, v string, call, ret int64, out Outcome) Op {
	o := op(p, Put, key, call, ret, out)
	o.Value = v
	return o
}

func get(p int, key string, found bool, v string, call, ret int64) Op {
	o := op(p, Get, key, call, ret, OK)
	o.Found, o.Result = found, v
	return o
}

func cas(p int, key, old, v string, swapped bool, call, ret int64, out Outcome) Op {
	o := op(p, CAS, key, call, ret, out)
	o.Old, o.Value, o.Swapped = old, v, swapped
	return o
}

func number(h []Op) []Op {
	for i := range h {
		h[i].ID = i
	}
	return h
}

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder(1000)
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id, err := r.Invoke(Op{Process: p, Kind: Put, Key: "k", Value: "v"})
				if err != nil {
					t.Error(err)
					return
				}
				out := OK
				if i%5 == 0 {
					out = Unknown
				}
				if err := r.Complete(id, Op{Outcome: out}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	h := r.History()
	if len(h) != 400 {
		t.Fatalf("got %d ops, want 400", len(h))
	}
	for i, o := range h {
		switch {
		case o.ID != i:
			t.Fatalf("op %d has id %d", i, o.ID)
		case o.Outcome == Unknown && o.ReturnNs != math.MaxInt64:
			t.Fatalf("unknown op %v has a return time", o)
		case o.Outcome == OK && o.ReturnNs < o.CallNs:
			t.Fatalf("op %v returns before its call", o)
		}
	}
	if c := Summarize(h)[Put]; c.OK != 320 || c.Unknown != 80 {
		t.Fatalf("counts %+v, want 320 ok 80 unknown", c)
	}
}

func TestRecorderLimitsAndBadIDs(t *testing.T) {
	r := NewRecorder(2)
	a, _ := r.Invoke(Op{Kind: Get, Key: "k"})
	if _, err := r.Invoke(Op{Kind: Get, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Invoke(Op{Kind: Get, Key: "k"}); !errors.Is(err, ErrFull) {
		t.Fatalf("third Invoke: %v, want ErrFull", err)
	}
	if err := r.Complete(a, Op{Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{a, -1, 7} {
		if err := r.Complete(id, Op{Outcome: OK}); !errors.Is(err, ErrBadID) {
			t.Fatalf("Complete(%d): %v, want ErrBadID", id, err)
		}
	}
	if h := r.History(); h[1].Outcome != Unknown {
		t.Fatalf("pending op reported as %v, want unknown", h[1].Outcome)
	}
}

func TestLinearizableAcceptsClean(t *testing.T) {
	h := number([]Op{
		get(0, "x", false, "", 0, 5),
		put(1, "x", "a", 1, 10, OK),
		get(2, "x", true, "a", 11, 12),
		// Concurrent put and get: the get may see either value.
		put(1, "x", "b", 20, 30, OK),
		get(2, "x", true, "a", 21, 25),
		get(2, "x", true, "b", 31, 32),
		// An unknown put that shows up later; a failed one that never does.
		put(3, "x", "c", 40, 0, Unknown),
		put(4, "x", "z", 41, 42, Fail),
		get(2, "x", true, "b", 43, 44),
		get(2, "x", true, "c", 60, 61),
		cas(0, "x", "c", "d", true, 70, 71, OK),
		cas(0, "x", "c", "e", false, 72, 73, OK),
		get(2, "x", true, "d", 74, 75),
		// An unknown CAS that never applies, and a get that fails.
		cas(5, "x", "nope", "f", false, 76, 0, Unknown),
		op(2, Get, "x", 77, 78, Fail),
		get(0, "y", false, "", 0, 1),
	})
	r := CheckLinearizable(h, 10*time.Second)
	if len(r.Anomalies) != 0 || len(r.TimedOut) != 0 {
		t.Fatalf("clean history refused: %+v", r)
	}
	if r.Keys != 2 || r.Ops != 14 {
		t.Fatalf("checked %d keys %d ops, want 2 keys 14 ops", r.Keys, r.Ops)
	}
}

func TestLinearizableCatchesStaleRead(t *testing.T) {
	h := number([]Op{
		put(0, "x", "a", 0, 10, OK),
		put(1, "x", "b", 20, 30, OK),
		get(2, "x", true, "a", 40, 41), // stale: b was acknowledged before the read began
		get(2, "y", false, "", 40, 41),
	})
	r := CheckLinearizable(h, 10*time.Second)
	if len(r.Anomalies) != 1 || r.Anomalies[0].Key != "x" {
		t.Fatalf("stale read not caught on x: %+v", r)
	}
	if s := r.Anomalies[0].String(); !strings.Contains(s, `get x -> "a"`) {
		t.Fatalf("anomaly does not show the read:\n%s", s)
	}
}

func TestLinearizableCatchesBadCAS(t *testing.T) {
	h := number([]Op{
		put(0, "x", "a", 0, 10, OK),
		cas(1, "x", "a", "b", false, 20, 30, OK), // must have swapped
	})
	if r := CheckLinearizable(h, 10*time.Second); len(r.Anomalies) != 1 {
		t.Fatalf("failed CAS on a matching value not caught: %+v", r)
	}
}

func TestLinearizableCatchesReadOfFailedWrite(t *testing.T) {
	h := number([]Op{
		put(0, "x", "a", 0, 10, Fail),
		get(1, "x", true, "a", 20, 30),
	})
	if r := CheckLinearizable(h, 10*time.Second); len(r.Anomalies) != 1 {
		t.Fatalf("a read of a failed write not caught: %+v", r)
	}
}

func bankRead(p int, call, ret int64, bal map[string]int64) Op {
	o := op(p, BankRead, "", call, ret, OK)
	o.Balances = bal
	return o
}

func transfer(p int, from, to string, amount, call, ret int64, out Outcome) Op {
	o := op(p, Transfer, "", call, ret, out)
	o.From, o.To, o.Amount = from, to, amount
	return o
}

func TestBank(t *testing.T) {
	accounts := []string{"a0", "a1", "a2"}
	clean := number([]Op{
		bankRead(0, 0, 1, map[string]int64{"a0": 10, "a1": 10, "a2": 10}),
		transfer(1, "a0", "a1", 3, 2, 3, OK),
		transfer(1, "a1", "a2", 3, 4, 0, Unknown),
		bankRead(0, 5, 6, map[string]int64{"a0": 7, "a1": 10, "a2": 13}),
		op(0, BankRead, "", 7, 8, Fail),
	})
	if as := CheckBank(clean, accounts, 30); len(as) != 0 {
		t.Fatalf("clean bank history refused:\n%s", FormatAnomalies(as, 50))
	}
	for name, bal := range map[string]map[string]int64{
		"sum":      {"a0": 7, "a1": 13, "a2": 13}, // a transfer's debit lost
		"missing":  {"a0": 7, "a1": 23},
		"negative": {"a0": -1, "a1": 18, "a2": 13},
	} {
		bad := number(append(append([]Op(nil), clean...), bankRead(2, 9, 10, bal)))
		as := CheckBank(bad, accounts, 30)
		if len(as) != 1 || !strings.Contains(as[0].String(), "bank-read") {
			t.Fatalf("%s: planted bad read not caught: %v", name, as)
		}
	}
}

func TestNoLostWrites(t *testing.T) {
	h := number([]Op{
		put(0, "x", "a", 0, 10, OK),
		put(1, "x", "b", 5, 15, OK),            // concurrent with a: either may win
		put(2, "x", "c", 20, 0, Unknown),       // may or may not have happened
		cas(3, "x", "b", "d", false, 1, 2, OK), // no write
		put(4, "x", "z", 21, 22, Fail),
		put(0, "y", "p", 0, 10, OK),
		put(0, "u", "q", 0, 10, OK), // not in final: not checked
	})
	for _, fx := range []string{"a", "b", "c"} {
		final := map[string]Final{"x": {true, fx}, "y": {true, "p"}}
		if as := CheckNoLostWrites(h, final); len(as) != 0 {
			t.Fatalf("final x=%s refused:\n%s", fx, FormatAnomalies(as, 50))
		}
	}
	for name, final := range map[string]map[string]Final{
		"overwritten by an earlier write": {"x": {true, "c"}, "y": {true, "p"}, "w": {true, "1"}},
		"absent":                          {"x": {true, "a"}, "y": {}},
		"never written":                   {"x": {true, "z"}, "y": {true, "p"}},
	} {
		hh := h
		if name == "overwritten by an earlier write" {
			// w=1 returned before w=2 was invoked; 2 was acknowledged, yet 1 stays.
			hh = number(append(append([]Op(nil), h...), put(5, "w", "1", 0, 10, OK), put(5, "w", "2", 11, 12, OK)))
		}
		if as := CheckNoLostWrites(hh, final); len(as) != 1 {
			t.Fatalf("%s: want one anomaly, got %v", name, as)
		}
	}
}
