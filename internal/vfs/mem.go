package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/chorus-project/chorus/internal/invariant"
)

// Mem is an in-memory FS that can lose power. Create one with NewMem; it is
// safe for concurrent use (one mutex guards everything, including its Files).
//
// # Durability model
//
// Every file keeps two things: its current contents, which reads see, and a
// durable base plus the ordered list of writes and truncations applied since
// (each with a state: pending, synced, or unknown). File.Sync marks the
// pending ones synced and folds them into the base. CrashClone rebuilds what
// a disk would hold after a power cut: the base, then each later operation in
// order, kept if synced and, if not, dropped (CrashConfig.Rand nil) or
// dropped, kept or torn at random.
//
// Every directory keeps, in the same way, its current entries and a durable
// base plus the ordered list of entry changes (create, remove, rename) since
// its last SyncDir. So a file whose directory was never synced vanishes on a
// crash even if its data was synced, a rename not covered by SyncDir is undone,
// and a remove not covered by SyncDir is undone. A rename within one directory
// is one change, kept or lost whole. A rename across directories is two
// changes, one in each: the new name is durable after SyncDir of the new
// directory, the removal of the old one after SyncDir of the old one, so until
// both are synced a crash may show the file under both names or neither
// (POSIX allows both; a careful caller syncs both directories).
//
// Directories made by MkdirAll are durable at once (their entries in their
// parents need no SyncDir). That is the simple choice, and its price is
// that Mem cannot catch a missing SyncDir of a new directory's parent: code
// that makes directories after start-up must sync their parents without
// Mem's help. A directory removed with Remove is a pending entry change like
// any other.
//
// # Failed syncs (fsyncgate)
//
// When File.Sync fails (an injected fault), the file's pending operations
// become unknown: reads still see them, a crash may keep, drop or tear them,
// and no later Sync makes them durable, even one that returns nil. That is
// what Linux does on ext4, XFS and btrfs (the dirty pages are marked clean
// after a write-back error; Rebello et al., ATC 2020), and why a caller must
// stop after a Sync error instead of retrying. A failed SyncDir does the same
// to the directory's pending entry changes.
//
// The model loses at least as much as a kernel would: a later synced write
// next to an unknown one, in the same page, would carry the unknown bytes to
// disk on Linux, and here it does not.
//
// # Paths
//
// Names are cleaned with path.Clean and taken from the root: "a/b", "/a/b"
// and "/x/../a/b" are one file, and ".." stops at the root. A trailing slash
// is cleaned away, so "file/" names a file here where the host would say
// ENOTDIR.
//
// # Errors
//
// Errors are *fs.PathError (*os.LinkError for Rename) wrapping the same
// syscall.Errno values the host returns (ENOENT, EEXIST, ENOTDIR, EISDIR,
// ENOTEMPTY, EBADF, EINVAL, EBUSY for the root, EWOULDBLOCK for a held
// Lock), so errors.Is(err, fs.ErrNotExist) and friends
// agree between Mem and OS. Opening a directory with Open fails with EISDIR
// here (the host allows it), and Size of a directory fails with EISDIR.
//
// # Faults and hooks
//
// InjectFault makes chosen operations fail, SetHook runs a function before
// each operation (to crash at every step), SetCapacityBytes makes the disk
// fill up, and Corrupt flips bits on the medium. See each method.
//
// Memory: every write since the last Sync of its file is held twice (in the
// current contents and in the pending list), and a file with unknown
// operations keeps its whole list from the first of them on, so each Sync
// of it costs time in proportion to everything written since the failure;
// Mem is a test tool, and the test bounds how much it writes
// (SetCapacityBytes bounds the file sizes, not the pending lists).
type Mem struct {
	mu   sync.Mutex
	root *node

	// usedBytes is the sum of the current sizes of all charged files: those
	// with a name or an open handle, as a real disk frees an unlinked file's
	// blocks only at its last close.
	usedBytes     int64
	capacityBytes int64 // 0: unlimited

	faults []*faultState
	hook   func(op Op, path string)
	locks  map[*node]bool
}

// node is a file or a directory.
type node struct {
	isDir bool

	// Files.
	data   []byte   // current contents: what reads see
	base   []byte   // durable contents before ops
	ops    []dataOp // operations since base, in order
	opened int      // open Files and Locks on this node
	links  int      // names in the current tree (2+ only after a crash, see CrashClone)
	// charged says that len(data) is counted in Mem.usedBytes.
	charged bool

	// Directories.
	children     map[string]*node // current entries
	baseChildren map[string]*node // durable entries before dirOps
	dirOps       []dirOp          // entry changes since baseChildren, in order
}

