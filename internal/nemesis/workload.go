package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-project/chorus/client"
	"github.com/chorus-project/chorus/internal/history"
)

// Workload is the clients' side of a fault test: registers and a bank, in
// two namespaces of the same mode.
type Workload struct {
	// Endpoints of the cluster.
	Endpoints []string
	// Mode of both namespaces ("paxos").
	Mode string
	// RegisterNS and BankNS name the namespaces.
	RegisterNS, BankNS string
	// Keys are the registers; Accounts the bank's accounts, each starting
	// with Initial.
	Keys     []string
	Accounts []string
	Initial  int64
	// OpTimeout bounds one operation, its retries included; an operation
	// that times out is Unknown.
	OpTimeout time.Duration
	// Rec records the history.
	Rec *history.Recorder

	processes atomic.Int64 // Jepsen process ids handed out
}

// Total is the bank's invariant sum.
func (w *Workload) Total() int64 { return w.Initial * int64(len(w.Accounts)) }

func (w *Workload) newClient() (*client.Client, error) {
	c, err := client.New(client.Config{Endpoints: w.Endpoints, Timeout: w.OpTimeout})
	if err != nil {
		return nil, fmt.Errorf("nemesis: client: %w", err)
	}
	return c, nil
}

// newProcess returns a fresh Jepsen process id: a client that saw an
// unknown outcome does not issue another operation as the same process.
func (w *Workload) newProcess() int { return int(w.processes.Add(1) - 1) }

