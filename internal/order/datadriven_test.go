package order

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/chorus-project/chorus/internal/peer"
)

// TestScripts runs testdata/*.txt. Regenerate the expected output with
//
//	go test ./internal/order -run TestScripts -rewrite
//
// Commands (ids are member ids 1..n; rank = id-1, so 1 is the sequencer):
//
//	init n=3 [window=8] [payload=1024] [batch=16] [nak=2] [stability=3] [report=0] [verbose]
//	send from=1 order=fifo data=a        Send on member 1
//	net                                  list the queued messages
//	deliver [idx=i] [from=x] [to=y] [type=data] [n=k] [together]
//	                                     deliver matching queued messages in
//	                                     queue order (idx: only the i-th;
//	                                     together: one Ready per member at
//	                                     the end, not one per message)
//	drop [idx=i] [from=x] [to=y] [type=t]  drop matching queued messages
//	dup idx=i                            queue a copy of the i-th message
//	partition a=(1,2) b=(3)              only members of one group talk
//	heal                                 end the partition
//	crash id=3                           member 3 stops for good
//	tick [ids=(1,2)] [n=k]               tick members k times (all by default)
//	stabilize [rounds=k]                 drain and tick until settled
//	state [ids=(1,2)]                    each member's view of every stream
//	log                                  every member's deliveries so far
//	check [survivors=(1,2)]              run the history checkers (with
//	                                     survivors: after a flush, only on
//	                                     them, and virtual synchrony too)
//	flush survivors=(1,2)                pause, digest, cut, forward, finish
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var h *harness
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd != "init" && h == nil {
				td.Fatalf(t, "init first")
			}
			if h != nil {
				h.out.Reset()
			}
			switch td.Cmd {
			case "init":
				h = scriptInit(t, td)
			case "send":
				var from int
				var o, data string
				td.ScanArgs(t, "from", &from)
				td.ScanArgs(t, "order", &o)
				td.ScanArgs(t, "data", &data)
				ord, err := ParseOrder(o)
				if err != nil {
					td.Fatalf(t, "%v", err)
				}
				if _, err := h.send(peer.ID(from), ord, data); err != nil {
					h.printf("error: %v\n", err)
				}
			case "net":
				for i, m := range h.queue {
					h.printf("%d %s\n", i, m)
				}
			case "deliver", "drop", "dup":
				scriptQueueOp(t, td, h)
			case "partition":
				h.group = map[peer.ID]int{}
				for i, arg := range td.CmdArgs {
					for _, v := range arg.Vals {
						id, err := strconv.Atoi(v)
						if err != nil {
							td.Fatalf(t, "partition: %v", err)
						}
						h.group[peer.ID(id)] = i + 1
					}
				}
			case "heal":
				h.group = nil
			case "crash":
				var id int
				td.ScanArgs(t, "id", &id)
				h.node(peer.ID(id)).crashed = true
			case "tick":
				n := 1
				td.MaybeScanArgs(t, "n", &n)
				for range n {
					for _, id := range scriptIDs(t, td, h, "ids") {
						h.tick(id)
					}
				}
			case "stabilize":
				rounds := 200
				td.MaybeScanArgs(t, "rounds", &rounds)
				r, ok := h.stabilize(rounds)
				if ok {
					h.printf("settled after %d rounds\n", r)
				} else {
					h.printf("not settled after %d rounds\n", r)
				}
			case "state":
				for _, id := range scriptIDs(t, td, h, "ids") {
					h.printf("%s", h.state(id))
				}
			case "log":
				for _, n := range h.nodes {
					var ds []string
					for _, d := range n.log {
						ds = append(ds, fmt.Sprintf("%s.%d", d.Sender, d.Seq))
					}
					h.printf("%s: %s\n", n.id, strings.Join(ds, " "))
				}
			case "check":
				ids := scriptIDs(t, td, h, "survivors")
				vs := checkHistory(h, ids, !td.HasArg("survivors"))
				if td.HasArg("survivors") {
					vs = append(vs, checkSameSet(h, ids)...)
				}
				if h.flushed != nil {
					vs = append(vs, checkCut(h, ids, h.flushed.cut, h.flushed.stuck)...)
				}
				for _, v := range vs {
					h.printf("violation %s\n", v)
				}
				for _, err := range h.errs {
					h.printf("error %v\n", err)
				}
				if len(vs) == 0 && len(h.errs) == 0 {
					h.printf("ok\n")
				}
			case "flush":
				if _, err := h.flush(scriptIDs(t, td, h, "survivors")); err != nil {
					h.printf("flush error: %v\n", err)
				}
			default:
				td.Fatalf(t, "unknown command %s", td.Cmd)
			}
			return h.out.String()
		})
	})
}

