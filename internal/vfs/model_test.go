package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestModel drives Mem, OS (in a temporary directory) and a small reference
// model with the same random operations, and after each one checks that
//   - Mem, OS and the model agree on every result and on the whole tree;
//   - a CrashClone of Mem with Rand nil holds exactly the model's durable
//     state: each file as of its last Sync, each directory's names as of its
//     last SyncDir;
//   - Mem's internal bookkeeping is consistent (checkMem).
//
// The crash action continues on the clone (and rewrites OS to match), so
// clones are exercised as file systems too.
//
// The model is deliberately naive, to be obviously right: with no fault
// injected, durable contents are a copy taken at Sync, durable names a copy
// taken at SyncDir. Faults and random crashes are tested in mem_test.go.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(t.TempDir(), "model")
		if err != nil {
			rt.Fatal(err)
		}
		h := newModelHarness(rt, dir)
		rt.Repeat(h.actions())
	})
}

var (
	modelDirs  = []string{"/a", "/b"}
	modelNames = []string{"/a/x", "/a/y", "/b/x", "/b/z"}
)

type modelInode struct {
	cur, synced []byte
}

type modelHandle struct {
	ino         *modelInode
	writable    bool
	appendOnly  bool
	pos         int64
	mem, osFile File
}

type modelHarness struct {
	rt    *rapid.T
	osDir string
	m     *Mem

	entries map[string]*modelInode            // current name -> file
	durable map[string]map[string]*modelInode // dir -> name -> file, as of its last SyncDir
	handles []*modelHandle
}

func newModelHarness(rt *rapid.T, osDir string) *modelHarness {
	h := &modelHarness{rt: rt, osDir: osDir, m: NewMem(), entries: map[string]*modelInode{}, durable: map[string]map[string]*modelInode{}}
	for _, d := range modelDirs {
		if err := h.m.MkdirAll(d); err != nil {
			rt.Fatal(err)
		}
		if err := OS.MkdirAll(h.osPath(d)); err != nil {
			rt.Fatal(err)
		}
		h.durable[d] = map[string]*modelInode{}
	}
	return h
}

func (h *modelHarness) osPath(p string) string { return filepath.Join(h.osDir, filepath.FromSlash(p)) }

// agree fails unless Mem, OS and the model agree on whether an operation
// succeeded.
func (h *modelHarness) agree(what string, memErr, osErr error, wantOK bool) bool {
	if (memErr == nil) != wantOK || (osErr == nil) != wantOK {
		h.rt.Fatalf("%s: mem %v, os %v; model says success %v", what, memErr, osErr, wantOK)
	}
	return wantOK
}

func (h *modelHarness) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"":           h.check,
		"create":     h.create,
		"open":       h.open,
		"write":      h.write,
		"read":       h.read,
		"readAt":     h.readAt,
		"truncate":   h.truncate,
		"sync":       h.sync,
		"close":      h.close,
		"rename":     h.rename,
		"remove":     h.remove,
		"syncDir":    h.syncDir,
		"crash":      h.crash,
		"sizeByName": h.sizeByName,
	}
}

const modelHandlesMax = 6

func (h *modelHarness) create(t *rapid.T) {
	if len(h.handles) >= modelHandlesMax {
		t.Skip("too many handles")
	}
	p := rapid.SampledFrom(modelNames).Draw(t, "name")
	mf, merr := h.m.Create(p)
	of, oerr := OS.Create(h.osPath(p))
	h.agree("create "+p, merr, oerr, true)
	ino, ok := h.entries[p]
	if ok {
		ino.cur = ino.cur[:0:0]
	} else {
		ino = &modelInode{}
		h.entries[p] = ino
	}
	h.handles = append(h.handles, &modelHandle{ino: ino, writable: true, mem: mf, osFile: of})
}

