package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// tree returns every file and directory under root: a file as its path and
// contents, a directory as its path with a trailing slash and "".
func tree(t *testing.T, fsys FS, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fsys.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			p := path.Join(dir, name)
			if _, err := fsys.List(p); err == nil {
				out[p+"/"] = ""
				walk(p)
				continue
			}
			out[p] = string(readFile(t, fsys, p))
		}
	}
	walk(root)
	return out
}

func wantTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func create(t *testing.T, m *Mem, name string) File {
	t.Helper()
	f, err := m.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func do(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mkdirs(t *testing.T, m *Mem, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		do(t, m.MkdirAll(d))
	}
}

// TestCrashKeepsExactlySynced: with Rand nil, a crash keeps what was synced
// (file data by Sync, names by SyncDir) and nothing else.
func TestCrashKeepsExactlySynced(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, m *Mem)
		want map[string]string // the tree under / after the crash
	}{
		{
			name: "nothing synced",
			run: func(t *testing.T, m *Mem) {
				f := create(t, m, "/d/f")
				mustWrite(t, f, "data")
			},
			want: map[string]string{"/d/": ""},
		},
		{
			name: "data synced, directory not: the file vanishes",
			run: func(t *testing.T, m *Mem) {
				f := create(t, m, "/d/f")
				mustWrite(t, f, "data")
				do(t, f.Sync())
			},
			want: map[string]string{"/d/": ""},
		},
		{
			name: "directory synced, data not: the file is empty",
			run: func(t *testing.T, m *Mem) {
				f := create(t, m, "/d/f")
				do(t, m.SyncDir("/d"))
				mustWrite(t, f, "data")
			},
			want: map[string]string{"/d/": "", "/d/f": ""},
		},
		{
			name: "both synced",
			run: func(t *testing.T, m *Mem) {
				f := create(t, m, "/d/f")
				mustWrite(t, f, "data")
				do(t, f.Sync())
				do(t, m.SyncDir("d")) // relative names are from the root
			},
			want: map[string]string{"/d/": "", "/d/f": "data"},
		},
		{
			name: "writes after the sync are lost",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "data")
				f, err := m.OpenAppend("/d/f")
				do(t, err)
				mustWrite(t, f, " more")
				do(t, f.Truncate(2))
			},
			want: map[string]string{"/d/": "", "/d/f": "data"},
		},
		{
			name: "synced truncation and overwrite",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "0123456789")
				f, err := m.OpenAppend("/d/f")
				do(t, err)
				do(t, f.Truncate(3))
				mustWrite(t, f, "ab")
				do(t, f.Truncate(7))
				do(t, f.Sync())
				mustWrite(t, f, "lost")
			},
			want: map[string]string{"/d/": "", "/d/f": "012ab\x00\x00"},
		},
		{
			name: "sync through one handle covers writes through another",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "")
				w, err := m.OpenAppend("/d/f")
				do(t, err)
				mustWrite(t, w, "abc")
				r, err := m.Open("/d/f")
				do(t, err)
				do(t, r.Sync())
			},
			want: map[string]string{"/d/": "", "/d/f": "abc"},
		},
		{
			name: "Create over a synced file, not synced: old contents",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "old")
				f := create(t, m, "/d/f")
				mustWrite(t, f, "new!")
			},
			want: map[string]string{"/d/": "", "/d/f": "old"},
		},
		{
			name: "remove not synced: the file is back",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "data")
				do(t, m.Remove("/d/f"))
			},
			want: map[string]string{"/d/": "", "/d/f": "data"},
		},
		{
			name: "remove synced",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "data")
				do(t, m.Remove("/d/f"))
				do(t, m.SyncDir("/d"))
			},
			want: map[string]string{"/d/": ""},
		},
		{
			name: "writes through a handle after an un-synced remove",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "data")
				f, err := m.OpenAppend("/d/f")
				do(t, err)
				do(t, m.Remove("/d/f"))
				mustWrite(t, f, "+")
				do(t, f.Sync())
			},
			want: map[string]string{"/d/": "", "/d/f": "data+"},
		},
		{
			name: "remove, create again, sync data only",
			run: func(t *testing.T, m *Mem) {
				writeDurable(t, m, "/d/f", "old")
				do(t, m.Remove("/d/f"))
				f := create(t, m, "/d/f")
				mustWrite(t, f, "new")
				do(t, f.Sync())
			},
			want: map[string]string{"/d/": "", "/d/f": "old"},
		},
		{
			name: "MkdirAll is durable without SyncDir",
			run: func(t *testing.T, m *Mem) {
				mkdirs(t, m, "/a/b/c")
			},
			want: map[string]string{"/a/": "", "/a/b/": "", "/a/b/c/": "", "/d/": ""},
		},
		{
			name: "Lock creates its file as an un-synced entry",
			run: func(t *testing.T, m *Mem) {
				_, err := m.Lock("/d/LOCK")
				do(t, err)
			},
			want: map[string]string{"/d/": ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem()
			mkdirs(t, m, "/d")
			tc.run(t, m)
			before := tree(t, m, "/")
			wantTree(t, "after the crash", tree(t, m.CrashClone(CrashConfig{}), "/"), tc.want)
			wantTree(t, "the original after the clone", tree(t, m, "/"), before)
		})
	}
}

