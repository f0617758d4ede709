package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"syscall"

	"github.com/chorus-project/chorus/internal/invariant"
)

// memFile is an open file of a Mem. Its fields after m are guarded by m.mu.
type memFile struct {
	m          *Mem
	n          *node
	path       string // cleaned, as opened; a later rename does not change it
	writable   bool
	appendOnly bool
	pos        int64 // the file offset shared by Read and Write
	closed     bool
}

var _ File = (*memFile)(nil)

// Read implements io.Reader with the host's semantics: io.EOF at the end,
// and (0, nil) for an empty p.
func (f *memFile) Read(p []byte) (int, error) {
	f.m.callHook(OpRead, f.path)
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return 0, pathErr("read", f.path, fs.ErrClosed)
	}
	if err := f.m.fault(OpRead, f.path, ""); err != nil {
		return 0, pathErr("read", f.path, err)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[f.pos:])
	f.pos += int64(n)
	return n, nil
}

// ReadAt implements io.ReaderAt: a short read ends with io.EOF.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.callHook(OpRead, f.path)
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return 0, pathErr("readat", f.path, fs.ErrClosed)
	}
	if off < 0 {
		return 0, pathErr("readat", f.path, syscall.EINVAL)
	}
	if err := f.m.fault(OpRead, f.path, ""); err != nil {
		return 0, pathErr("readat", f.path, err)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	if off < int64(len(f.n.data)) {
		n = copy(p, f.n.data[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Write implements io.Writer. Without room for all of p (SetCapacityBytes)
// it writes what fits and returns an error wrapping ErrNoSpace.
func (f *memFile) Write(p []byte) (int, error) {
	f.m.callHook(OpWrite, f.path)
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if f.closed {
		return 0, pathErr("write", f.path, fs.ErrClosed)
	}
	if !f.writable {
		return 0, pathErr("write", f.path, syscall.EBADF)
	}
	want := len(p)
	torn, ferr := m.writeFault(f.path)
	if ferr != nil {
		want = min(want, torn)
	}
	if f.appendOnly {
		f.pos = int64(len(f.n.data))
	}
	n := m.fit(f.n, f.pos, int64(want))
	m.writeAt(f.n, p[:n], f.pos)
	f.pos += n
	switch {
	case ferr != nil:
		return int(n), pathErr("write", f.path, ferr)
	case n < int64(len(p)):
		return int(n), pathErr("write", f.path, noSpace())
	}
	return int(n), nil
}

// fit returns how many of want bytes written at off of n fit in the
// capacity left.
func (m *Mem) fit(n *node, off, want int64) int64 {
	growth := max(0, off+want-int64(len(n.data)))
	if m.capacityBytes == 0 || m.usedBytes+growth <= m.capacityBytes {
		return want
	}
	room := max(0, m.capacityBytes-m.usedBytes)
	// Bytes before the current end overwrite and cost nothing.
	return min(want, max(0, int64(len(n.data))+room-off))
}

func noSpace() error { return fmt.Errorf("%w: %w", ErrNoSpace, syscall.ENOSPC) }

// Sync implements File. It makes every pending write and truncation of the
// file durable, whichever handle made them (fsync is per file, not per
// handle). If it fails (an injected fault) they become unknown instead: a
// crash may keep or lose them and no later Sync makes them durable.
func (f *memFile) Sync() error {
	f.m.callHook(OpSync, f.path)
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return pathErr("sync", f.path, fs.ErrClosed)
	}
	if err := f.m.fault(OpSync, f.path, ""); err != nil {
		failSync(f.n)
		return pathErr("sync", f.path, err)
	}
	syncFile(f.n)
	return nil
}

// Truncate implements File. Growing the file counts against the capacity.
func (f *memFile) Truncate(size int64) error {
	f.m.callHook(OpTruncate, f.path)
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if f.closed {
		return pathErr("truncate", f.path, fs.ErrClosed)
	}
	if !f.writable || size < 0 {
		return pathErr("truncate", f.path, syscall.EINVAL)
	}
	if err := m.fault(OpTruncate, f.path, ""); err != nil {
		return pathErr("truncate", f.path, err)
	}
	if cur := int64(len(f.n.data)); size > cur && m.fit(f.n, cur, size-cur) < size-cur {
		return pathErr("truncate", f.path, noSpace())
	}
	m.truncate(f.n, size)
	return nil
}

// Size implements File.
func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return 0, pathErr("stat", f.path, fs.ErrClosed)
	}
	return int64(len(f.n.data)), nil
}

// Close implements io.Closer. A second Close fails with fs.ErrClosed.
func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return pathErr("close", f.path, fs.ErrClosed)
	}
	f.closed = true
	f.n.opened--
	invariant.Check(f.n.opened >= 0, "file %s opened %d times", f.path, f.n.opened)
	f.m.recharge(f.n)
	return nil
}