// opState says whether an operation survives a crash.
type opState uint8

const (
	// opPending: done, not yet covered by a successful sync. May or may not
	// survive.
	opPending opState = iota + 1
	// opSynced: a sync covering it returned nil. Survives.
	opSynced
	// opUnknown: a sync covering it failed. May or may not survive, and no
	// later sync changes that.
	opUnknown
)

// dataOp is one write (data at off) or truncation (to size) of a file.
type dataOp struct {
	truncate bool
	off      int64
	data     []byte // the write's bytes, owned by the op
	size     int64  // the truncation's new size
	state    opState
}

// dirOp is one change to a directory: remove the entry del (if not ""),
// then set the entry set (if not "") to target. A rename within one
// directory is one dirOp with both.
type dirOp struct {
	del    string
	set    string
	target *node
	state  opState
}

// NewMem returns an empty in-memory file system: a root directory and
// nothing else, all durable.
func NewMem() *Mem {
	return &Mem{root: newDir(), locks: map[*node]bool{}}
}

func newDir() *node {
	return &node{isDir: true, children: map[string]*node{}, baseChildren: map[string]*node{}}
}

func cleanPath(name string) string { return path.Clean("/" + name) }

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// lookup returns the node at the cleaned path p.
func (m *Mem) lookup(p string) (*node, error) {
	n := m.root
	if p == "/" {
		return n, nil
	}
	for elem := range strings.SplitSeq(p[1:], "/") {
		if !n.isDir {
			return nil, syscall.ENOTDIR
		}
		child, ok := n.children[elem]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = child
	}
	return n, nil
}

// lookupParent returns the directory holding the cleaned path p and p's last
// element. p must not be the root.
func (m *Mem) lookupParent(p string) (*node, string, error) {
	invariant.Check(p != "/", "lookupParent of the root")
	dir, elem := path.Split(p)
	parent, err := m.lookup(path.Clean(dir))
	if err != nil {
		return nil, "", err
	}
	if !parent.isDir {
		return nil, "", syscall.ENOTDIR
	}
	return parent, elem, nil
}