// writeDurable writes name with data, syncs it and its directory.
func writeDurable(t *testing.T, m *Mem, name, data string) {
	t.Helper()
	writeFile(t, m, name, []byte(data))
	do(t, m.SyncDir(path.Dir(name)))
}

// TestCrashRename: a rename is undone by a crash unless its directories were
// synced; within one directory it is atomic.
func TestCrashRename(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, m *Mem)
		want map[string]string
	}{
		{
			name: "not synced: undone",
			run: func(t *testing.T, m *Mem) {
				do(t, m.Rename("/a/tmp", "/a/f"))
			},
			want: map[string]string{"/a/tmp": "T", "/a/f": "F"},
		},
		{
			name: "synced",
			run: func(t *testing.T, m *Mem) {
				do(t, m.Rename("/a/tmp", "/a/f"))
				do(t, m.SyncDir("/a"))
			},
			want: map[string]string{"/a/f": "T"},
		},
		{
			name: "across directories, only the new one synced: both names",
			run: func(t *testing.T, m *Mem) {
				do(t, m.Rename("/a/tmp", "/b/g"))
				do(t, m.SyncDir("/b"))
			},
			want: map[string]string{"/a/tmp": "T", "/a/f": "F", "/b/g": "T"},
		},
		{
			name: "across directories, only the old one synced: neither",
			run: func(t *testing.T, m *Mem) {
				do(t, m.Rename("/a/tmp", "/b/g"))
				do(t, m.SyncDir("/a"))
			},
			want: map[string]string{"/a/f": "F"},
		},
		{
			name: "across directories, both synced",
			run: func(t *testing.T, m *Mem) {
				do(t, m.Rename("/a/tmp", "/b/g"))
				do(t, m.SyncDir("/a"))
				do(t, m.SyncDir("/b"))
			},
			want: map[string]string{"/a/f": "F", "/b/g": "T"},
		},
		{
			name: "a directory moved, new parent synced",
			run: func(t *testing.T, m *Mem) {
				mkdirs(t, m, "/a/sub")
				writeDurable(t, m, "/a/sub/x", "X")
				do(t, m.Rename("/a/sub", "/b/sub"))
				do(t, m.SyncDir("/b"))
				do(t, m.SyncDir("/a"))
			},
			want: map[string]string{"/a/tmp": "T", "/a/f": "F", "/b/sub/": "", "/b/sub/x": "X"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem()
			mkdirs(t, m, "/a", "/b")
			writeDurable(t, m, "/a/tmp", "T")
			writeDurable(t, m, "/a/f", "F")
			tc.run(t, m)
			want := map[string]string{"/a/": "", "/b/": ""}
			maps.Copy(want, tc.want)
			wantTree(t, "after the crash", tree(t, m.CrashClone(CrashConfig{}), "/"), want)
		})
	}
}