func (h *modelHarness) open(t *rapid.T) {
	if len(h.handles) >= modelHandlesMax {
		t.Skip("too many handles")
	}
	p := rapid.SampledFrom(modelNames).Draw(t, "name")
	appendOnly := rapid.Bool().Draw(t, "append")
	var mf, of File
	var merr, oerr error
	if appendOnly {
		mf, merr = h.m.OpenAppend(p)
		of, oerr = OS.OpenAppend(h.osPath(p))
	} else {
		mf, merr = h.m.Open(p)
		of, oerr = OS.Open(h.osPath(p))
	}
	ino, ok := h.entries[p]
	if !h.agree("open "+p, merr, oerr, ok) {
		return
	}
	h.handles = append(h.handles, &modelHandle{ino: ino, writable: appendOnly, appendOnly: appendOnly, mem: mf, osFile: of})
}

func (h *modelHarness) handle(t *rapid.T) (int, *modelHandle) {
	if len(h.handles) == 0 {
		t.Skip("no open handle")
	}
	i := rapid.IntRange(0, len(h.handles)-1).Draw(t, "handle")
	return i, h.handles[i]
}

func (h *modelHarness) write(t *rapid.T) {
	_, fh := h.handle(t)
	data := rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "data")
	mn, merr := fh.mem.Write(data)
	on, oerr := fh.osFile.Write(data)
	if !h.agree("write", merr, oerr, fh.writable) {
		return
	}
	if mn != len(data) || on != len(data) {
		t.Fatalf("write of %d bytes: mem %d, os %d", len(data), mn, on)
	}
	if fh.appendOnly {
		fh.pos = int64(len(fh.ino.cur))
	}
	if len(data) > 0 { // an empty write leaves a hole unmade, past the end too
		fh.ino.cur = writeBytes(fh.ino.cur, data, fh.pos)
	}
	fh.pos += int64(len(data))
}

func (h *modelHarness) read(t *rapid.T) {
	_, fh := h.handle(t)
	n := rapid.IntRange(0, 30).Draw(t, "n")
	mb, ob := make([]byte, n), make([]byte, n)
	mn, merr := fh.mem.Read(mb)
	on, oerr := fh.osFile.Read(ob)
	var want []byte
	if fh.pos < int64(len(fh.ino.cur)) {
		want = fh.ino.cur[fh.pos:min(int64(len(fh.ino.cur)), fh.pos+int64(n))]
	}
	wantEOF := n > 0 && len(want) == 0
	if !bytes.Equal(mb[:mn], want) || !bytes.Equal(ob[:on], want) ||
		(merr == io.EOF) != wantEOF || (oerr == io.EOF) != wantEOF ||
		(merr != nil && merr != io.EOF) || (oerr != nil && oerr != io.EOF) {
		t.Fatalf("read %d at %d: mem %q %v, os %q %v; want %q, eof %v", n, fh.pos, mb[:mn], merr, ob[:on], oerr, want, wantEOF)
	}
	fh.pos += int64(len(want))
}

func (h *modelHarness) readAt(t *rapid.T) {
	_, fh := h.handle(t)
	n := rapid.IntRange(0, 30).Draw(t, "n")
	off := rapid.Int64Range(0, 80).Draw(t, "off")
	mb, ob := make([]byte, n), make([]byte, n)
	mn, merr := fh.mem.ReadAt(mb, off)
	on, oerr := fh.osFile.ReadAt(ob, off)
	var want []byte
	if off < int64(len(fh.ino.cur)) {
		want = fh.ino.cur[off:min(int64(len(fh.ino.cur)), off+int64(n))]
	}
	wantEOF := len(want) < n
	if !bytes.Equal(mb[:mn], want) || !bytes.Equal(ob[:on], want) ||
		(merr == io.EOF) != wantEOF || (oerr == io.EOF) != wantEOF ||
		(merr != nil && merr != io.EOF) || (oerr != nil && oerr != io.EOF) {
		t.Fatalf("readAt %d at %d: mem %q %v, os %q %v; want %q, eof %v", n, off, mb[:mn], merr, ob[:on], oerr, want, wantEOF)
	}
}

