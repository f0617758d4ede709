package vsync

import (
	"fmt"
	"slices"

	"github.com/chorus-project/chorus/internal/order"
	"github.com/chorus-project/chorus/internal/peer"
)

// The checkers of the virtual synchrony properties (Chockler, Keidar,
// Vitenberg 2001; docs research notes section 6), run over a harness
// history. Each violation is reported as "<property>: <detail>"; the
// planted-bug tests look for the property name.
const (
	propSelfInclusion = "self inclusion"
	propMonotonic     = "local monotonicity"
	propAgreement     = "agreement on view contents"
	propViewSequence  = "primary view sequence"
	propSendingView   = "sending view delivery"
	propVirtualSync   = "virtual synchrony"
	propNoDuplication = "no duplication"
	propNoCreation    = "no creation"
	propTotalOrder    = "total order"
	propFIFO          = "reliable fifo"
	propLiveness      = "liveness"
	propSelfDelivery  = "self delivery"
)

func violation(prop, format string, args ...any) string {
	return prop + ": " + fmt.Sprintf(format, args...)
}

// checkHistory runs every safety checker; with converged it also checks
// that the live processes ended in one view made of exactly themselves.
func checkHistory(h *harness, converged bool) []string {
	var vs []string
	vs = append(vs, checkViews(h.hist)...)
	vs = append(vs, checkDeliveries(h.hist)...)
	vs = append(vs, checkVirtualSynchrony(h.hist)...)
	vs = append(vs, checkTotalOrder(h.hist)...)
	vs = append(vs, checkSelfDelivery(h.hist)...)
	if converged {
		vs = append(vs, checkConverged(h)...)
	}
	return vs
}

// checkViews: self inclusion, local monotonicity, agreement on view
// contents, and one sequence of primary views (each process installs
// consecutive ids after its first, and consecutive views share a member).
func checkViews(hist *history) []string {
	var vs []string
	byID := map[uint64]View{}
	for _, p := range hist.procs {
		for i, v := range p.installs {
			if !v.Contains(p.member) {
				vs = append(vs, violation(propSelfInclusion, "%s installed %s", p.member, v))
			}
			if i > 0 && v.ID <= p.installs[i-1].ID {
				vs = append(vs, violation(propMonotonic, "%s installed %s after %s", p.member, v, p.installs[i-1]))
			}
			if i > 0 && v.ID != p.installs[i-1].ID+1 && v.ID > p.installs[i-1].ID {
				vs = append(vs, violation(propViewSequence, "%s skipped from %s to %s", p.member, p.installs[i-1], v))
			}
			if o, ok := byID[v.ID]; ok && !o.Equal(v) {
				vs = append(vs, violation(propAgreement, "view %d is %s at %s and %s elsewhere", v.ID, v, p.member, o))
			}
			byID[v.ID] = v
		}
	}
	for id, v := range byID {
		if next, ok := byID[id+1]; ok && !slices.ContainsFunc(next.Members, v.Contains) {
			vs = append(vs, violation(propViewSequence, "%s and %s share no member", v, next))
		}
	}
	slices.Sort(vs)
	return vs
}

// checkDeliveries: no creation (every applied record was sent, with that
// payload), sending view delivery (in the view it was sent in), no
// duplication, and reliable FIFO (each sender's seqs in a view applied
// from 1 without gaps, in order).
func checkDeliveries(hist *history) []string {
	var vs []string
	sentIn := map[string][]uint64{} // sender/payload -> views it was sent in
	for k, p := range hist.sends {
		key := fmt.Sprintf("%s/%s", k.sender, p)
		sentIn[key] = append(sentIn[key], k.view)
	}
	for _, p := range hist.procs {
		if !p.restored {
			continue
		}
		seen := map[msgKey]bool{}
		last := map[[2]uint64]uint64{}
		for _, r := range p.node.state {
			k := r.key()
			if payload, ok := hist.sends[k]; !ok || payload != r.Payload {
				if v := sentIn[fmt.Sprintf("%s/%s", r.Sender, r.Payload)]; len(v) > 0 {
					vs = append(vs, violation(propSendingView, "%s applied %s.%d %q in view %d, sent in %v", p.member, r.Sender, r.Seq, r.Payload, r.View, v))
				} else {
					vs = append(vs, violation(propNoCreation, "%s applied %s.%d %q in view %d, never sent", p.member, r.Sender, r.Seq, r.Payload, r.View))
				}
			}
			s := [2]uint64{r.View, uint64(r.Sender)}
			switch {
			case seen[k]:
				vs = append(vs, violation(propNoDuplication, "%s applied %s.%d of view %d twice", p.member, r.Sender, r.Seq, r.View))
			case r.Seq != last[s]+1:
				vs = append(vs, violation(propFIFO, "%s applied %s.%d of view %d after %d", p.member, r.Sender, r.Seq, r.View, last[s]))
			}
			seen[k] = true
			last[s] = max(last[s], r.Seq)
		}
	}
	return vs
}

// viewSet returns the keys a process applied in view v.
func viewSet(p *proc, v uint64) map[msgKey]bool {
	s := map[msgKey]bool{}
	for _, r := range p.node.state {
		if r.View == v {
			s[r.key()] = true
		}
	}
	return s
}

