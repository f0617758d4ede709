// Package vfs is the small file-system interface that chorus storage is
// written against, with two implementations: OS, the real one, and Mem, an
// in-memory one that can crash and misbehave on demand.
//
// The interface carries only what a write-ahead log and a snapshot store
// need, and makes durability explicit: data written to a File is durable only
// after File.Sync returns nil, and a created, renamed or removed name is
// durable only after SyncDir on its directory returns nil. Mem enforces
// exactly that on a simulated crash (but for directories made by MkdirAll,
// durable at once), so code that forgets a Sync or a SyncDir loses data in
// tests, as it would after a power cut.
//
// After a Sync or SyncDir error the state of the file is unknown (the kernel
// may have dropped the dirty pages and marked them clean: "fsyncgate"). Callers
// must not retry and carry on; they stop and recover from what is durable.
package vfs

import (
	"errors"
	"io"
)

// ErrNoSpace is returned (wrapped) when a write finds the device full.
var ErrNoSpace = errors.New("vfs: no space left on device")

// FS is a file system. Names are slash-separated paths; implementations
// accept the paths that path/filepath produces on the host.
type FS interface {
	// Create creates name, truncating it if it exists, open for writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading.
	Open(name string) (File, error)
	// OpenAppend opens an existing file for writing at its end.
	OpenAppend(name string) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Rename renames oldname to newname, replacing newname if it exists.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries in dir, sorted.
	List(dir string) ([]string, error)
	// Size returns the size in bytes of the file name; it fails with an error
	// satisfying errors.Is(err, fs.ErrNotExist) if there is none.
	Size(name string) (int64, error)
	// SyncDir makes the creates, renames and removes in dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on name (creating it), held until the
	// returned Closer is closed, so two processes never share a data directory.
	Lock(name string) (io.Closer, error)
}

// File is an open file. A File is not safe for concurrent use, except that
// ReadAt may be called concurrently with itself.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes everything written so far durable.
	Sync() error
	// Truncate changes the size of the file. The change is durable after Sync.
	Truncate(size int64) error
	// Size is the current size of the file in bytes.
	Size() (int64, error)
}
