package paxos

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/cockroachdb/datadriven"
)

// TestInteraction runs the scripted scenarios in testdata/. Regenerate the
// expected output with: go test ./internal/paxos -run TestInteraction -rewrite
//
// Commands (ids are member ids; "[x]" is optional):
//
//	add-members 1 2 3 [q1=N] [q2=N] [seed=N] [batch=N] [chunk=N] [window=N] [bug=commit-one-short|read-without-quorum-round]
//	tick 1 [n]               tick-all [n]
//	campaign 1               propose 1 data          read-index 1 ctx
//	process-ready 1 [2 ...]  deliver [from=1] [to=2] [n=K] [drop] [corrupt]
//	stabilize                partition 1 / 2 3       heal
//	crash 2                  restart 2               compact 1 slot
//	add-member 1 4           remove-member 1 3
//	status [1 ...]           log [1 ...]             check
//	reset                    (forget the cluster; the next add-members starts anew)
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var c *cluster
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var out strings.Builder
			if c != nil {
				c.out = &out
			}
			if err := runCommand(t, &c, d, &out); err != nil {
				fmt.Fprintf(&out, "error: %v\n", err)
			}
			if c != nil && len(c.violations) > 0 {
				t.Errorf("%s: safety violations: %v", d.Pos, c.violations)
			}
			if out.Len() == 0 {
				return "ok\n"
			}
			return collapseRepeats(out.String())
		})
	})
}

// positional returns the arguments given without a value, in order.
func positional(d *datadriven.TestData) []string {
	var out []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			out = append(out, a.Key)
		}
	}
	return out
}

func intArg(d *datadriven.TestData, key string, def int) (int, error) {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) == 1 {
			return strconv.Atoi(a.Vals[0])
		}
	}
	return def, nil
}

func strArg(d *datadriven.TestData, key string) string {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) == 1 {
			return a.Vals[0]
		}
	}
	return ""
}

func runCommand(t *testing.T, cp **cluster, d *datadriven.TestData, out *strings.Builder) error {
	args := positional(d)
	switch d.Cmd {
	case "add-members":
		return cmdAddMembers(cp, d, args, out)
	case "reset":
		*cp = nil
		return nil
	}
	c := *cp
	if c == nil {
		return fmt.Errorf("no cluster: start with add-members")
	}
	up := func(id peer.ID) (*member, error) {
		m := c.members[id]
		if m == nil {
			return nil, fmt.Errorf("no member %s", id)
		}
		if m.core == nil {
			return nil, fmt.Errorf("member %s is down", id)
		}
		return m, nil
	}
	first := func() (*member, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("%s needs a member id", d.Cmd)
		}
		ids, err := parseIDs(args[:1])
		if err != nil {
			return nil, err
		}
		return up(ids[0])
	}
	switch d.Cmd {
	case "tick", "tick-all":
		var ids []peer.ID
		n := 1
		if d.Cmd == "tick" {
			m, err := first()
			if err != nil {
				return err
			}
			ids = []peer.ID{m.id}
			if len(args) > 1 {
				n, _ = strconv.Atoi(args[1])
			}
		} else {
			for _, id := range c.ids() {
				if c.members[id].core != nil {
					ids = append(ids, id)
				}
			}
			if len(args) > 0 {
				n, _ = strconv.Atoi(args[0])
			}
		}
		for range n {
			for _, id := range ids {
				c.members[id].core.Tick()
			}
		}
		return nil
	case "campaign":
		m, err := first()
		if err != nil {
			return err
		}
		return m.core.Campaign()
	case "propose", "read-index":
		m, err := first()
		if err != nil {
			return err
		}
		if len(args) != 2 {
			return fmt.Errorf("usage: %s id data", d.Cmd)
		}
		if d.Cmd == "propose" {
			return m.core.Propose([]byte(args[1]))
		}
		return m.core.ReadIndex([]byte(args[1]))
	case "process-ready":
		ids, err := parseIDs(args)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := up(id); err != nil {
				return err
			}
			c.processReady(id)
		}
		return nil
	case "deliver":
		from, _ := intArg(d, "from", 0)
		to, _ := intArg(d, "to", 0)
		n, _ := intArg(d, "n", 0)
		if c.deliverHow(peer.ID(from), peer.ID(to), d.HasArg("drop"), d.HasArg("corrupt"), n) == 0 {
			fmt.Fprintln(out, "nothing to deliver")
		}
		return nil
	case "stabilize":
		return c.stabilize()
	case "partition":
		c.groups = map[peer.ID]int{}
		g := 0
		for _, a := range args {
			if a == "/" {
				g++
				continue
			}
			ids, err := parseIDs([]string{a})
			if err != nil {
				return err
			}
			c.groups[ids[0]] = g + 1
		}
		return nil
	case "heal":
		c.groups = nil
		return nil
	case "crash":
		m, err := first()
		if err != nil {
			return err
		}
		c.crash(m.id)
		return nil
	case "restart":
		ids, err := parseIDs(args)
		if err != nil || len(ids) != 1 || c.members[ids[0]] == nil {
			return fmt.Errorf("usage: restart id")
		}
		if err := c.restart(ids[0]); err != nil {
			return err
		}
		fmt.Fprintln(out, c.statusLine(ids[0]))
		return nil
	case "compact":
		m, err := first()
		if err != nil {
			return err
		}
		if len(args) != 2 {
			return fmt.Errorf("usage: compact id slot")
		}
		slot, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			return err
		}
		if slot != m.sm.applied {
			return fmt.Errorf("the harness snapshots its state machine at its applied slot %d, not %d", m.sm.applied, slot)
		}
		// The shell snapshots its state machine, then compacts the core; the
		// two steps are one atomic step here, so the disk gets the core's
		// metadata (which knows the membership at slot).
		if err := m.core.Compact(slot); err != nil {
			return err
		}
		m.disk.snap = Snapshot{Meta: m.core.log.snap, Data: m.sm.snapshotData()}
		kept := m.disk.entries[:0:0]
		for _, e := range m.disk.entries {
			if e.Slot > slot {
				kept = append(kept, e)
			}
		}
		m.disk.entries = kept
		return nil
	case "add-member", "remove-member":
		m, err := first()
		if err != nil {
			return err
		}
		ids, err := parseIDs(args[1:])
		if err != nil || len(ids) != 1 {
			return fmt.Errorf("usage: %s leader id", d.Cmd)
		}
		op := AddMember
		if d.Cmd == "remove-member" {
			op = RemoveMember
		}
		if err := m.core.ProposeConfChange(ConfChange{Op: op, ID: ids[0]}); err != nil {
			return err
		}
		if op == AddMember && c.members[ids[0]] == nil {
			return c.addMember(ids[0], peer.Set{})
		}
		return nil
	case "status", "log":
		ids, err := parseIDs(args)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			ids = c.ids()
		}
		for _, id := range ids {
			if c.members[id] == nil {
				return fmt.Errorf("no member %s", id)
			}
			if d.Cmd == "status" {
				fmt.Fprintln(out, c.statusLine(id))
			} else {
				fmt.Fprintln(out, c.logLine(id))
			}
		}
		return nil
	case "check":
		// Safety violations fail the test in TestInteraction; this prints
		// what was checked so the transcript shows it.
		fmt.Fprintf(out, "chosen slots: %d, ballots led: %d, violations: %d\n", len(c.chosen), len(c.leaders), len(c.violations))
		return nil
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return nil
}