// Setup creates the namespaces and the bank's accounts; it retries until
// ctx ends, since the cluster may still be electing its first leader.
func (w *Workload) Setup(ctx context.Context) error {
	c, err := w.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	retry := func(what string, f func(ctx context.Context) error) error {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			octx, cancel := context.WithTimeout(ctx, w.OpTimeout)
			err := f(octx)
			cancel()
			if err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("nemesis: setup: %s: %w", what, err)
			case <-tick.C:
			}
		}
	}
	for _, ns := range []string{w.RegisterNS, w.BankNS} {
		err := retry("create namespace "+ns, func(ctx context.Context) error {
			_, err := c.CreateNamespace(ctx, client.NamespaceSpec{Name: ns, Mode: w.Mode})
			if errors.Is(err, client.ErrExists) {
				return nil // an earlier attempt's answer was lost
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	var t client.Txn
	for _, a := range w.Accounts {
		t.Then = append(t.Then, client.Op{Type: client.OpPut, Key: []byte(a), Value: []byte(strconv.FormatInt(w.Initial, 10))})
	}
	return retry("open accounts", func(ctx context.Context) error {
		_, err := c.Txn(ctx, w.BankNS, t)
		return err
	})
}

// outcome classifies a client error: nil is OK; a refusal (4xx) is Fail;
// anything else (a timeout, no answer, 503, 500) is Unknown, since the
// write may have been applied. A stale session (400) is Unknown too: it
// says an earlier attempt of the same session applied.
func outcome(err error) (history.Outcome, string) {
	if err == nil {
		return history.OK, ""
	}
	var e *client.Error
	if errors.As(err, &e) && e.HTTPStatus >= 400 && e.HTTPStatus < 500 && e.Code != client.CodeStaleSession && !errors.Is(err, client.ErrUnavailable) {
		return history.Fail, e.Code
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return history.Unknown, msg
}

// run invokes op, runs f and records the completion it returns. It
// returns the outcome, or an error when the recorder is full.
func (w *Workload) run(ctx context.Context, op history.Op, f func(ctx context.Context) history.Op) (history.Op, error) {
	id, err := w.Rec.Invoke(op)
	if err != nil {
		return history.Op{}, err
	}
	octx, cancel := context.WithTimeout(ctx, w.OpTimeout)
	res := f(octx)
	cancel()
	if err := w.Rec.Complete(id, res); err != nil {
		return history.Op{}, err
	}
	return res, nil
}

// Get reads key as process p.
func (w *Workload) Get(ctx context.Context, c *client.Client, p int, key string) (history.Op, error) {
	return w.run(ctx, history.Op{Process: p, Kind: history.Get, Key: key}, func(ctx context.Context) history.Op {
		r, err := c.Get(ctx, w.RegisterNS, []byte(key))
		if errors.Is(err, client.ErrKeyNotFound) {
			return history.Op{Outcome: history.OK}
		}
		out, msg := outcome(err)
		if out == history.Unknown {
			out = history.Fail // a read that did not answer has no effect
		}
		if err != nil {
			return history.Op{Outcome: out, Err: msg}
		}
		return history.Op{Outcome: history.OK, Found: true, Result: string(r.KV.Value)}
	})
}

func (w *Workload) put(ctx context.Context, c *client.Client, p int, key, value string) (history.Op, error) {
	return w.run(ctx, history.Op{Process: p, Kind: history.Put, Key: key, Value: value}, func(ctx context.Context) history.Op {
		_, err := c.Put(ctx, w.RegisterNS, []byte(key), []byte(value))
		out, msg := outcome(err)
		return history.Op{Outcome: out, Err: msg}
	})
}

func (w *Workload) cas(ctx context.Context, c *client.Client, p int, key, old, value string) (history.Op, error) {
	return w.run(ctx, history.Op{Process: p, Kind: history.CAS, Key: key, Old: old, Value: value}, func(ctx context.Context) history.Op {
		_, err := c.Txn(ctx, w.RegisterNS, client.Txn{
			Compares: []client.Compare{{Key: []byte(key), Target: client.TargetValue, Result: client.ResultEqual, Value: []byte(old)}},
			Then:     []client.Op{{Type: client.OpPut, Key: []byte(key), Value: []byte(value)}},
		})
		if errors.Is(err, client.ErrCompareFailed) {
			return history.Op{Outcome: history.OK, Swapped: false}
		}
		out, msg := outcome(err)
		return history.Op{Outcome: out, Swapped: err == nil, Err: msg}
	})
}

// BankRead reads every account in one read-only txn as process p.
func (w *Workload) BankRead(ctx context.Context, c *client.Client, p int) (history.Op, error) {
	return w.run(ctx, history.Op{Process: p, Kind: history.BankRead}, func(ctx context.Context) history.Op {
		var t client.Txn
		for _, a := range w.Accounts {
			t.Then = append(t.Then, client.Op{Type: client.OpGet, Key: []byte(a)})
		}
		r, err := c.Txn(ctx, w.BankNS, t)
		if err != nil {
			_, msg := outcome(err)
			return history.Op{Outcome: history.Fail, Err: msg} // a read has no effect
		}
		bal := map[string]int64{}
		for _, res := range r.Results {
			for _, kv := range res.KVs {
				v, perr := strconv.ParseInt(string(kv.Value), 10, 64)
				if perr != nil {
					v = -1 << 62 // the checker reports it as negative
				}
				bal[string(kv.Key)] = v
			}
		}
		return history.Op{Outcome: history.OK, Balances: bal}
	})
}

func (w *Workload) transfer(ctx context.Context, c *client.Client, p int, from, to string, fromBal, toBal, amount int64) (history.Op, error) {
	op := history.Op{Process: p, Kind: history.Transfer, From: from, To: to, Amount: amount}
	return w.run(ctx, op, func(ctx context.Context) history.Op {
		itoa := func(v int64) []byte { return []byte(strconv.FormatInt(v, 10)) }
		_, err := c.Txn(ctx, w.BankNS, client.Txn{
			Compares: []client.Compare{
				{Key: []byte(from), Target: client.TargetValue, Result: client.ResultEqual, Value: itoa(fromBal)},
				{Key: []byte(to), Target: client.TargetValue, Result: client.ResultEqual, Value: itoa(toBal)},
			},
			Then: []client.Op{
				{Type: client.OpPut, Key: []byte(from), Value: itoa(fromBal - amount)},
				{Type: client.OpPut, Key: []byte(to), Value: itoa(toBal + amount)},
			},
		})
		if errors.Is(err, client.ErrCompareFailed) {
			return history.Op{Outcome: history.Fail, Err: client.CodeCompareFailed}
		}
		out, msg := outcome(err)
		return history.Op{Outcome: out, Err: msg}
	})
}

// RegisterClient runs register operations until stop is closed: gets,
// puts of values unique to this client, and compare-and-sets from the value
// it last read. ctx ends it at once (operations in flight become Unknown).
func (w *Workload) RegisterClient(ctx context.Context, stop <-chan struct{}, worker int, seed uint64) error {
	c, err := w.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(seed, uint64(worker)))
	p := w.newProcess()
	last := map[string]string{} // key -> value this client last read
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		key := w.Keys[rng.IntN(len(w.Keys))]
		value := fmt.Sprintf("w%d-%d", worker, seq)
		var res history.Op
		switch r := rng.IntN(10); {
		case r < 5:
			res, err = w.Get(ctx, c, p, key)
			if err == nil && res.Outcome == history.OK && res.Found {
				last[key] = res.Result
			}
		case r < 8 || last[key] == "":
			res, err = w.put(ctx, c, p, key, value)
		default:
			res, err = w.cas(ctx, c, p, key, last[key], value)
		}
		if err != nil {
			return err
		}
		if res.Outcome == history.Unknown {
			p = w.newProcess()
		}
	}
}

// BankClient reads all accounts and then moves a small amount between two
// of them with a txn that compares both balances it read, until stop is
// closed.
func (w *Workload) BankClient(ctx context.Context, stop <-chan struct{}, worker int, seed uint64) error {
	c, err := w.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(seed, uint64(worker)))
	p := w.newProcess()
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		read, err := w.BankRead(ctx, c, p)
		if err != nil {
			return err
		}
		if read.Outcome != history.OK || len(read.Balances) != len(w.Accounts) {
			continue
		}
		from := w.Accounts[rng.IntN(len(w.Accounts))]
		to := w.Accounts[rng.IntN(len(w.Accounts))]
		if from == to || read.Balances[from] <= 0 {
			continue
		}
		amount := 1 + rng.Int64N(min(5, read.Balances[from]))
		res, err := w.transfer(ctx, c, p, from, to, read.Balances[from], read.Balances[to], amount)
		if err != nil {
			return err
		}
		if res.Outcome == history.Unknown {
			p = w.newProcess()
		}
	}
}

