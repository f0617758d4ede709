package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"github.com/chorus-project/chorus/internal/invariant"
)

// ErrInjected is wrapped by every error a Fault makes, so a test can tell an
// injected failure from a real one.
var ErrInjected = errors.New("vfs: injected fault")

// Op is a kind of Mem operation that a Fault or a hook can match.
type Op int

// The operations. Open (read-only), List, Size, MkdirAll and Lock are not
// among them: they neither change durable state nor read file data.
const (
	OpWrite    Op = iota + 1 // File.Write
	OpSync                   // File.Sync
	OpSyncDir                // FS.SyncDir
	OpCreate                 // FS.Create / OpenAppend
	OpRename                 // FS.Rename
	OpRead                   // File.Read / ReadAt
	OpRemove                 // FS.Remove
	OpTruncate               // File.Truncate
)

var opNames = [...]string{
	OpWrite: "write", OpSync: "sync", OpSyncDir: "syncdir", OpCreate: "create",
	OpRename: "rename", OpRead: "read", OpRemove: "remove", OpTruncate: "truncate",
}

func (o Op) valid() bool { return o >= OpWrite && o <= OpTruncate }

// String returns the operation's lower-case name.
func (o Op) String() string {
	if !o.valid() {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// Fault makes matching Mem operations fail. The Mem checks its faults in the
// order they were injected; the first that fires decides the outcome, and the
// faults after it do not count that operation. A fault checks after the
// operation's own validation (a missing file is still ENOENT) and before any
// change, except for a torn write and the fsyncgate effect of a failed Sync
// or SyncDir (see Mem).
type Fault struct {
	Op Op
	// Path matches a file whose cleaned path ends with Path ("" matches
	// any). For OpRename either name may match. The match is on the string:
	// ".log" matches every name ending in .log.
	Path string
	// After lets this many matching operations succeed first.
	After int
	// Times fails this many matching operations, then disarms the fault;
	// 0 means forever.
	Times int
	// Err is returned wrapped, with ErrInjected, so that both
	// errors.Is(err, Err) and errors.Is(err, ErrInjected) hold. Nil means
	// ErrInjected alone.
	Err error
	// TornBytes, for OpWrite only: write the first TornBytes bytes of the
	// buffer (as a pending write), then fail.
	TornBytes int
}

type faultState struct {
	f        Fault
	passed   int // matching operations let through (up to After)
	failed   int // matching operations failed
	disarmed bool
}

// InjectFault arms f after the faults already armed. It panics on a Fault
// that cannot mean anything (an unknown Op, a negative count, TornBytes on
// an Op other than OpWrite): that is a bug in the test.
func (m *Mem) InjectFault(f Fault) {
	invariant.Check(f.Op.valid(), "vfs: fault on unknown %v", f.Op)
	invariant.Check(f.After >= 0 && f.Times >= 0 && f.TornBytes >= 0,
		"vfs: fault with negative After %d, Times %d or TornBytes %d", f.After, f.Times, f.TornBytes)
	invariant.Check(f.TornBytes == 0 || f.Op == OpWrite, "vfs: TornBytes on a %v fault", f.Op)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = append(m.faults, &faultState{f: f})
}

// ClearFaults disarms every fault.
func (m *Mem) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = nil
}

// fault reports the error of the first fault that fires on op at p (and p2,
// the other name of a rename), or nil. m.mu is held.
func (m *Mem) fault(op Op, p, p2 string) error {
	_, err := m.matchFault(op, p, p2)
	return err
}

// writeFault is fault for OpWrite, also returning how many bytes the failing
// write is to write first.
func (m *Mem) writeFault(p string) (tornBytes int, err error) {
	return m.matchFault(OpWrite, p, "")
}

func (m *Mem) matchFault(op Op, p, p2 string) (tornBytes int, err error) {
	for _, s := range m.faults {
		if s.disarmed || s.f.Op != op {
			continue
		}
		if s.f.Path != "" && !strings.HasSuffix(p, s.f.Path) &&
			(p2 == "" || !strings.HasSuffix(p2, s.f.Path)) {
			continue
		}
		if s.passed < s.f.After {
			s.passed++
			continue
		}
		s.failed++
		if s.f.Times > 0 && s.failed >= s.f.Times {
			s.disarmed = true
		}
		if s.f.Err == nil {
			return s.f.TornBytes, ErrInjected
		}
		return s.f.TornBytes, fmt.Errorf("%w: %w", ErrInjected, s.f.Err)
	}
	return 0, nil
}

// SetHook installs fn to run just before every operation of the kinds in Op,
// with the cleaned path (the file's path as opened, for File methods; the
// new name, for Rename). fn runs without m's lock held, so it may call
// m.CrashClone: that is how a test crashes at every sync point, or between a
// write and its sync. It runs before the operation is checked, so it also
// sees operations that then fail. fn must not call m's other methods that
// run hooks (it would recurse). Nil removes the hook.
func (m *Mem) SetHook(fn func(op Op, path string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = fn
}

func (m *Mem) callHook(op Op, p string) {
	m.mu.Lock()
	fn := m.hook
	m.mu.Unlock()
	if fn != nil {
		fn(op, p)
	}
}

// SetCapacityBytes limits the total size of all files (those with a name or
// an open handle) to n bytes; 0 means unlimited. A Write that would exceed
// it writes what fits and returns an error wrapping ErrNoSpace, as does a
// Truncate that would grow past it. Lowering the limit below what is in use
// removes nothing; it makes every growth fail.
func (m *Mem) SetCapacityBytes(n int64) {
	invariant.Check(n >= 0, "vfs: capacity %d bytes < 0", n)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.capacityBytes = n
}

// UsedBytes returns the total size of all files (those with a name or an
// open handle), the quantity SetCapacityBytes limits.
func (m *Mem) UsedBytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.usedBytes
}

// Corrupt XORs mask into the byte at off of the file name: bit rot on the
// medium. It changes the current contents (what reads see) and the durable
// contents (what a crash keeps), and the byte at off in every pending write
// that covers it, so that whatever a crash keeps at off is flipped (unless
// it is a zero from a hole a pending truncation left: zeros are not on the
// medium to rot). It fails
// with an error wrapping fs.ErrNotExist for a missing file, and one wrapping
// fs.ErrInvalid if off is in neither the current nor the durable contents.
func (m *Mem) Corrupt(name string, off int64, mask byte) error {
	p := cleanPath(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(p)
	if err != nil {
		return pathErr("corrupt", p, err)
	}
	if n.isDir {
		return pathErr("corrupt", p, syscall.EISDIR)
	}
	touched := false
	flip := func(b []byte, at int64) {
		if at >= 0 && at < int64(len(b)) {
			b[at] ^= mask
			touched = true
		}
	}
	flip(n.data, off)
	flip(n.base, off)
	for i := range n.ops {
		if o := &n.ops[i]; !o.truncate {
			flip(o.data, off-o.off)
		}
	}
	if !touched {
		return pathErr("corrupt", p, fmt.Errorf("offset %d beyond %d current and %d durable bytes: %w",
			off, len(n.data), len(n.base), fs.ErrInvalid))
	}
	return nil
}
