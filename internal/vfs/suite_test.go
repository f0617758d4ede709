package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"syscall"
	"testing"
)

// The behavioural suite: what FS and File promise, run against both OS (on
// t.TempDir()) and Mem, so the two are shown to agree. Crash semantics are
// Mem's alone and live in mem_test.go.

// fsMaker returns a file system and an empty directory in it for one test.
type fsMaker func(t *testing.T) (FS, string)

func osMaker(t *testing.T) (FS, string) { return OS, t.TempDir() }

func memMaker(t *testing.T) (FS, string) {
	m := NewMem()
	const dir = "/data/test"
	if err := m.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func TestSuiteOS(t *testing.T)  { runSuite(t, osMaker) }
func TestSuiteMem(t *testing.T) { runSuite(t, memMaker) }

func runSuite(t *testing.T, mk fsMaker) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, fsys FS, dir string)
	}{
		{"create-write-read", suiteCreateWriteRead},
		{"create-truncates-existing", suiteCreateTruncates},
		{"read-write-share-offset", suiteSharedOffset},
		{"read-past-end", suiteReadPastEnd},
		{"missing", suiteMissing},
		{"read-only", suiteReadOnly},
		{"open-append", suiteOpenAppend},
		{"truncate", suiteTruncate},
		{"rename", suiteRename},
		{"rename-errors", suiteRenameErrors},
		{"remove", suiteRemove},
		{"mkdirall-list", suiteMkdirAllList},
		{"sync", suiteSync},
		{"closed", suiteClosed},
		{"lock", suiteLock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys, dir := mk(t)
			tc.fn(t, fsys, dir)
		})
	}
}

// Helpers shared with mem_test.go.

func writeFile(t *testing.T, fsys FS, name string, data []byte) {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.Write(data); err != nil || n != len(data) {
		t.Fatalf("write %s: %d, %v", name, n, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantFile(t *testing.T, fsys FS, name string, want []byte) {
	t.Helper()
	if got := readFile(t, fsys, name); !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", name, got, want)
	}
	if n, err := fsys.Size(name); err != nil || n != int64(len(want)) {
		t.Fatalf("Size(%s) = %d, %v; want %d", name, n, err, len(want))
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("write %q: %d, %v", s, n, err)
	}
}

func suiteCreateWriteRead(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "hello, ")
	mustWrite(t, f, "world")
	if n, err := f.Size(); err != nil || n != 12 {
		t.Fatalf("File.Size = %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fsys, name, []byte("hello, world"))
	empty := path.Join(dir, "empty")
	writeFile(t, fsys, empty, nil)
	wantFile(t, fsys, empty, nil)
}

func suiteCreateTruncates(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	writeFile(t, fsys, name, []byte("old contents"))
	r, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writeFile(t, fsys, name, []byte("new"))
	wantFile(t, fsys, name, []byte("new"))
	// The handle opened before sees the same file, emptied and rewritten.
	b := make([]byte, 10)
	n, err := r.ReadAt(b, 0)
	if n != 3 || !errors.Is(err, io.EOF) || string(b[:n]) != "new" {
		t.Fatalf("old handle ReadAt = %d %q, %v", n, b[:n], err)
	}
}

func suiteSharedOffset(t *testing.T, fsys FS, dir string) {
	f, err := fsys.Create(path.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustWrite(t, f, "abc")
	// Create opens read-write with one offset, now at the end.
	if n, err := f.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("Read at end = %d, %v; want 0, io.EOF", n, err)
	}
	b := make([]byte, 3)
	if n, err := f.ReadAt(b, 0); n != 3 || err != nil || string(b) != "abc" {
		t.Fatalf("ReadAt = %d %q, %v", n, b, err)
	}
}

func suiteReadPastEnd(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	writeFile(t, fsys, name, []byte("0123456789"))
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4)
	for _, tc := range []struct {
		off   int64
		n     int
		eof   bool
		bytes string
	}{
		{0, 4, false, "0123"},
		{6, 4, false, "6789"},
		{8, 2, true, "89"},
		{10, 0, true, ""},
		{100, 0, true, ""},
	} {
		n, err := f.ReadAt(b, tc.off)
		if n != tc.n || (err == io.EOF) != tc.eof || (err != nil && err != io.EOF) || string(b[:n]) != tc.bytes {
			t.Errorf("ReadAt(off %d) = %d %q, %v; want %d %q, eof %v", tc.off, n, b[:n], err, tc.n, tc.bytes, tc.eof)
		}
	}
	if n, err := f.ReadAt(nil, 100); n != 0 || err != nil {
		t.Errorf("empty ReadAt beyond the end = %d, %v; want 0, nil", n, err)
	}
	if _, err := f.ReadAt(b, -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
	got, err := io.ReadAll(f)
	if err != nil || string(got) != "0123456789" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if n, err := f.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("Read at end = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := f.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read at end = %d, %v; want 0, nil", n, err)
	}
}

func suiteMissing(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "missing")
	_, err := fsys.Open(name)
	wantErr(t, "Open", err, fs.ErrNotExist)
	_, err = fsys.OpenAppend(name)
	wantErr(t, "OpenAppend", err, fs.ErrNotExist)
	_, err = fsys.Size(name)
	wantErr(t, "Size", err, fs.ErrNotExist)
	wantErr(t, "Remove", fsys.Remove(name), fs.ErrNotExist)
	wantErr(t, "Rename", fsys.Rename(name, path.Join(dir, "x")), fs.ErrNotExist)
	_, err = fsys.List(name)
	wantErr(t, "List", err, fs.ErrNotExist)
	wantErr(t, "SyncDir", fsys.SyncDir(name), fs.ErrNotExist)
	_, err = fsys.Create(path.Join(name, "f"))
	wantErr(t, "Create in a missing directory", err, fs.ErrNotExist)
}

func suiteReadOnly(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	writeFile(t, fsys, name, []byte("abc"))
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.Write([]byte("x"))
	wantErr(t, "Write on a read-only file", err, syscall.EBADF)
	wantErr(t, "Truncate on a read-only file", f.Truncate(1), syscall.EINVAL)
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync on a read-only file: %v", err) // fsync needs no write access
	}
	wantFile(t, fsys, name, []byte("abc"))
}