func (h *modelHarness) truncate(t *rapid.T) {
	_, fh := h.handle(t)
	size := rapid.Int64Range(0, 60).Draw(t, "size")
	merr, oerr := fh.mem.Truncate(size), fh.osFile.Truncate(size)
	if h.agree("truncate", merr, oerr, fh.writable) {
		fh.ino.cur = resize(fh.ino.cur, size)
	}
}

func (h *modelHarness) sync(t *rapid.T) {
	_, fh := h.handle(t)
	h.agree("sync", fh.mem.Sync(), fh.osFile.Sync(), true)
	fh.ino.synced = slices.Clone(fh.ino.cur)
}

func (h *modelHarness) close(t *rapid.T) {
	i, fh := h.handle(t)
	h.agree("close", fh.mem.Close(), fh.osFile.Close(), true)
	h.handles = slices.Delete(h.handles, i, i+1)
}

func (h *modelHarness) rename(t *rapid.T) {
	from := rapid.SampledFrom(modelNames).Draw(t, "from")
	to := rapid.SampledFrom(modelNames).Draw(t, "to")
	merr := h.m.Rename(from, to)
	oerr := OS.Rename(h.osPath(from), h.osPath(to))
	ino, ok := h.entries[from]
	// Renaming one name of a file onto another of its names does nothing.
	if h.agree(fmt.Sprintf("rename %s %s", from, to), merr, oerr, ok) && h.entries[to] != ino {
		delete(h.entries, from)
		h.entries[to] = ino
	}
}

func (h *modelHarness) remove(t *rapid.T) {
	p := rapid.SampledFrom(modelNames).Draw(t, "name")
	_, ok := h.entries[p]
	if h.agree("remove "+p, h.m.Remove(p), OS.Remove(h.osPath(p)), ok) {
		delete(h.entries, p)
	}
}

func (h *modelHarness) syncDir(t *rapid.T) {
	d := rapid.SampledFrom(modelDirs).Draw(t, "dir")
	h.agree("syncdir "+d, h.m.SyncDir(d), OS.SyncDir(h.osPath(d)), true)
	h.durable[d] = map[string]*modelInode{}
	for p, ino := range h.entries {
		if path.Dir(p) == d {
			h.durable[d][path.Base(p)] = ino
		}
	}
}

func (h *modelHarness) sizeByName(t *rapid.T) {
	p := rapid.SampledFrom(modelNames).Draw(t, "name")
	mn, merr := h.m.Size(p)
	on, oerr := OS.Size(h.osPath(p))
	ino, ok := h.entries[p]
	if h.agree("size "+p, merr, oerr, ok) && (mn != int64(len(ino.cur)) || on != mn) {
		t.Fatalf("size %s: mem %d, os %d, model %d", p, mn, on, len(ino.cur))
	}
}

// durableTree is the model's prediction of a crash.
func (h *modelHarness) durableTree() map[string]string {
	out := map[string]string{}
	for _, d := range modelDirs {
		out[d+"/"] = ""
		for name, ino := range h.durable[d] {
			out[path.Join(d, name)] = string(ino.synced)
		}
	}
	return out
}

func (h *modelHarness) currentTree() map[string]string {
	out := map[string]string{}
	for _, d := range modelDirs {
		out[d+"/"] = ""
	}
	for p, ino := range h.entries {
		out[p] = string(ino.cur)
	}
	return out
}

