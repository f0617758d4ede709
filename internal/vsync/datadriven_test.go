package vsync

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
)

// TestScripts runs testdata/*.txt. Regenerate the expected output with
//
//	go test ./internal/vsync -run TestScripts -rewrite
//
// Commands (processes are ids; founders are 1..n in view 1):
//
//	init n=3 [plant=name] [trace]    founders; trace prints protocol messages
//	join id=4 via=(1)                a new incarnation of 4 joins via 1
//	leave id=2                       member 2 asks to leave
//	send from=1 order=total data=x   multicast
//	deliver [from=x] [to=y] [type=t] [once]
//	                                 deliver matching queued messages in
//	                                 queue order, and those their delivery
//	                                 produces, until none match (once: only
//	                                 those queued now)
//	drop [from=x] [to=y] [type=t]    drop matching queued messages
//	net [all]                        list queued protocol messages (all:
//	                                 order and liveness too)
//	tick [ids=(1,2)] [n=k]           tick live processes k times
//	idle [n=k] [liveness-only]       k times: tick every live process, then
//	                                 deliver order and liveness messages
//	                                 (protocol messages stay queued;
//	                                 liveness-only: order ones too)
//	stabilize [rounds=k]             drain and tick until the group settles
//	run n=k                          drain and tick k times, settled or not
//	crash id=3                       process 3 stops for good
//	partition (1,2) (3)              only processes of one group talk
//	heal                             end the partition
//	status                           each process's view and state
//	log [ids=(1,2)]                  each process's applied records by view
//	check [converged]                run the checkers
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
			case "join":
				var id int
				td.ScanArgs(t, "id", &id)
				if err := h.join(peer.ID(id), scriptIDs(t, td, h, "via")); err != nil {
					h.printf("error: %v\n", err)
				}
			case "leave":
				var id int
				td.ScanArgs(t, "id", &id)
				hn := h.nodes[peer.ID(id)]
				if err := hn.n.Leave(); err != nil {
					h.printf("error: %v\n", err)
				}
				h.collect(hn)
			case "send":
				var from int
				var o, data string
				td.ScanArgs(t, "from", &from)
				td.ScanArgs(t, "order", &o)
				td.ScanArgs(t, "data", &data)
				ord, err := order.ParseOrder(o)
				if err != nil {
					td.Fatalf(t, "%v", err)
				}
				if err := h.send(peer.ID(from), ord, data); err != nil {
					h.printf("error: %v\n", err)
				}
			case "deliver", "drop":
				scriptQueueOp(t, td, h)
			case "net":
				hidden := 0
				for i, m := range h.queue {
					if !td.HasArg("all") && (m.Type == MsgOrder || m.Type == MsgLiveness) {
						hidden++
						continue
					}
					h.printf("%d %s\n", i, m)
				}
				if hidden > 0 {
					h.printf("(%d order and liveness messages)\n", hidden)
				}
			case "tick":
				n := 1
				td.MaybeScanArgs(t, "n", &n)
				ids := scriptIDs(t, td, h, "ids")
				for range n {
					for _, id := range ids {
						h.tick(h.nodes[id])
					}
				}
			case "idle":
				n := 1
				td.MaybeScanArgs(t, "n", &n)
				for range n {
					for _, hn := range h.live() {
						h.tick(hn)
					}
					h.deliverBackground(td.HasArg("liveness-only"))
				}
			case "run":
				n := 1
				td.MaybeScanArgs(t, "n", &n)
				for range n {
					h.drain()
					for _, hn := range h.live() {
						h.tick(hn)
					}
				}
				h.drain()
			case "stabilize":
				rounds := 300
				td.MaybeScanArgs(t, "rounds", &rounds)
				if r, ok := h.stabilize(rounds); ok {
					h.printf("settled after %d rounds\n", r)
				} else {
					h.printf("not settled after %d rounds\n", r)
				}
			case "crash":
				var id int
				td.ScanArgs(t, "id", &id)
				hn := h.nodes[peer.ID(id)]
				hn.crashed, hn.proc.crashed = true, true
			case "partition":
				h.group = map[peer.ID]int{}
				for i, arg := range td.CmdArgs {
					for _, v := range strings.Split(strings.Trim(arg.Key, "()"), ",") {
						id, err := strconv.Atoi(v)
						if err != nil {
							td.Fatalf(t, "partition: %v", err)
						}
						h.group[peer.ID(id)] = i + 1
					}
				}
			case "heal":
				h.group = nil
			case "status":
				h.status()
			case "log":
				for _, id := range scriptIDs(t, td, h, "ids") {
					hn := h.nodes[id]
					h.printf("%s:%s\n", hn.proc.member, formatState(hn.state))
				}
			case "check":
				vs := checkHistory(h, td.HasArg("converged"))
				for _, v := range vs {
					h.printf("violation %s\n", v)
				}
				if len(vs) == 0 {
					h.printf("ok\n")
				}
			default:
				td.Fatalf(t, "unknown command %s", td.Cmd)
			}
			return h.out.String()
		})
	})
}