// Create implements FS.
func (m *Mem) Create(name string) (File, error) {
	p := cleanPath(name)
	m.callHook(OpCreate, p)
	m.mu.Lock()
	defer m.mu.Unlock()
	if p == "/" {
		return nil, pathErr("open", p, syscall.EISDIR)
	}
	parent, elem, err := m.lookupParent(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if child, ok := parent.children[elem]; ok && child.isDir {
		return nil, pathErr("open", p, syscall.EISDIR)
	}
	if err := m.fault(OpCreate, p, ""); err != nil {
		return nil, pathErr("open", p, err)
	}
	n, ok := parent.children[elem]
	if ok {
		// O_TRUNC: the same inode, emptied. Open handles see it too.
		m.truncate(n, 0)
	} else {
		n = &node{}
		m.link(parent, elem, n)
	}
	return m.open(n, p, true, false), nil
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) {
	p := cleanPath(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if n.isDir {
		return nil, pathErr("open", p, syscall.EISDIR)
	}
	return m.open(n, p, false, false), nil
}

// OpenAppend implements FS.
func (m *Mem) OpenAppend(name string) (File, error) {
	p := cleanPath(name)
	m.callHook(OpCreate, p)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if n.isDir {
		return nil, pathErr("open", p, syscall.EISDIR)
	}
	if err := m.fault(OpCreate, p, ""); err != nil {
		return nil, pathErr("open", p, err)
	}
	return m.open(n, p, true, true), nil
}

func (m *Mem) open(n *node, p string, writable, appendOnly bool) *memFile {
	n.opened++
	m.recharge(n)
	return &memFile{m: m, n: n, path: p, writable: writable, appendOnly: appendOnly}
}

// link gives the file n the name elem in parent, a pending entry change.
func (m *Mem) link(parent *node, elem string, n *node) {
	parent.children[elem] = n
	parent.dirOps = append(parent.dirOps, dirOp{set: elem, target: n, state: opPending})
	n.links++
	m.recharge(n)
}

// unlink records that the file n has lost a name.
func (m *Mem) unlink(n *node) {
	if n.isDir {
		return
	}
	n.links--
	invariant.Check(n.links >= 0, "file with %d links", n.links)
	m.recharge(n)
}

// recharge counts n's bytes in usedBytes exactly when it has a name or an
// open handle.
func (m *Mem) recharge(n *node) {
	want := !n.isDir && (n.links > 0 || n.opened > 0)
	switch {
	case want && !n.charged:
		m.usedBytes += int64(len(n.data))
	case !want && n.charged:
		m.usedBytes -= int64(len(n.data))
	}
	n.charged = want
	invariant.Check(m.usedBytes >= 0, "usedBytes %d < 0", m.usedBytes)
}

// Remove implements FS.
func (m *Mem) Remove(name string) error {
	p := cleanPath(name)
	m.callHook(OpRemove, p)
	m.mu.Lock()
	defer m.mu.Unlock()
	if p == "/" {
		return pathErr("remove", p, syscall.EBUSY)
	}
	parent, elem, err := m.lookupParent(p)
	if err != nil {
		return pathErr("remove", p, err)
	}
	n, ok := parent.children[elem]
	if !ok {
		return pathErr("remove", p, syscall.ENOENT)
	}
	if n.isDir && len(n.children) > 0 {
		return pathErr("remove", p, syscall.ENOTEMPTY)
	}
	if err := m.fault(OpRemove, p, ""); err != nil {
		return pathErr("remove", p, err)
	}
	delete(parent.children, elem)
	parent.dirOps = append(parent.dirOps, dirOp{del: elem, state: opPending})
	m.unlink(n)
	return nil
}

// Rename implements FS. Its hook sees newname; a Fault matches it if either
// name ends with Fault.Path.
func (m *Mem) Rename(oldname, newname string) error {
	op, np := cleanPath(oldname), cleanPath(newname)
	m.callHook(OpRename, np)
	m.mu.Lock()
	defer m.mu.Unlock()
	lerr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: op, New: np, Err: err}
	}
	if op == "/" || np == "/" {
		return lerr(syscall.EBUSY)
	}
	oldParent, oldElem, err := m.lookupParent(op)
	if err != nil {
		return lerr(err)
	}
	n, ok := oldParent.children[oldElem]
	if !ok {
		return lerr(syscall.ENOENT)
	}
	if op == np {
		return nil // rename(2): same name, nothing to do
	}
	if strings.HasPrefix(np, op+"/") {
		return lerr(syscall.EINVAL) // into its own subtree
	}
	newParent, newElem, err := m.lookupParent(np)
	if err != nil {
		return lerr(err)
	}
	target, exists := newParent.children[newElem]
	if exists && target == n {
		return nil // rename(2): two names of one file, nothing to do
	}
	switch {
	case exists && target.isDir:
		return lerr(syscall.EEXIST) // as os.Rename on Unix
	case exists && n.isDir:
		return lerr(syscall.ENOTDIR)
	}
	if err := m.fault(OpRename, op, np); err != nil {
		return lerr(err)
	}
	delete(oldParent.children, oldElem)
	newParent.children[newElem] = n
	if oldParent == newParent {
		oldParent.dirOps = append(oldParent.dirOps,
			dirOp{del: oldElem, set: newElem, target: n, state: opPending})
	} else {
		oldParent.dirOps = append(oldParent.dirOps, dirOp{del: oldElem, state: opPending})
		newParent.dirOps = append(newParent.dirOps,
			dirOp{set: newElem, target: n, state: opPending})
	}
	if exists {
		m.unlink(target)
	}
	return nil
}