// TestCrashCloneHardLink: a file durable under two names after a crash is
// one file with two names, as on a real disk.
func TestCrashCloneHardLink(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/a", "/b")
	writeDurable(t, m, "/a/f", "0123456789")
	do(t, m.Rename("/a/f", "/b/g"))
	do(t, m.SyncDir("/b"))
	c := m.CrashClone(CrashConfig{})
	wantTree(t, "after the crash", tree(t, c, "/"), map[string]string{
		"/a/": "", "/a/f": "0123456789", "/b/": "", "/b/g": "0123456789",
	})
	if got := c.UsedBytes(); got != 10 {
		t.Fatalf("UsedBytes = %d, want the file counted once", got)
	}
	f, err := c.OpenAppend("/a/f")
	do(t, err)
	mustWrite(t, f, "+")
	do(t, f.Close())
	wantFile(t, c, "/b/g", []byte("0123456789+"))
	do(t, c.Rename("/a/f", "/b/g")) // two names of one file: nothing happens
	do(t, c.Remove("/a/f"))
	wantFile(t, c, "/b/g", []byte("0123456789+"))
	if got := c.UsedBytes(); got != 11 {
		t.Fatalf("UsedBytes after removing one name = %d, want 11", got)
	}
	if err := checkMem(c); err != nil {
		t.Fatal(err)
	}
}

// TestFsyncgate: after a failed Sync the pending writes are unknown, and a
// later Sync that returns nil does not make them durable.
func TestFsyncgate(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	writeDurable(t, m, "/d/f", "base.")
	f, err := m.OpenAppend("/d/f")
	do(t, err)
	mustWrite(t, f, "lost.")
	m.InjectFault(Fault{Op: OpSync, Times: 1, Err: syscall.EIO})
	err = f.Sync()
	wantErr(t, "Sync", err, syscall.EIO)
	wantErr(t, "Sync", err, ErrInjected)
	mustWrite(t, f, "kept.")
	do(t, f.Sync()) // the fault has disarmed: this one succeeds
	wantFile(t, m, "/d/f", []byte("base.lost.kept."))
	// The unknown bytes are a hole on the disk; "kept." is at its offset.
	c := m.CrashClone(CrashConfig{})
	wantFile(t, c, "/d/f", []byte("base.\x00\x00\x00\x00\x00kept."))

	// The same for directories: a name whose SyncDir failed stays lost
	// after a later SyncDir succeeds.
	writeFile(t, m, "/d/g", []byte("G"))
	m.InjectFault(Fault{Op: OpSyncDir, Path: "/d", Times: 1})
	wantErr(t, "SyncDir", m.SyncDir("/d"), ErrInjected)
	writeFile(t, m, "/d/h", []byte("H"))
	do(t, m.SyncDir("/d"))
	got := tree(t, m.CrashClone(CrashConfig{}), "/")
	wantTree(t, "after the crash", got, map[string]string{
		"/d/": "", "/d/f": "base.\x00\x00\x00\x00\x00kept.", "/d/h": "H",
	})
}