// FinalReads reads every register and the bank once the cluster is
// healthy, retrying each until it answers or ctx ends; the reads are
// recorded like any other. It returns the registers' final values.
func (w *Workload) FinalReads(ctx context.Context) (map[string]history.Final, error) {
	c, err := w.newClient()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	p := w.newProcess()
	final := map[string]history.Final{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for _, k := range w.Keys {
		for {
			res, err := w.Get(ctx, c, p, k)
			if err != nil {
				return nil, err
			}
			if res.Outcome == history.OK {
				final[k] = history.Final{Found: res.Found, Value: res.Result}
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("nemesis: final read of %s: %s: %w", k, res.Err, ctx.Err())
			case <-tick.C:
			}
		}
	}
	for {
		res, err := w.BankRead(ctx, c, p)
		if err != nil {
			return nil, err
		}
		if res.Outcome == history.OK {
			return final, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nemesis: final bank read: %s: %w", res.Err, ctx.Err())
		case <-tick.C:
		}
	}
}

// NemesisStats counts what RunNemesis did.
type NemesisStats struct {
	Kills, LeaderKills, Restarts int
	// Errors are failures of the harness itself (a member that would not
	// restart or answer).
	Errors []error
}

// RunNemesis kills a member with SIGKILL (the leader with probability
// leaderProb, else a random one), waits 0.5-3 s, restarts it from its data
// directory, waits until it answers and 0.5-1.5 s more, and repeats until
// ctx ends. Every member it killed is running again when it returns.
func RunNemesis(ctx context.Context, c *Cluster, seed uint64, leaderProb float64, logf func(format string, args ...any)) NemesisStats {
	rng := rand.New(rand.NewPCG(seed, 0x6e656d))
	var st NemesisStats
	pause := func(minMs, maxMs int) bool {
		t := time.NewTimer(time.Duration(minMs+rng.IntN(maxMs-minMs+1)) * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for pause(500, 1500) {
		victim := uint64(0)
		if rng.Float64() < leaderProb {
			victim = c.Leader(ctx)
		}
		leader := victim != 0
		if victim == 0 {
			victim = c.Members[rng.IntN(len(c.Members))].ID
		}
		if err := c.Kill(victim); err != nil {
			st.Errors = append(st.Errors, err)
			continue
		}
		st.Kills++
		if leader {
			st.LeaderKills++
		}
		logf("nemesis: killed member %d (leader: %v)", victim, leader)
		pause(500, 3000) // even when ctx ended: the restart below heals
		if err := c.Restart(victim); err != nil {
			st.Errors = append(st.Errors, err)
			continue
		}
		st.Restarts++
		wctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := c.WaitAnswers(wctx, victim); err != nil {
			st.Errors = append(st.Errors, err)
		} else if err := c.WaitGroups(wctx); err != nil {
			// Killing again now would take a majority of a view that has
			// not changed yet: beyond what the mode claims to survive.
			// Report and stop the faults.
			st.Errors = append(st.Errors, err)
			cancel()
			return st
		}
		cancel()
	}
	return st
}

// RunClients runs registers register clients and banks bank clients until
// stop is closed, and returns their first error (a full recorder).
func (w *Workload) RunClients(ctx context.Context, stop <-chan struct{}, registers, banks int, seed uint64) error {
	var wg sync.WaitGroup
	errs := make(chan error, registers+banks)
	for i := range registers + banks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i < registers {
				err = w.RegisterClient(ctx, stop, i, seed)
			} else {
				err = w.BankClient(ctx, stop, i, seed)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}