func suiteOpenAppend(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	writeFile(t, fsys, name, []byte("abc"))
	a, err := fsys.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := fsys.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Reads start at 0; every write goes to the end, whoever else wrote.
	buf := make([]byte, 2)
	if n, err := a.Read(buf); n != 2 || err != nil || string(buf) != "ab" {
		t.Fatalf("Read = %d %q, %v", n, buf, err)
	}
	mustWrite(t, a, "1")
	mustWrite(t, b, "2")
	mustWrite(t, a, "3")
	wantFile(t, fsys, name, []byte("abc123"))
	if n, err := a.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after append = %d, %v; want the offset at the end", n, err)
	}
}

func suiteTruncate(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustWrite(t, f, "0123456789")
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fsys, name, []byte("0123"))
	if err := f.Truncate(6); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fsys, name, []byte("0123\x00\x00"))
	// The offset is still 10: the write leaves a hole of zeros.
	mustWrite(t, f, "x")
	wantFile(t, fsys, name, []byte("0123\x00\x00\x00\x00\x00\x00x"))
	if err := f.Truncate(-1); err == nil {
		t.Fatal("Truncate(-1) succeeded")
	}
}

func suiteRename(t *testing.T, fsys FS, dir string) {
	a, b := path.Join(dir, "a"), path.Join(dir, "b")
	writeFile(t, fsys, a, []byte("A"))
	writeFile(t, fsys, b, []byte("B"))
	r, err := fsys.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := fsys.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fsys, b, []byte("A"))
	_, err = fsys.Size(a)
	wantErr(t, "Size of the old name", err, fs.ErrNotExist)
	// An open handle follows the file, not the name.
	buf := make([]byte, 1)
	if n, err := r.ReadAt(buf, 0); n != 1 || err != nil || buf[0] != 'A' {
		t.Fatalf("ReadAt through the old handle = %d %q, %v", n, buf, err)
	}
	if err := fsys.Rename(b, b); err != nil {
		t.Fatalf("rename onto itself: %v", err)
	}
	wantFile(t, fsys, b, []byte("A"))
	// Across directories.
	sub := path.Join(dir, "sub")
	if err := fsys.MkdirAll(sub); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Rename(b, path.Join(sub, "c")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fsys, path.Join(sub, "c"), []byte("A"))
	// Directories move too.
	if err := fsys.Rename(sub, path.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, fsys, path.Join(dir, "moved", "c"), []byte("A"))
}