func cmdAddMembers(cp **cluster, d *datadriven.TestData, args []string, out *strings.Builder) error {
	ids, err := parseIDs(args)
	if err != nil {
		return err
	}
	if *cp == nil {
		seed, _ := intArg(d, "seed", 1)
		*cp = newCluster(uint64(seed), out)
	}
	c := *cp
	q1, _ := intArg(d, "q1", 0)
	q2, _ := intArg(d, "q2", 0)
	c.base.Q1, c.base.Q2 = q1, q2
	if b, _ := intArg(d, "batch", 0); b > 0 {
		c.base.BatchEntriesMax = b
	}
	if b, _ := intArg(d, "chunk", 0); b > 0 {
		c.base.SnapshotChunkBytes = b
	}
	if b, _ := intArg(d, "window", 0); b > 0 {
		c.base.SnapshotInflightChunksMax = b
	}
	switch strArg(d, "bug") {
	case "":
	case "commit-one-short":
		c.base.Bugs.CommitOneShort = true
	case "read-without-quorum-round":
		c.base.Bugs.ReadWithoutQuorumRound = true
	default:
		return fmt.Errorf("unknown bug %q", strArg(d, "bug"))
	}
	boot, err := peer.NewSet(ids...)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := c.addMember(id, boot); err != nil {
			return err
		}
	}
	for _, id := range ids {
		fmt.Fprintln(out, c.statusLine(id))
	}
	return nil
}

// collapseRepeats folds a block of up to four lines repeated back to back
// into one copy of the block with a count on each line, so that a burst of
// heartbeats reads as one round of the transcript.
func collapseRepeats(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	var b strings.Builder
	for i := 0; i < len(lines); {
		bestK, bestR := 1, 1
		for k := 1; k <= 4 && i+2*k <= len(lines); k++ {
			r := 1
			for i+(r+1)*k <= len(lines) && slices.Equal(lines[i:i+k], lines[i+r*k:i+(r+1)*k]) {
				r++
			}
			if r > 1 && r*k > bestR*bestK {
				bestK, bestR = k, r
			}
		}
		for _, l := range lines[i : i+bestK] {
			b.WriteString(l)
			if bestR > 1 {
				fmt.Fprintf(&b, " (x%d)", bestR)
			}
			b.WriteString("\n")
		}
		i += bestK * bestR
	}
	return b.String()
}
