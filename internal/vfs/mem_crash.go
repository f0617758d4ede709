package vfs

import (
	"math/rand/v2"
	"slices"

	"github.com/chorus-project/chorus/internal/invariant"
)

// tearSectorBytesDefault is the sector a torn write is cut on when
// CrashConfig.TearSectorBytes is 0: the logical sector of most disks, the
// unit a drive writes atomically (or not at all, as the garbage case models).
const tearSectorBytesDefault = 512

// CrashConfig says what survives a CrashClone.
type CrashConfig struct {
	// Rand, when nil, keeps exactly what was synced: un-synced file data and
	// un-synced directory entries (creates, renames, removes since the last
	// SyncDir of that directory) are all lost.
	//
	// When non-nil (a *rand.Rand from math/rand/v2 seeded by the test), each
	// un-synced write independently is lost, kept, or torn (a prefix cut at
	// a multiple of TearSectorBytes, optionally followed by garbage), each
	// un-synced truncation is kept or lost, and each un-synced directory
	// entry change is independently kept or lost (a rename within one
	// directory is one change; across directories it is two), the way a
	// real kernel may have flushed some of its dirty pages. Synced operations are always
	// kept. The outcome is a function of the Mem's history and the Rand's
	// state alone: one seed reproduces one disk exactly.
	Rand *rand.Rand
	// TearSectorBytes is the unit a torn write is cut on, measured from the
	// start of the file; 0 means 512.
	TearSectorBytes int
}

// CrashClone returns a new Mem holding what a machine would find on its disk
// after a power cut at this instant. m itself is untouched and may go on.
//
// The clone is fully durable (it is a disk after reboot: nothing pending),
// has no open files, locks, faults or hook, and has m's capacity. Files from
// m cannot be used on it. See CrashConfig for what survives.
//
// A file that the durable state holds under two names (a rename across
// directories with only the new one synced) comes back as one file with two
// names, a hard link, as it would on a real disk; FS has no other way to
// make one. A directory held under two names is kept under the first in
// depth-first sorted order only, since directories cannot be hard-linked.
func (m *Mem) CrashClone(cfg CrashConfig) *Mem {
	invariant.Check(cfg.TearSectorBytes >= 0, "vfs: TearSectorBytes %d < 0", cfg.TearSectorBytes)
	c := &cloner{
		rng:         cfg.Rand,
		sectorBytes: int64(cfg.TearSectorBytes),
		files:       map[*node]*node{},
		dirs:        map[*node]bool{},
	}
	if c.sectorBytes == 0 {
		c.sectorBytes = tearSectorBytesDefault
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	clone := NewMem()
	clone.capacityBytes = m.capacityBytes
	clone.root = c.dir(m.root)
	clone.usedBytes = c.usedBytes
	return clone
}

// cloner builds a crash clone. It walks the durable tree depth first in
// sorted name order, so the draws from rng happen in an order fixed by the
// history alone.
type cloner struct {
	rng         *rand.Rand
	sectorBytes int64
	files       map[*node]*node // old file -> its clone, for a file under two names
	dirs        map[*node]bool  // old directories already cloned
	usedBytes   int64
}

// survives decides whether an un-synced operation reached the disk.
func (c *cloner) survives(s opState) bool {
	switch s {
	case opSynced:
		return true
	case opPending, opUnknown:
		return c.rng != nil && c.rng.IntN(2) == 0
	}
	invariant.Unreachable("op state %d", s)
	return false
}

func (c *cloner) dir(n *node) *node {
	c.dirs[n] = true
	entries := make(map[string]*node, len(n.baseChildren)+len(n.dirOps))
	for name, child := range n.baseChildren {
		entries[name] = child
	}
	for _, o := range n.dirOps {
		if c.survives(o.state) {
			o.applyTo(entries)
		}
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	slices.Sort(names)
	d := newDir()
	for _, name := range names {
		old := entries[name]
		var cl *node
		switch {
		case old.isDir && c.dirs[old]:
			continue // already under another name
		case old.isDir:
			cl = c.dir(old)
		default:
			cl = c.file(old)
		}
		d.children[name] = cl
		d.baseChildren[name] = cl
	}
	return d
}

func (c *cloner) file(n *node) *node {
	if cl, ok := c.files[n]; ok {
		cl.links++
		return cl
	}
	b := slices.Clone(n.base)
	for i := range n.ops {
		b = c.replay(b, &n.ops[i])
	}
	cl := &node{data: b, base: slices.Clone(b), links: 1, charged: true}
	c.files[n] = cl
	c.usedBytes += int64(len(b))
	return cl
}

// replay applies what of o reached the disk to b.
func (c *cloner) replay(b []byte, o *dataOp) []byte {
	if o.state == opSynced {
		return o.applyTo(b)
	}
	if c.rng == nil {
		return b
	}
	if o.truncate {
		if c.rng.IntN(2) == 0 {
			return o.applyTo(b)
		}
		return b
	}
	switch c.rng.IntN(3) {
	case 0: // lost
		return b
	case 1: // kept
		return o.applyTo(b)
	default:
		return c.tear(b, o)
	}
}

// tear applies a torn o to b: the write reached the disk up to a sector
// boundary (possibly its very start), and with even odds the sector after
// the cut holds garbage, as a drive that lost power mid-sector may leave it.
// Nothing outside o's own range changes.
func (c *cloner) tear(b []byte, o *dataOp) []byte {
	s := c.sectorBytes
	start, end := o.off, o.off+int64(len(o.data))
	// Cut points: start itself, then every sector boundary inside the range.
	inner := (end-1)/s - start/s
	cut := start
	if k := c.rng.Int64N(inner + 1); k > 0 {
		cut = (start/s + k) * s
	}
	invariant.Check(cut >= start && cut < end, "cut %d outside [%d, %d)", cut, start, end)
	if cut > start {
		b = writeBytes(b, o.data[:cut-start], start)
	}
	if c.rng.IntN(2) == 0 {
		garbage := make([]byte, min(end, (cut/s+1)*s)-cut)
		for i := range garbage {
			garbage[i] = byte(c.rng.Uint32())
		}
		b = writeBytes(b, garbage, cut)
	}
	return b
}
