package vfs

import (
	"fmt"
	"math/rand/v2"
	"path"
	"testing"
)

// benchSegmentBytesMax is where BenchmarkWriteSync starts its file over.
const benchSegmentBytesMax = 8 << 20

// BenchmarkWriteSync measures the cost of a log-like append: one write of
// recordBytes, and a Sync every syncEvery writes, on Mem and on OS (in
// b.TempDir(), so the OS figure is whatever disk backs it).
func BenchmarkWriteSync(b *testing.B) {
	for _, fsName := range []string{"mem", "os"} {
		for _, c := range []struct{ recordBytes, syncEvery int }{{128, 1}, {4096, 1}, {4096, 16}} {
			b.Run(fmt.Sprintf("%s/record=%d/syncEvery=%d", fsName, c.recordBytes, c.syncEvery), func(b *testing.B) {
				var fsys FS = OS
				dir := b.TempDir()
				if fsName == "mem" {
					fsys, dir = NewMem(), "/bench"
					if err := fsys.MkdirAll(dir); err != nil {
						b.Fatal(err)
					}
				}
				name := path.Join(dir, "log")
				f, err := fsys.Create(name)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { f.Close() }()
				rec := make([]byte, c.recordBytes)
				b.SetBytes(int64(c.recordBytes))
				i, size := 0, 0
				for b.Loop() {
					if size >= benchSegmentBytesMax {
						// Start the segment over, as a WAL rotates, so the
						// figure is not the cost of one ever-growing file.
						if err := f.Close(); err != nil {
							b.Fatal(err)
						}
						if f, err = fsys.Create(name); err != nil {
							b.Fatal(err)
						}
						size = 0
					}
					if _, err := f.Write(rec); err != nil {
						b.Fatal(err)
					}
					size += len(rec)
					if i++; i%c.syncEvery == 0 {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkCrashClone measures one CrashClone of a Mem holding files
// files of fileBytes each, synced, plus pendingWrites un-synced 4 KiB
// writes per file.
func BenchmarkCrashClone(b *testing.B) {
	const files, fileBytes, pendingWrites = 16, 1 << 20, 16
	m := NewMem()
	if err := m.MkdirAll("/d"); err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for i := range files {
		f, err := m.Create(fmt.Sprintf("/d/%02d", i))
		if err != nil {
			b.Fatal(err)
		}
		for range fileBytes / len(chunk) {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		for range pendingWrites {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := m.SyncDir("/d"); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"synced-only", "random"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(files * fileBytes)
			seed := uint64(0)
			for b.Loop() {
				cfg := CrashConfig{}
				if mode == "random" {
					seed++
					cfg.Rand = rand.New(rand.NewPCG(seed, 0))
				}
				m.CrashClone(cfg)
			}
		})
	}
}