// crash reboots: Mem becomes its clone, OS is rewritten to match, and the
// model's durable state becomes its whole state.
func (h *modelHarness) crash(t *rapid.T) {
	for _, fh := range h.handles {
		if err := errors.Join(fh.mem.Close(), fh.osFile.Close()); err != nil {
			t.Fatal(err)
		}
	}
	h.handles = nil
	h.m = h.m.CrashClone(CrashConfig{})
	// A file durable under two names (an un-synced rename across
	// directories) comes back as one file with two names, in Mem, in the
	// model (one *modelInode) and, by os.Link, in the OS mirror.
	entries := map[string]*modelInode{}
	for _, d := range modelDirs {
		for name, ino := range h.durable[d] {
			entries[path.Join(d, name)] = ino
		}
	}
	for _, ino := range entries {
		ino.cur = slices.Clone(ino.synced)
	}
	h.entries = entries
	for _, d := range modelDirs {
		if err := os.RemoveAll(h.osPath(d)); err != nil {
			t.Fatal(err)
		}
		if err := OS.MkdirAll(h.osPath(d)); err != nil {
			t.Fatal(err)
		}
	}
	written := map[*modelInode]string{}
	for _, p := range slices.Sorted(maps.Keys(h.entries)) {
		ino := h.entries[p]
		var err error
		if first, ok := written[ino]; ok {
			err = os.Link(h.osPath(first), h.osPath(p))
		} else {
			err = os.WriteFile(h.osPath(p), ino.cur, 0o644)
			written[ino] = p
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (h *modelHarness) check(t *rapid.T) {
	cur := h.currentTree()
	memTree := rapidTree(t, h.m, "/")
	osTree := map[string]string{}
	for p, v := range rapidTree(t, OS, h.osDir) {
		osTree[filepath.ToSlash(p[len(h.osDir):])] = v
	}
	if !maps.Equal(memTree, cur) || !maps.Equal(osTree, cur) {
		t.Fatalf("trees differ:\n mem %q\n  os %q\nmodel %q", memTree, osTree, cur)
	}
	if got, want := rapidTree(t, h.m.CrashClone(CrashConfig{}), "/"), h.durableTree(); !maps.Equal(got, want) {
		t.Fatalf("crash clone:\n got %q\nwant %q", got, want)
	}
	if err := checkMem(h.m); err != nil {
		t.Fatal(err)
	}
}

// rapidTree is tree for a *rapid.T.
func rapidTree(t *rapid.T, fsys FS, root string) map[string]string {
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
			f, err := fsys.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(f)
			if err := errors.Join(err, f.Close()); err != nil {
				t.Fatal(err)
			}
			out[p] = string(b)
		}
	}
	walk(root)
	return out
}

// checkMem verifies Mem's bookkeeping: every reachable file's current
// contents are its base with all its operations replayed, usedBytes counts
// at least every named file, and no operation or entry change is left
// pending that a sync should have folded.
func checkMem(m *Mem) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var named int64
	seen := map[*node]bool{}
	names := map[*node]int{}
	var walk func(p string, n *node) error
	walk = func(p string, n *node) error {
		names[n]++
		if seen[n] {
			return nil
		}
		seen[n] = true
		if !n.isDir {
			b := slices.Clone(n.base)
			for i := range n.ops {
				b = n.ops[i].applyTo(b)
			}
			if !bytes.Equal(b, n.data) {
				return fmt.Errorf("%s: replayed %q, current %q", p, b, n.data)
			}
			if n.links < 1 || !n.charged {
				return fmt.Errorf("%s: named file with %d links, charged %v", p, n.links, n.charged)
			}
			named += int64(len(n.data))
			return nil
		}
		entries := maps.Clone(n.baseChildren)
		for _, o := range n.dirOps {
			o.applyTo(entries)
		}
		if !maps.Equal(entries, n.children) {
			return fmt.Errorf("%s: replayed entries %v, current %v", p, entries, n.children)
		}
		for _, name := range slices.Sorted(maps.Keys(n.children)) {
			if err := walk(path.Join(p, name), n.children[name]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("/", m.root); err != nil {
		return err
	}
	for n, count := range names {
		if !n.isDir && n.links != count {
			return fmt.Errorf("file with %d names has links %d", count, n.links)
		}
	}
	if m.usedBytes < named {
		return fmt.Errorf("usedBytes %d < %d bytes in named files", m.usedBytes, named)
	}
	return nil
}