// formatState prints applied records grouped by view: " v1: 1.1 2.1 | v2: 3.1".
func formatState(st []record) string {
	var b strings.Builder
	var cur uint64
	for _, r := range st {
		if r.View != cur {
			if cur != 0 {
				b.WriteString(" |")
			}
			fmt.Fprintf(&b, " v%d:", r.View)
			cur = r.View
		}
		fmt.Fprintf(&b, " %s.%d", r.Sender, r.Seq)
	}
	return b.String()
}

var plantNames = map[string]func(*plants){
	"ignore-accepted":       func(p *plants) { p.ignoreAccepted = true },
	"no-quorum":             func(p *plants) { p.noQuorum = true },
	"install-without-flush": func(p *plants) { p.installWithoutFlush = true },
	"flush-in-next-view":    func(p *plants) { p.flushInNextView = true },
	"duplicate":             func(p *plants) { p.duplicate = true },
	"corrupt":               func(p *plants) { p.corrupt = true },
	"swap-total":            func(p *plants) { p.swapTotal = true },
	"stay-when-excluded":    func(p *plants) { p.stayWhenExcluded = true },
	"reinstall":             func(p *plants) { p.reinstall = true },
	"ignore-faulty":         func(p *plants) { p.ignoreFaulty = true },
	"skip-fourth":           func(p *plants) { p.skipFourth = true },
	"hide-second-view":      func(p *plants) { p.hideSecondView = true },
	"skip-own-first":        func(p *plants) { p.skipOwnFirst = true },
}

func scriptInit(t *testing.T, td *datadriven.TestData) *harness {
	n := 3
	td.ScanArgs(t, "n", &n)
	var plant func(*Node)
	if td.HasArg("plant") {
		var name string
		td.ScanArgs(t, "plant", &name)
		set, ok := plantNames[name]
		if !ok {
			td.Fatalf(t, "unknown plant %q", name)
		}
		plant = func(n *Node) { set(&n.plant) }
	}
	h, err := newHarness(testConfig(), n, plant)
	if err != nil {
		td.Fatalf(t, "%v", err)
	}
	h.trace = td.HasArg("trace")
	return h
}

// scriptIDs returns the ids listed in arg, or every process.
func scriptIDs(t *testing.T, td *datadriven.TestData, h *harness, arg string) []peer.ID {
	a, ok := td.Arg(arg)
	if !ok {
		return h.ids()
	}
	var ids []peer.ID
	for _, v := range a.Vals {
		id, err := strconv.Atoi(v)
		if err != nil || id < 1 {
			td.Fatalf(t, "%s: bad id %q", arg, v)
		}
		ids = append(ids, peer.ID(id))
	}
	return ids
}

func scriptQueueOp(t *testing.T, td *datadriven.TestData, h *harness) {
	from, to := 0, 0
	var typ string
	td.MaybeScanArgs(t, "from", &from)
	td.MaybeScanArgs(t, "to", &to)
	td.MaybeScanArgs(t, "type", &typ)
	match := func(m Message) bool {
		return (from == 0 || m.From == peer.ID(from)) && (to == 0 || m.To == peer.ID(to)) && (typ == "" || m.Type.String() == typ)
	}
	if td.Cmd == "drop" {
		kept := h.queue[:0]
		dropped := 0
		for _, m := range h.queue {
			if match(m) {
				dropped++
				continue
			}
			kept = append(kept, m)
		}
		h.queue = kept
		h.printf("dropped %d\n", dropped)
		return
	}
	once := td.HasArg("once")
	budget := len(h.queue)
	for i := 0; i < 1_000_000; i++ {
		idx := -1
		for j, m := range h.queue {
			if once && j >= budget {
				break
			}
			if match(m) {
				idx = j
				break
			}
		}
		if idx < 0 {
			return
		}
		m := h.queue[idx]
		h.queue = append(h.queue[:idx], h.queue[idx+1:]...)
		budget--
		if !h.deliver(m) && h.trace {
			h.printf("lost %s\n", m)
		}
	}
	td.Fatalf(t, "deliver never ends")
}