// TestPlantedWriterBugs runs three careless writers, each with one bug that a
// real power cut punishes, and checks that Mem punishes it too, while the
// careful writer keeps its data.
func TestPlantedWriterBugs(t *testing.T) {
	type writer struct {
		skipSync, skipSyncDir, retrySync bool
	}
	save := func(m *Mem, w writer) error {
		f, err := m.Create("/d/tmp")
		if err != nil {
			return err
		}
		if _, err := f.Write([]byte("record")); err != nil {
			return err
		}
		if !w.skipSync {
			if err := f.Sync(); err != nil {
				if !w.retrySync {
					return err
				}
				if err := f.Sync(); err != nil {
					return err
				}
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := m.Rename("/d/tmp", "/d/rec"); err != nil {
			return err
		}
		if !w.skipSyncDir {
			return m.SyncDir("/d")
		}
		return nil
	}
	for _, tc := range []struct {
		name       string
		w          writer
		syncFault  bool
		wantSurvie bool
	}{
		{"careful", writer{}, false, true},
		{"forgets Sync", writer{skipSync: true}, false, false},
		{"forgets SyncDir", writer{skipSyncDir: true}, false, false},
		{"retries a failed Sync", writer{retrySync: true}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem()
			mkdirs(t, m, "/d")
			if tc.syncFault {
				m.InjectFault(Fault{Op: OpSync, Times: 1})
			}
			if err := save(m, tc.w); err != nil {
				t.Fatalf("save: %v", err)
			}
			got := tree(t, m.CrashClone(CrashConfig{}), "/d")["/d/rec"]
			if survived := got == "record"; survived != tc.wantSurvie {
				t.Fatalf("after the crash /d/rec = %q; want the record to survive: %v", got, tc.wantSurvie)
			}
		})
	}
}

// tornOutcome classifies what a crash did to one pending write of data at
// off = len(base) onto the synced base, failing the test unless it is one of
// the allowed outcomes: lost, kept, or torn: data up to a sector boundary
// (or none of it), then either nothing or garbage up to the next boundary
// (or the write's end).
func tornOutcome(t *testing.T, got, base, data []byte, s int) string {
	t.Helper()
	off, end := len(base), len(base)+len(data)
	if len(got) < off || !bytes.Equal(got[:off], base) {
		t.Fatalf("the synced prefix changed: %q", got)
	}
	l := len(got)
	switch {
	case l == off:
		return "lost"
	case l == end && bytes.Equal(got[off:], data):
		return "kept"
	case l > end:
		t.Fatalf("a torn write grew the file to %d > %d", l, end)
	case l%s == 0 && bytes.Equal(got[off:], data[:l-off]):
		return "torn"
	}
	// Garbage after the last cut point before l.
	cut := max(off, (l-1)/s*s)
	if l != min(end, (cut/s+1)*s) || !bytes.Equal(got[off:cut], data[:cut-off]) {
		t.Fatalf("not a torn write: %d bytes, data %q... ending %q", l, got[off:min(l, off+8)], got[max(off, l-8):])
	}
	return "torn+garbage"
}

// TestTornWrites: with a Rand, a pending write is lost, kept, or torn at a
// sector boundary with or without a garbage sector, and nothing else.
func TestTornWrites(t *testing.T) {
	for _, sector := range []int{0, 512, 4096} {
		t.Run(fmt.Sprint("sector=", sector), func(t *testing.T) {
			s := cmpOr(sector, 512)
			base := bytes.Repeat([]byte{'b'}, 1000)
			data := make([]byte, 3*s+100)
			for i := range data {
				data[i] = byte('A' + i%26)
			}
			m := NewMem()
			mkdirs(t, m, "/d")
			writeDurable(t, m, "/d/f", string(base))
			f, err := m.OpenAppend("/d/f")
			do(t, err)
			mustWrite(t, f, string(data))
			seen := map[string]int{}
			for seed := range uint64(400) {
				c := m.CrashClone(CrashConfig{Rand: rand.New(rand.NewPCG(seed, 1)), TearSectorBytes: sector})
				got := readFile(t, c, "/d/f")
				seen[tornOutcome(t, got, base, data, s)]++
			}
			for _, o := range []string{"lost", "kept", "torn", "torn+garbage"} {
				if seen[o] == 0 {
					t.Errorf("outcome %q never happened in 400 seeds: %v", o, seen)
				}
			}
		})
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// busyMem returns a Mem with a history touching every kind of pending state:
// synced and un-synced data, truncations, creates, renames, removes, and
// an fsyncgate file.
func busyMem(t *testing.T) *Mem {
	m := NewMem()
	mkdirs(t, m, "/wal", "/snap", "/meta")
	for i := range 8 {
		name := fmt.Sprintf("/wal/%06d.log", i)
		f := create(t, m, name)
		for j := range 6 {
			mustWrite(t, f, strings.Repeat(string(rune('a'+j)), 300+97*i))
			if j == 2 {
				do(t, f.Sync())
			}
		}
		if i%3 == 0 {
			do(t, f.Truncate(int64(500*i)))
		}
		if i == 4 {
			do(t, m.SyncDir("/wal"))
		}
	}
	writeDurable(t, m, "/snap/1", "snapshot one")
	writeFile(t, m, "/snap/tmp", []byte("snapshot two"))
	do(t, m.Rename("/snap/tmp", "/snap/2"))
	do(t, m.Remove("/snap/1"))
	f := create(t, m, "/meta/vote")
	mustWrite(t, f, "term 7")
	m.InjectFault(Fault{Op: OpSync, Path: "vote", Times: 1})
	if f.Sync() == nil {
		t.Fatal("injected Sync fault did not fire")
	}
	mustWrite(t, f, " vote 3")
	do(t, f.Sync())
	do(t, m.SyncDir("/meta"))
	return m
}

// TestRandomCrashReproducible: one seed, one disk, byte for byte, however
// often the clone is taken (Go randomises map order on each iteration, so
// any leak of it would show here); other seeds give other disks.
func TestRandomCrashReproducible(t *testing.T) {
	m := busyMem(t)
	clone := func(seed uint64) map[string]string {
		return tree(t, m.CrashClone(CrashConfig{Rand: rand.New(rand.NewPCG(seed, 0))}), "/")
	}
	distinct := map[string]bool{}
	for seed := range uint64(20) {
		first := clone(seed)
		for range 5 {
			wantTree(t, fmt.Sprint("seed ", seed), clone(seed), first)
		}
		distinct[fmt.Sprint(first)] = true
	}
	if len(distinct) < 15 {
		t.Fatalf("20 seeds gave only %d distinct disks", len(distinct))
	}
}

// TestRandomCrashKeepsSynced: whatever the seed, synced data and names
// survive, and a rename within one directory is all or nothing.
func TestRandomCrashKeepsSynced(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	writeDurable(t, m, "/d/synced", "S")
	writeDurable(t, m, "/d/tmp", "T")
	do(t, m.Rename("/d/tmp", "/d/renamed"))
	writeFile(t, m, "/d/new", []byte("N")) // data synced, name not
	seen := map[string]int{}
	for seed := range uint64(100) {
		c := m.CrashClone(CrashConfig{Rand: rand.New(rand.NewPCG(seed, 2))})
		got := tree(t, c, "/d")
		if got["/d/synced"] != "S" {
			t.Fatalf("seed %d lost synced data: %q", seed, got)
		}
		_, tmp := got["/d/tmp"]
		_, renamed := got["/d/renamed"]
		if tmp == renamed {
			t.Fatalf("seed %d: rename half done: %q", seed, got)
		}
		_, hasNew := got["/d/new"]
		seen[fmt.Sprint("renamed=", renamed, " new=", hasNew)]++
	}
	if len(seen) != 4 {
		t.Fatalf("un-synced entry changes are not independent: %v", seen)
	}
}

func TestCapacity(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	m.SetCapacityBytes(100)
	f := create(t, m, "/d/f")
	mustWrite(t, f, strings.Repeat("a", 60))
	g, err := m.OpenAppend("/d/f")
	do(t, err)
	n, err := g.Write([]byte(strings.Repeat("b", 60)))
	if n != 40 {
		t.Fatalf("write into 40 free bytes wrote %d", n)
	}
	wantErr(t, "full write", err, ErrNoSpace)
	wantErr(t, "full write", err, syscall.ENOSPC)
	if got := m.UsedBytes(); got != 100 {
		t.Fatalf("UsedBytes = %d, want 100", got)
	}
	// Overwriting costs nothing (f's offset is still 60); growing does.
	if n, err := f.Write([]byte(strings.Repeat("c", 41))); n != 40 || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("overwrite of 40 bytes and 1 more on a full disk: %d, %v; want 40, ErrNoSpace", n, err)
	}
	wantFile(t, m, "/d/f", []byte(strings.Repeat("a", 60)+strings.Repeat("c", 40)))
	do(t, f.Truncate(90))
	wantErr(t, "Truncate past the capacity", f.Truncate(101), ErrNoSpace)
	do(t, f.Truncate(100))
	// A removed file's bytes are freed at its last close.
	do(t, m.Remove("/d/f"))
	if got := m.UsedBytes(); got != 100 {
		t.Fatalf("UsedBytes with the removed file open = %d, want 100", got)
	}
	do(t, f.Close())
	do(t, g.Close())
	if got := m.UsedBytes(); got != 0 {
		t.Fatalf("UsedBytes after the last close = %d, want 0", got)
	}
	h := create(t, m, "/d/h")
	mustWrite(t, h, strings.Repeat("c", 100))
	do(t, h.Sync())
	do(t, m.SyncDir("/d"))
	// The clone is the same disk: same capacity, same use.
	c := m.CrashClone(CrashConfig{})
	if c.UsedBytes() != 100 {
		t.Fatalf("clone UsedBytes = %d", c.UsedBytes())
	}
	k, err := c.OpenAppend("/d/h")
	do(t, err)
	if _, err := k.Write([]byte("x")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("clone lost the capacity: %v", err)
	}
	m.SetCapacityBytes(0)
	mustWrite(t, h, strings.Repeat("d", 1000))
}

func TestCorrupt(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	writeDurable(t, m, "/d/f", "abcdef")
	f, err := m.OpenAppend("/d/f")
	do(t, err)
	mustWrite(t, f, "ghij") // pending
	do(t, m.Corrupt("/d/f", 1, 0x20))
	do(t, m.Corrupt("/d/f", 8, 0x20))
	wantFile(t, m, "/d/f", []byte("aBcdefghIj"))
	wantFile(t, m.CrashClone(CrashConfig{}), "/d/f", []byte("aBcdef"))
	// Whichever way a random crash goes, the rotted bytes stay rotted.
	for seed := range uint64(30) {
		got := readFile(t, m.CrashClone(CrashConfig{Rand: rand.New(rand.NewPCG(seed, 3)), TearSectorBytes: 1}), "/d/f")
		if got[1] != 'B' || (len(got) > 8 && got[8] == 'i') {
			t.Fatalf("seed %d: %q", seed, got)
		}
	}
	wantErr(t, "Corrupt beyond the end", m.Corrupt("/d/f", 10, 1), fs.ErrInvalid)
	wantErr(t, "Corrupt at a negative offset", m.Corrupt("/d/f", -1, 1), fs.ErrInvalid)
	wantErr(t, "Corrupt of a missing file", m.Corrupt("/d/nope", 0, 1), fs.ErrNotExist)
	wantErr(t, "Corrupt of a directory", m.Corrupt("/d", 0, 1), syscall.EISDIR)
}

// TestFaultEveryOp: a fault on each Op makes that operation fail with the
// fault's error, and (but for the documented fsyncgate and torn-write
// effects) changes nothing.
func TestFaultEveryOp(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		op  Op
		run func(m *Mem, f File) error
		// want is the tree under /d after the failed operation.
		want map[string]string
	}{
		{OpWrite, func(_ *Mem, f File) error { _, err := f.Write([]byte("x")); return err },
			map[string]string{"/d/f": "F"}},
		{OpSync, func(_ *Mem, f File) error { return f.Sync() }, map[string]string{"/d/f": "F"}},
		{OpSyncDir, func(m *Mem, _ File) error { return m.SyncDir("/d") }, map[string]string{"/d/f": "F"}},
		{OpCreate, func(m *Mem, _ File) error { _, err := m.Create("/d/g"); return err },
			map[string]string{"/d/f": "F"}},
		{OpCreate, func(m *Mem, _ File) error { _, err := m.OpenAppend("/d/f"); return err },
			map[string]string{"/d/f": "F"}},
		{OpCreate, func(m *Mem, _ File) error { _, err := m.Create("/d/f"); return err },
			map[string]string{"/d/f": "F"}},
		{OpRename, func(m *Mem, _ File) error { return m.Rename("/d/f", "/d/g") }, map[string]string{"/d/f": "F"}},
		{OpRead, func(_ *Mem, f File) error { _, err := f.Read(make([]byte, 1)); return err },
			map[string]string{"/d/f": "F"}},
		{OpRead, func(_ *Mem, f File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err },
			map[string]string{"/d/f": "F"}},
		{OpRemove, func(m *Mem, _ File) error { return m.Remove("/d/f") }, map[string]string{"/d/f": "F"}},
		{OpTruncate, func(_ *Mem, f File) error { return f.Truncate(0) }, map[string]string{"/d/f": "F"}},
	} {
		t.Run(tc.op.String(), func(t *testing.T) {
			m := NewMem()
			mkdirs(t, m, "/d")
			writeDurable(t, m, "/d/f", "F")
			f, err := m.OpenAppend("/d/f")
			do(t, err)
			m.InjectFault(Fault{Op: tc.op, Err: errBoom})
			err = tc.run(m, f)
			wantErr(t, "faulted op", err, errBoom)
			wantErr(t, "faulted op", err, ErrInjected)
			m.ClearFaults()
			got := tree(t, m, "/d")
			wantTree(t, "after the fault", got, tc.want)
			if err := tc.run(m, f); err != nil {
				t.Fatalf("after ClearFaults: %v", err)
			}
		})
	}
}

// TestFaultMatching: Path, After and Times, and the order of faults.
func TestFaultMatching(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/wal")
	a, b := create(t, m, "/wal/a.log"), create(t, m, "/wal/b.meta")
	m.InjectFault(Fault{Op: OpWrite, Path: ".log", After: 2, Times: 2})
	write := func(f File) bool { _, err := f.Write([]byte("x")); return err == nil }
	var got []bool
	for range 6 {
		got = append(got, write(a), write(b))
	}
	want := []bool{true, true, true, true, false, true, false, true, true, true, true, true}
	if !slices.Equal(got, want) {
		t.Fatalf("write outcomes %v, want %v", got, want)
	}

	// Times 0 fails forever. The first fault that fires decides and the
	// later ones do not count the operation.
	m.ClearFaults()
	first := errors.New("first")
	second := errors.New("second")
	m.InjectFault(Fault{Op: OpSync, Path: "b.meta", Err: first})
	m.InjectFault(Fault{Op: OpSync, After: 1, Times: 1, Err: second})
	for range 3 {
		wantErr(t, "sync b", b.Sync(), first)
	}
	do(t, a.Sync()) // the second fault's one free pass
	wantErr(t, "sync a", a.Sync(), second)
	do(t, a.Sync()) // disarmed
	wantErr(t, "sync b", b.Sync(), first)

	// A rename matches on either name.
	m.ClearFaults()
	m.InjectFault(Fault{Op: OpRename, Path: "a.log"})
	wantErr(t, "rename from a.log", m.Rename("/wal/a.log", "/wal/c"), ErrInjected)
	wantErr(t, "rename to a.log", m.Rename("/wal/b.meta", "/wal/a.log"), ErrInjected)
	do(t, m.Rename("/wal/b.meta", "/wal/d"))
}

func TestFaultTornBytes(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	f := create(t, m, "/d/f")
	m.InjectFault(Fault{Op: OpWrite, TornBytes: 4, Times: 1})
	n, err := f.Write([]byte("0123456789"))
	if n != 4 {
		t.Fatalf("torn write wrote %d bytes, want 4", n)
	}
	wantErr(t, "torn write", err, ErrInjected)
	mustWrite(t, f, "ab")
	wantFile(t, m, "/d/f", []byte("0123ab"))
	// The torn bytes are an ordinary pending write: durable after Sync.
	do(t, f.Sync())
	do(t, m.SyncDir("/d"))
	wantFile(t, m.CrashClone(CrashConfig{}), "/d/f", []byte("0123ab"))
}

func TestInjectFaultRejectsNonsense(t *testing.T) {
	for _, f := range []Fault{
		{Op: 0},
		{Op: OpTruncate + 1},
		{Op: OpWrite, After: -1},
		{Op: OpWrite, Times: -1},
		{Op: OpWrite, TornBytes: -1},
		{Op: OpSync, TornBytes: 3},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("InjectFault(%+v) accepted", f)
				}
			}()
			NewMem().InjectFault(f)
		}()
	}
}