func scriptInit(t *testing.T, td *datadriven.TestData) *harness {
	cfg := Config{SendWindowMax: 8, PayloadBytesMax: 1024, BatchEntriesMax: 16, NakTicks: 2, StabilityTicks: 3}
	n := 3
	td.ScanArgs(t, "n", &n)
	td.MaybeScanArgs(t, "window", &cfg.SendWindowMax)
	td.MaybeScanArgs(t, "payload", &cfg.PayloadBytesMax)
	td.MaybeScanArgs(t, "batch", &cfg.BatchEntriesMax)
	td.MaybeScanArgs(t, "nak", &cfg.NakTicks)
	td.MaybeScanArgs(t, "stability", &cfg.StabilityTicks)
	td.MaybeScanArgs(t, "report", &cfg.ReportEveryMessages)
	h, err := newHarness(cfg, n, 1)
	if err != nil {
		td.Fatalf(t, "%v", err)
	}
	h.verbose = td.HasArg("verbose")
	return h
}

// scriptIDs returns the ids listed in arg, or every member.
func scriptIDs(t *testing.T, td *datadriven.TestData, h *harness, arg string) []peer.ID {
	a, ok := td.Arg(arg)
	if !ok {
		return slices.Clone(h.ids)
	}
	var ids []peer.ID
	for _, v := range a.Vals {
		id, err := strconv.Atoi(v)
		if err != nil || id < 1 || id > len(h.ids) {
			td.Fatalf(t, "%s: bad id %q", arg, v)
		}
		ids = append(ids, peer.ID(id))
	}
	return ids
}

// scriptQueueOp implements deliver, drop and dup on the messages that match
// the filters.
func scriptQueueOp(t *testing.T, td *datadriven.TestData, h *harness) {
	idx, from, to, n := -1, 0, 0, -1
	var typ string
	td.MaybeScanArgs(t, "idx", &idx)
	td.MaybeScanArgs(t, "from", &from)
	td.MaybeScanArgs(t, "to", &to)
	td.MaybeScanArgs(t, "type", &typ)
	td.MaybeScanArgs(t, "n", &n)
	var picked []Message
	var rest []Message
	for i, m := range h.queue {
		match := (idx < 0 || i == idx) && (from == 0 || m.From == peer.ID(from)) &&
			(to == 0 || m.To == peer.ID(to)) && (typ == "" || m.Type.String() == typ) &&
			(n < 0 || len(picked) < n)
		if match {
			picked = append(picked, m)
		}
		if !match || td.Cmd == "dup" {
			rest = append(rest, m)
		}
	}
	if len(picked) == 0 {
		td.Fatalf(t, "no queued message matches")
	}
	switch td.Cmd {
	case "dup":
		h.queue = append(rest, picked...)
		for _, m := range picked {
			h.printf("duplicated %s\n", m)
		}
	case "drop":
		h.queue = rest
		for _, m := range picked {
			h.printf("dropped %s\n", m)
		}
	case "deliver":
		h.queue = rest
		if td.HasArg("together") {
			// Step every message first and collect each member's output
			// once: one Ready for the lot, as a shell that drains its
			// socket before calling Ready would.
			var touched []*node
			for _, m := range picked {
				h.printf("%s\n", m)
				n := h.node(m.To)
				if err := n.e.Step(m); err != nil {
					h.printf("%s: step error: %v\n", n.id, err)
				}
				h.observe(n, false)
				if !slices.Contains(touched, n) {
					touched = append(touched, n)
				}
			}
			for _, n := range touched {
				h.collect(n, false)
			}
			return
		}
		for _, m := range picked {
			if h.connected(m.From, m.To) {
				h.printf("%s\n", m)
			} else {
				h.printf("lost %s\n", m)
			}
			h.deliver(m)
		}
	}
}