// movers returns, for each view id, the processes that installed it and
// then the next one, with the restored ones only (a joiner that never
// restored has no state to compare).
func movers(hist *history) map[uint64][]*proc {
	out := map[uint64][]*proc{}
	for _, p := range hist.procs {
		if !p.restored {
			continue
		}
		for i := 0; i+1 < len(p.installs); i++ {
			if p.installs[i+1].ID == p.installs[i].ID+1 {
				out[p.installs[i].ID] = append(out[p.installs[i].ID], p)
			}
		}
	}
	return out
}

// checkVirtualSynchrony: processes that pass together from V to V+1
// applied the same set of messages in V.
func checkVirtualSynchrony(hist *history) []string {
	var vs []string
	for v, ps := range movers(hist) {
		for _, q := range ps[1:] {
			a, b := viewSet(ps[0], v), viewSet(q, v)
			if !mapsEqual(a, b) {
				vs = append(vs, violation(propVirtualSync, "%s and %s passed from view %d with %d and %d messages: %s",
					ps[0].member, q.member, v, len(a), len(b), diff(a, b)))
			}
		}
	}
	slices.Sort(vs)
	return vs
}

func mapsEqual(a, b map[msgKey]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func diff(a, b map[msgKey]bool) string {
	var only []string
	for k := range a {
		if !b[k] {
			only = append(only, fmt.Sprintf("+%s.%d", k.sender, k.seq))
		}
	}
	for k := range b {
		if !a[k] {
			only = append(only, fmt.Sprintf("-%s.%d", k.sender, k.seq))
		}
	}
	slices.Sort(only)
	return fmt.Sprint(only)
}

// checkTotalOrder: within a view, the total and safe messages applied by
// any two processes are in the same relative order; processes that pass
// together to the next view applied the same sequence.
func checkTotalOrder(hist *history) []string {
	seqs := func(p *proc, v uint64) []msgKey {
		var out []msgKey
		for _, r := range p.node.state {
			if r.View == v && (r.Order == order.Total || r.Order == order.Safe) {
				out = append(out, r.key())
			}
		}
		return out
	}
	var vs []string
	views := map[uint64]bool{}
	for _, p := range hist.procs {
		if !p.restored {
			continue
		}
		for _, r := range p.node.state {
			views[r.View] = true
		}
	}
	for v := range views {
		var ps []*proc
		for _, p := range hist.procs {
			if p.restored {
				ps = append(ps, p)
			}
		}
		for i := range ps {
			for j := i + 1; j < len(ps); j++ {
				a, b := seqs(ps[i], v), seqs(ps[j], v)
				pos := map[msgKey]int{}
				for k, x := range a {
					pos[x] = k
				}
				prev := -1
				for _, x := range b {
					if k, ok := pos[x]; ok {
						if k < prev {
							vs = append(vs, violation(propTotalOrder, "%s and %s order view %d differently at %s.%d", ps[i].member, ps[j].member, v, x.sender, x.seq))
							break
						}
						prev = k
					}
				}
			}
		}
	}
	for v, ps := range movers(hist) {
		for _, q := range ps[1:] {
			if !slices.Equal(seqs(ps[0], v), seqs(q, v)) {
				vs = append(vs, violation(propTotalOrder, "%s and %s passed from view %d with different total sequences", ps[0].member, q.member, v))
			}
		}
	}
	slices.Sort(vs)
	return vs
}

// checkConverged: once faults stop, every live process installed the same
// last view, made of exactly the live processes.
func checkConverged(h *harness) []string {
	live := h.live()
	if len(live) == 0 {
		return nil
	}
	var want []peer.Member
	for _, hn := range live {
		want = append(want, hn.proc.member)
	}
	slices.SortFunc(want, func(a, b peer.Member) int { return int(a.ID) - int(b.ID) })
	var vs []string
	for _, hn := range live {
		v, ok := hn.n.View()
		got := slices.Clone(v.Members)
		slices.SortFunc(got, func(a, b peer.Member) int { return int(a.ID) - int(b.ID) })
		if !ok || !slices.Equal(got, want) {
			vs = append(vs, violation(propLiveness, "%s is in %s, live processes are %v", hn.proc.member, v, want))
		}
	}
	return vs
}

// checkSelfDelivery: a process that sent m in V and went on to install
// V+1 applied m in V (its own message is in its digest, so in the cut).
func checkSelfDelivery(hist *history) []string {
	var vs []string
	for _, p := range hist.procs {
		if !p.restored {
			continue
		}
		moved := map[uint64]bool{}
		for i := 0; i+1 < len(p.installs); i++ {
			if p.installs[i+1].ID == p.installs[i].ID+1 {
				moved[p.installs[i].ID] = true
			}
		}
		var mine map[msgKey]bool
		for k := range hist.sends {
			if k.sender != p.member.ID || !moved[k.view] {
				continue
			}
			if mine == nil {
				mine = map[msgKey]bool{}
				for _, r := range p.node.state {
					mine[r.key()] = true
				}
			}
			if !mine[k] {
				vs = append(vs, violation(propSelfDelivery, "%s sent %s.%d in view %d and left it without applying it", p.member, k.sender, k.seq, k.view))
			}
		}
	}
	slices.Sort(vs)
	return vs
}