// TestHookCrashAtEveryStep crashes a careful writer before every operation
// and checks the one property its protocol promises: after the SyncDir
// that follows the rename returns, the record is durable, and before it
// no crash shows a half-written record under the final name.
func TestHookCrashAtEveryStep(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	type step struct {
		op    Op
		path  string
		clone *Mem
	}
	var steps []step
	m.SetHook(func(op Op, p string) {
		steps = append(steps, step{op, p, m.CrashClone(CrashConfig{})})
	})
	f := create(t, m, "d/tmp")
	mustWrite(t, f, "record")
	do(t, f.Sync())
	do(t, f.Close())
	do(t, m.Rename("/d/tmp", "/d/rec"))
	do(t, m.SyncDir("/d"))
	m.SetHook(nil)
	final := m.CrashClone(CrashConfig{})
	do(t, m.Remove("/d/rec")) // no hook any more
	var ops []string
	for _, s := range steps {
		ops = append(ops, s.op.String()+" "+s.path)
		if got := tree(t, s.clone, "/d"); got["/d/rec"] != "" {
			t.Fatalf("crash before %v %s shows the record early: %q", s.op, s.path, got)
		}
	}
	want := []string{"create /d/tmp", "write /d/tmp", "sync /d/tmp", "rename /d/rec", "syncdir /d"}
	if !slices.Equal(ops, want) {
		t.Fatalf("hooked ops %q, want %q", ops, want)
	}
	wantFile(t, final, "/d/rec", []byte("record"))
}