func suiteRenameErrors(t *testing.T, fsys FS, dir string) {
	f, d := path.Join(dir, "f"), path.Join(dir, "d")
	writeFile(t, fsys, f, []byte("F"))
	if err := fsys.MkdirAll(d); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "file onto a directory", fsys.Rename(f, d), syscall.EEXIST)
	wantErr(t, "directory onto a file", fsys.Rename(d, f), syscall.ENOTDIR)
	wantErr(t, "directory into itself", fsys.Rename(d, path.Join(d, "x")), syscall.EINVAL)
	wantErr(t, "into a missing directory", fsys.Rename(f, path.Join(dir, "nodir", "x")), fs.ErrNotExist)
	wantFile(t, fsys, f, []byte("F"))
}

func suiteRemove(t *testing.T, fsys FS, dir string) {
	f, d := path.Join(dir, "f"), path.Join(dir, "d")
	writeFile(t, fsys, f, []byte("F"))
	if err := fsys.MkdirAll(d); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fsys, path.Join(d, "x"), nil)
	wantErr(t, "Remove of a non-empty directory", fsys.Remove(d), syscall.ENOTEMPTY)
	if err := fsys.Remove(path.Join(d, "x")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(d); err != nil {
		t.Fatal(err)
	}
	// A removed file stays readable and writable through an open handle.
	h, err := fsys.OpenAppend(f)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := fsys.Remove(f); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, h, "G")
	b := make([]byte, 2)
	if n, err := h.ReadAt(b, 0); n != 2 || err != nil || string(b) != "FG" {
		t.Fatalf("ReadAt after Remove = %d %q, %v", n, b, err)
	}
	names, err := fsys.List(dir)
	if err != nil || len(names) != 0 {
		t.Fatalf("List after removing everything = %q, %v", names, err)
	}
}

func suiteMkdirAllList(t *testing.T, fsys FS, dir string) {
	deep := path.Join(dir, "a", "b", "c")
	for range 2 { // idempotent
		if err := fsys.MkdirAll(deep); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"z", "m", "a0", "B"} {
		writeFile(t, fsys, path.Join(dir, name), nil)
	}
	names, err := fsys.List(dir)
	if want := []string{"B", "a", "a0", "m", "z"}; err != nil || !slices.Equal(names, want) {
		t.Fatalf("List = %q, %v; want %q", names, err, want)
	}
	names, err = fsys.List(path.Join(dir, "a", "b"))
	if err != nil || !slices.Equal(names, []string{"c"}) {
		t.Fatalf("List(a/b) = %q, %v", names, err)
	}
	file := path.Join(dir, "z")
	_, err = fsys.List(file)
	wantErr(t, "List of a file", err, syscall.ENOTDIR)
	wantErr(t, "MkdirAll through a file", fsys.MkdirAll(path.Join(file, "x")), syscall.ENOTDIR)
	_, err = fsys.Create(path.Join(file, "x"))
	wantErr(t, "Create under a file", err, syscall.ENOTDIR)
	_, err = fsys.Create(deep)
	wantErr(t, "Create of a directory", err, syscall.EISDIR)
}

func suiteSync(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "x")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

func suiteClosed(t *testing.T, fsys FS, dir string) {
	f, err := fsys.Create(path.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = f.Write([]byte("x"))
	wantErr(t, "Write", err, fs.ErrClosed)
	_, err = f.Read(make([]byte, 1))
	wantErr(t, "Read", err, fs.ErrClosed)
	_, err = f.ReadAt(make([]byte, 1), 0)
	wantErr(t, "ReadAt", err, fs.ErrClosed)
	wantErr(t, "Sync", f.Sync(), fs.ErrClosed)
	wantErr(t, "Truncate", f.Truncate(0), fs.ErrClosed)
	_, err = f.Size()
	wantErr(t, "Size", err, fs.ErrClosed)
	wantErr(t, "second Close", f.Close(), fs.ErrClosed)
}

func suiteLock(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "LOCK")
	l, err := fsys.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fsys.Lock(name)
	wantErr(t, "second Lock", err, syscall.EWOULDBLOCK)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := fsys.Lock(name)
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	defer l2.Close()
	names, err := fsys.List(dir)
	if err != nil || !slices.Equal(names, []string{"LOCK"}) {
		t.Fatalf("List = %q, %v; want the lock file", names, err)
	}
}