// MkdirAll implements FS. New directories are durable at once (see Mem).
func (m *Mem) MkdirAll(dir string) error {
	p := cleanPath(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	if p == "/" {
		return nil
	}
	for elem := range strings.SplitSeq(p[1:], "/") {
		child, ok := n.children[elem]
		if !ok {
			child = newDir()
			n.children[elem] = child
			n.dirOps = append(n.dirOps, dirOp{set: elem, target: child, state: opSynced})
			foldDir(n)
		}
		if !child.isDir {
			return pathErr("mkdir", p, syscall.ENOTDIR)
		}
		n = child
	}
	return nil
}

// List implements FS.
func (m *Mem) List(dir string) ([]string, error) {
	p := cleanPath(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if !n.isDir {
		return nil, pathErr("open", p, syscall.ENOTDIR)
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Size implements FS.
func (m *Mem) Size(name string) (int64, error) {
	p := cleanPath(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(p)
	if err != nil {
		return 0, pathErr("stat", p, err)
	}
	if n.isDir {
		return 0, pathErr("stat", p, syscall.EISDIR)
	}
	return int64(len(n.data)), nil
}

// SyncDir implements FS. If it fails (an injected fault), the directory's
// pending entry changes become unknown: no later SyncDir makes them durable.
func (m *Mem) SyncDir(dir string) error {
	p := cleanPath(dir)
	m.callHook(OpSyncDir, p)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(p)
	if err != nil {
		return pathErr("sync", p, err)
	}
	if !n.isDir {
		return pathErr("sync", p, syscall.ENOTDIR)
	}
	if err := m.fault(OpSyncDir, p, ""); err != nil {
		for i := range n.dirOps {
			if n.dirOps[i].state == opPending {
				n.dirOps[i].state = opUnknown
			}
		}
		return pathErr("sync", p, err)
	}
	for i := range n.dirOps {
		if n.dirOps[i].state == opPending {
			n.dirOps[i].state = opSynced
		}
	}
	foldDir(n)
	return nil
}

// foldDir moves the leading synced entry changes of n into its durable base.
// It stops at the first unknown one, which must stay in order before any
// later change for a crash to replay them right.
func foldDir(n *node) {
	i := 0
	for ; i < len(n.dirOps) && n.dirOps[i].state == opSynced; i++ {
		n.dirOps[i].applyTo(n.baseChildren)
	}
	rest := copy(n.dirOps, n.dirOps[i:])
	clear(n.dirOps[rest:])
	n.dirOps = n.dirOps[:rest]
}

func (o dirOp) applyTo(entries map[string]*node) {
	if o.del != "" {
		delete(entries, o.del)
	}
	if o.set != "" {
		entries[o.set] = o.target
	}
}

// Lock implements FS. The lock is held in this Mem only (a CrashClone starts
// with none, as a rebooted machine does). It creates name if missing, like
// the host's, as a pending entry change.
func (m *Mem) Lock(name string) (io.Closer, error) {
	p := cleanPath(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if p == "/" {
		return nil, pathErr("open", p, syscall.EISDIR)
	}
	parent, elem, err := m.lookupParent(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	n, ok := parent.children[elem]
	switch {
	case !ok:
		n = &node{}
		m.link(parent, elem, n)
	case n.isDir:
		return nil, pathErr("open", p, syscall.EISDIR)
	}
	if m.locks[n] {
		return nil, fmt.Errorf("vfs: lock %s: held by another Lock: %w", p, syscall.EWOULDBLOCK)
	}
	m.locks[n] = true
	n.opened++
	m.recharge(n)
	return &memLock{m: m, n: n, path: p}, nil
}

type memLock struct {
	m      *Mem
	n      *node
	path   string
	closed bool
}

func (l *memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.closed {
		return pathErr("close", l.path, fs.ErrClosed)
	}
	l.closed = true
	delete(l.m.locks, l.n)
	l.n.opened--
	l.m.recharge(l.n)
	return nil
}

// truncate sets n's current size, recording the change as pending.
// Capacity has been checked by the caller.
func (m *Mem) truncate(n *node, size int64) {
	before := len(n.data)
	n.data = resize(n.data, size)
	n.ops = append(n.ops, dataOp{truncate: true, size: size, state: opPending})
	if n.charged {
		m.usedBytes += int64(len(n.data) - before)
	}
}

// writeAt writes p at off of n's current contents, recording the write as
// pending. Capacity has been checked by the caller.
func (m *Mem) writeAt(n *node, p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	before := len(n.data)
	n.data = writeBytes(n.data, p, off)
	n.ops = append(n.ops, dataOp{off: off, data: slices.Clone(p), state: opPending})
	invariant.Check(n.charged, "write to an uncharged file")
	m.usedBytes += int64(len(n.data) - before)
}

// resize returns b cut or zero-extended to size bytes.
func resize(b []byte, size int64) []byte {
	n := int64(len(b))
	if size <= n {
		return b[:size]
	}
	b = slices.Grow(b, int(size-n))[:size]
	clear(b[n:]) // the spare capacity may hold bytes cut off earlier
	return b
}

// writeBytes returns b with p written at off, zero-filling any hole.
func writeBytes(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

func (o *dataOp) applyTo(b []byte) []byte {
	if o.truncate {
		return resize(b, o.size)
	}
	return writeBytes(b, o.data, o.off)
}

// syncFile makes n's pending operations durable and folds the leading
// synced ones into the base.
func syncFile(n *node) {
	for i := range n.ops {
		if n.ops[i].state == opPending {
			n.ops[i].state = opSynced
		}
	}
	i := 0
	for ; i < len(n.ops) && n.ops[i].state == opSynced; i++ {
		n.base = n.ops[i].applyTo(n.base)
	}
	rest := copy(n.ops, n.ops[i:])
	clear(n.ops[rest:])
	n.ops = n.ops[:rest]
	if len(n.ops) == 0 {
		// No format arguments: boxing them would allocate on every Sync.
		invariant.Check(len(n.base) == len(n.data), "synced file with no pending ops: durable and current sizes differ")
	}
}

// failSync models fsyncgate: n's pending operations are in an unknown state.
func failSync(n *node) {
	for i := range n.ops {
		if n.ops[i].state == opPending {
			n.ops[i].state = opUnknown
		}
	}
}