func TestLockAndClone(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	l, err := m.Lock("/d/LOCK")
	do(t, err)
	do(t, m.SyncDir("/d"))
	_, err = m.Lock("d/../d/LOCK") // the same file by another spelling
	wantErr(t, "second Lock", err, syscall.EWOULDBLOCK)
	// A crashed machine reboots without locks.
	c := m.CrashClone(CrashConfig{})
	l2, err := c.Lock("/d/LOCK")
	do(t, err)
	do(t, l2.Close())
	do(t, l.Close())
	wantErr(t, "second Close", l.Close(), fs.ErrClosed)
	_, err = m.Lock("/d")
	wantErr(t, "Lock of a directory", err, syscall.EISDIR)
}

// TestOldHandlesDoNotReachClone: a File of m writes to m only.
func TestOldHandlesDoNotReachClone(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	writeDurable(t, m, "/d/f", "F")
	f, err := m.OpenAppend("/d/f")
	do(t, err)
	c := m.CrashClone(CrashConfig{})
	mustWrite(t, f, "more")
	do(t, f.Sync())
	do(t, m.Remove("/d/f"))
	do(t, m.SyncDir("/d"))
	wantFile(t, c, "/d/f", []byte("F"))
}

// TestPaths: names are cleaned and taken from the root.
func TestPaths(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "a/b")
	writeFile(t, m, "/a/b/../b/./f", []byte("x"))
	for _, name := range []string{"a/b/f", "/a/b/f", "//a//b/f", "../a/b/f", "/../../a/b/f"} {
		wantFile(t, m, name, []byte("x"))
	}
	names, err := m.List("")
	if err != nil || !slices.Equal(names, []string{"a"}) {
		t.Fatalf("List of the root = %q, %v", names, err)
	}
	wantErr(t, "Remove of the root", m.Remove("/"), syscall.EBUSY)
	_, err = m.Create("/")
	wantErr(t, "Create of the root", err, syscall.EISDIR)
	wantErr(t, "Rename of the root", m.Rename("/", "/x"), syscall.EBUSY)
	_, err = m.Open("/a")
	wantErr(t, "Open of a directory", err, syscall.EISDIR)
	_, err = m.Size("/a")
	wantErr(t, "Size of a directory", err, syscall.EISDIR)
}

// TestConcurrent exercises the lock under the race detector: writers on
// their own files, readers, and crash clones all at once.
func TestConcurrent(t *testing.T) {
	m := NewMem()
	mkdirs(t, m, "/d")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			f, err := m.Create(fmt.Sprintf("/d/%d", w))
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 200 {
				if _, err := f.Write([]byte("0123456789")); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					if err := f.Sync(); err != nil {
						t.Error(err)
					}
					if _, err := f.ReadAt(make([]byte, 5), 0); err != nil {
						t.Error(err)
					}
				}
			}
			if err := m.SyncDir("/d"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			m.CrashClone(CrashConfig{Rand: rand.New(rand.NewPCG(uint64(i), 0))})
		}
	})
	wg.Wait()
	c := m.CrashClone(CrashConfig{})
	for w := range 4 {
		name := fmt.Sprintf("/d/%d", w)
		if n, err := c.Size(name); err != nil || n != 1910 {
			t.Fatalf("%s after the crash: %d bytes, %v; want 1910 (synced at write 190)", name, n, err)
		}
	}
}
