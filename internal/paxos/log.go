package paxos

import (
	"math"

	"github.com/chorus-project/chorus/internal/invariant"
)

// accLog is a member's accepted log in memory: the snapshot's metadata and the
// entries above it, contiguous. It also tracks what the disk holds, so Ready
// can hand out exactly the change to persist.
type accLog struct {
	snap    SnapshotMeta
	entries []Entry // entries[i].Slot == snap.Slot+1+i

	// unstableFrom is the first slot whose in-memory entry the disk may not
	// hold; every entry below it is on disk exactly as in memory.
	unstableFrom uint64
	// diskLast is the highest slot the disk holds (an entry or the snapshot).
	diskLast uint64
	// dirtyFrom is the lowest slot changed since the last Ready, so that
	// Advance does not mark a change made after Ready as durable.
	dirtyFrom uint64
}

func newLog(snap SnapshotMeta, entries []Entry) accLog {
	l := accLog{snap: snap, entries: entries, dirtyFrom: math.MaxUint64}
	l.unstableFrom = l.last() + 1
	l.diskLast = l.last()
	return l
}

func (l *accLog) first() uint64 { return l.snap.Slot + 1 }
func (l *accLog) last() uint64  { return l.snap.Slot + uint64(len(l.entries)) }

// has reports whether slot is an entry in memory (not compacted, not beyond).
func (l *accLog) has(slot uint64) bool { return slot >= l.first() && slot <= l.last() }

// at returns the entry at slot, which must be held.
func (l *accLog) at(slot uint64) Entry {
	invariant.Check(l.has(slot), "log: slot %d outside %d..%d", slot, l.first(), l.last())
	return l.entries[slot-l.first()]
}

// ballotAt returns the ballot of slot: the snapshot's at its slot, and false
// for a compacted or missing slot.
func (l *accLog) ballotAt(slot uint64) (Ballot, bool) {
	switch {
	case slot == l.snap.Slot:
		return l.snap.Ballot, true
	case l.has(slot):
		return l.at(slot).Ballot, true
	}
	return Ballot{}, false
}

// slice returns the entries lo..hi inclusive, all held. It aliases the log.
func (l *accLog) slice(lo, hi uint64) []Entry {
	if lo > hi {
		return nil
	}
	invariant.Check(l.has(lo) && l.has(hi), "log: slice %d..%d outside %d..%d", lo, hi, l.first(), l.last())
	return l.entries[lo-l.first() : hi-l.first()+1 : hi-l.first()+1]
}

func (l *accLog) markDirty(slot uint64) {
	l.unstableFrom = min(l.unstableFrom, slot)
	l.dirtyFrom = min(l.dirtyFrom, slot)
}

// put writes e at its slot, which is held or last+1.
func (l *accLog) put(e Entry) {
	invariant.Check(e.Slot >= l.first() && e.Slot <= l.last()+1, "log: put slot %d outside %d..%d", e.Slot, l.first(), l.last()+1)
	if e.Slot == l.last()+1 {
		l.entries = append(l.entries, e)
	} else {
		l.entries[e.Slot-l.first()] = e
	}
	l.markDirty(e.Slot)
}

// truncateFrom deletes every entry at slot and above.
func (l *accLog) truncateFrom(slot uint64) {
	if slot > l.last() {
		return
	}
	invariant.Check(slot >= l.first(), "log: truncate at %d below first %d", slot, l.first())
	// Clear the references so dropped data can be collected.
	clear(l.entries[slot-l.first():])
	l.entries = l.entries[:slot-l.first()]
	l.markDirty(slot)
}

// compact drops the entries up to snap.Slot, which the disk already holds in
// a snapshot. Entries above it stay as they are, on disk and in memory.
func (l *accLog) compact(snap SnapshotMeta) {
	invariant.Check(snap.Slot > l.snap.Slot, "log: compact to %d, already at %d", snap.Slot, l.snap.Slot)
	if snap.Slot >= l.last() {
		l.entries = nil
	} else {
		l.entries = append([]Entry(nil), l.entries[snap.Slot-l.first()+1:]...)
	}
	l.snap = snap
	l.unstableFrom = max(l.unstableFrom, snap.Slot+1)
	l.diskLast = max(l.diskLast, snap.Slot)
}

// needsPersist reports whether the disk's log differs from memory.
func (l *accLog) needsPersist() bool {
	return l.unstableFrom <= l.last() || l.diskLast >= l.unstableFrom
}

// stableLast is the highest slot the disk holds exactly as in memory.
func (l *accLog) stableLast() uint64 { return min(l.unstableFrom-1, l.last()) }
