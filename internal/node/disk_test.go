package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vfs"
	"github.com/chorus-project/chorus/internal/wal"
)

var testID = Identity{ClusterID: 7, MemberID: 1}

func openDisk(t *testing.T, fs vfs.FS) (*Disk, Recovered) {
	t.Helper()
	d, rec, err := OpenDisk(DiskOptions{FS: fs, Dir: "/data", Identity: testID})
	if err != nil {
		t.Fatal(err)
	}
	return d, rec
}

func entry(slot, round uint64, data string) paxos.Entry {
	return paxos.Entry{Slot: slot, Ballot: paxos.Ballot{Round: round, Leader: 1}, Type: paxos.EntryNormal, Data: []byte(data)}
}

func entries(from, to, round uint64) []paxos.Entry {
	var es []paxos.Entry
	for s := from; s <= to; s++ {
		es = append(es, entry(s, round, fmt.Sprintf("v%d.%d", s, round)))
	}
	return es
}

func save(t *testing.T, d *Disk, rd paxos.Ready) {
	t.Helper()
	if err := d.Save(context.Background(), rd); err != nil {
		t.Fatal(err)
	}
}

func bytesWriter(p []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(p); return err }
}

// latestSnapshot reads the application bytes of d's latest snapshot.
func latestSnapshot(t *testing.T, d *Disk) string {
	t.Helper()
	var got []byte
	if err := d.ReadSnapshot(func(_ paxos.SnapshotMeta, r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// chunksOf cuts data into chunks of n bytes for meta, as a core hands them out.
func chunksOf(meta paxos.SnapshotMeta, data []byte, n int) []paxos.SnapshotChunk {
	info := paxos.SnapshotInfo{TotalBytes: uint64(len(data)), Checksum: paxos.ChecksumBytes(data)}
	var out []paxos.SnapshotChunk
	for off := 0; off < len(data) || off == 0; off += n {
		end := min(off+n, len(data))
		out = append(out, paxos.SnapshotChunk{Meta: meta, Info: info, Offset: uint64(off), Data: data[off:end]})
		if end == len(data) {
			break
		}
	}
	return out
}

func sameEntries(t *testing.T, got, want []paxos.Entry) {
	t.Helper()
	eq := slices.EqualFunc(got, want, func(a, b paxos.Entry) bool {
		return a.Slot == b.Slot && a.Ballot == b.Ballot && a.Type == b.Type && string(a.Data) == string(b.Data)
	})
	if !eq {
		t.Fatalf("entries\n got %v\nwant %v", got, want)
	}
}

// TestDiskReplaysReadys persists a sequence of Readys that append, overwrite
// a suffix, truncate and change the hard state, and checks that a restart
// restores exactly the resulting log.
func TestDiskReplaysReadys(t *testing.T) {
	fs := vfs.NewMem()
	d, rec := openDisk(t, fs)
	if !rec.Fresh || len(rec.Restored.Entries) != 0 {
		t.Fatalf("new directory: %+v", rec)
	}
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 2, Leader: 3}, Commit: 3}
	save(t, d, paxos.Ready{EntriesFrom: 1, Entries: entries(1, 6, 1)})
	save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: 4, Entries: entries(4, 5, 2)}) // overwrite 4.., drop 6
	save(t, d, paxos.Ready{EntriesFrom: 6, Entries: entries(6, 8, 2)})
	save(t, d, paxos.Ready{EntriesFrom: 8}) // a pure truncation
	d.Close()

	want := append(entries(1, 3, 1), entries(4, 7, 2)...)
	d, rec = openDisk(t, fs)
	defer d.Close()
	if rec.Fresh || rec.Restored.HardState != hs {
		t.Fatalf("restored %+v, want hard state %v", rec.Restored.HardState, hs)
	}
	sameEntries(t, rec.Restored.Entries, want)
}

// TestDiskCompaction compacts at a slot, keeps writing, and checks that a
// restart starts from the snapshot, keeps the entries above it, and that the
// WAL's front moved.
func TestDiskCompaction(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 1, Leader: 1}, Commit: 5}
	save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: 1, Entries: entries(1, 8, 1)})
	meta := paxos.SnapshotMeta{Slot: 5, Ballot: paxos.Ballot{Round: 1, Leader: 1}, Members: peer.MustSet(1, 2, 3)}
	if err := d.Compact(context.Background(), meta, bytesWriter([]byte("state@5"))); err != nil {
		t.Fatal(err)
	}
	save(t, d, paxos.Ready{EntriesFrom: 9, Entries: entries(9, 9, 1)})
	if got := latestSnapshot(t, d); got != "state@5" {
		t.Fatalf("snapshot holds %q", got)
	}
	if d.log.FirstIndex() == 1 {
		t.Fatal("compaction did not cut the WAL's front")
	}
	d.Close()

	d, rec := openDisk(t, fs)
	defer d.Close()
	if got := latestSnapshot(t, d); rec.Restored.Snapshot.Slot != 5 || !rec.Restored.Snapshot.Members.Equal(meta.Members) || got != "state@5" {
		t.Fatalf("snapshot restored as %v %q", rec.Restored.Snapshot, got)
	}
	sameEntries(t, rec.Restored.Entries, entries(6, 9, 1))
	if rec.Restored.HardState.Promised != hs.Promised {
		t.Fatalf("promise lost across compaction: %v", rec.Restored.HardState)
	}
}

// TestDiskInstallsSnapshotFromLeader saves a Ready carrying a snapshot far
// ahead of the local log: everything below it goes, and a restart starts
// from it with its commit.
func TestDiskInstallsSnapshotFromLeader(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	save(t, d, paxos.Ready{EntriesFrom: 1, Entries: entries(1, 2, 1)})
	meta := paxos.SnapshotMeta{Slot: 40, Ballot: paxos.Ballot{Round: 3, Leader: 2}, Members: peer.MustSet(1, 2)}
	chunks := chunksOf(meta, []byte("a big snapshot in pieces"), 5)
	save(t, d, paxos.Ready{SnapshotChunks: chunks[:2]})
	save(t, d, paxos.Ready{SnapshotChunks: chunks[2:], Snapshot: &meta, EntriesFrom: 41, Entries: entries(41, 42, 3)})
	d.Close()
	d, rec := openDisk(t, fs)
	defer d.Close()
	if got := latestSnapshot(t, d); rec.Restored.Snapshot.Slot != 40 || rec.Restored.HardState.Commit != 40 || got != "a big snapshot in pieces" {
		t.Fatalf("restored %+v %q", rec.Restored, got)
	}
	sameEntries(t, rec.Restored.Entries, entries(41, 42, 3))
}

// TestDiskCrashMidReceive crashes a member with half a snapshot received:
// it restarts from what it had, without the partial file, and a new
// transfer from offset 0 installs cleanly.
func TestDiskCrashMidReceive(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 1, Leader: 1}, Commit: 2}
	save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: 1, Entries: entries(1, 2, 1)})
	meta := paxos.SnapshotMeta{Slot: 30, Ballot: paxos.Ballot{Round: 2, Leader: 2}, Members: peer.MustSet(1, 2)}
	chunks := chunksOf(meta, []byte("0123456789abcdef"), 4)
	save(t, d, paxos.Ready{SnapshotChunks: chunks[:3]})
	crashed := fs.CrashClone(vfs.CrashConfig{})
	d.Close()
	d, rec, err := OpenDisk(DiskOptions{FS: crashed, Dir: "/data", Identity: testID})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Restored.Snapshot.Slot != 0 || latestSnapshot(t, d) != "" {
		t.Fatalf("a partly received snapshot was installed: %+v", rec.Restored.Snapshot)
	}
	sameEntries(t, rec.Restored.Entries, entries(1, 2, 1))
	if names, _ := crashed.List("/data/snap"); len(names) != 0 {
		t.Fatalf("leftovers after restart: %v", names)
	}
	// A chunk in the middle, with nothing received, is a caller's bug.
	if err := d.Save(context.Background(), paxos.Ready{SnapshotChunks: chunks[1:2]}); err == nil {
		t.Fatal("a chunk at offset 4 was appended to nothing")
	}
	save(t, d, paxos.Ready{SnapshotChunks: chunks, Snapshot: &meta})
	if got := latestSnapshot(t, d); got != "0123456789abcdef" {
		t.Fatalf("installed %q", got)
	}
	d.Close()
}

// TestSnapshotChunksMatch reads a compacted snapshot back through the
// SnapshotSource a leader uses: chunks at every offset equal the bytes
// written, the info's size and checksum match, after a restart too; and the
// previous snapshot stays readable after one more compaction (a transfer
// of it may be in flight).
func TestSnapshotChunksMatch(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 1, Leader: 1}, Commit: 9}
	save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: 1, Entries: entries(1, 9, 1)})
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	check := func(d *Disk, slot uint64, data []byte) {
		t.Helper()
		info, err := d.SnapshotInfo(slot)
		if err != nil || info.TotalBytes != uint64(len(data)) || info.Checksum != paxos.ChecksumBytes(data) {
			t.Fatalf("info %+v, %v; want %d bytes", info, err, len(data))
		}
		for off := 0; off < len(data); off += 999 {
			n := min(999, len(data)-off)
			got, err := d.SnapshotChunk(slot, uint64(off), n)
			if err != nil || string(got) != string(data[off:off+n]) {
				t.Fatalf("chunk at %d: %v", off, err)
			}
		}
		if _, err := d.SnapshotChunk(slot, uint64(len(data)), 1); err == nil {
			t.Fatal("read past the end")
		}
	}
	meta := paxos.SnapshotMeta{Slot: 5, Members: peer.MustSet(1, 2, 3)}
	if err := d.Compact(context.Background(), meta, bytesWriter(data)); err != nil {
		t.Fatal(err)
	}
	check(d, 5, data)
	d.Close()
	d, _ = openDisk(t, fs)
	check(d, 5, data)
	if err := d.Compact(context.Background(), paxos.SnapshotMeta{Slot: 8, Members: peer.MustSet(1, 2, 3)}, bytesWriter(data[:77])); err != nil {
		t.Fatal(err)
	}
	check(d, 8, data[:77])
	check(d, 5, data)
	d.Close()
}

// TestDiskCompactRefusesOversizedSnapshot: an app writing more than
// SnapshotBytesMax fails with ErrSnapshotTooLarge and changes nothing.
func TestDiskCompactRefusesOversizedSnapshot(t *testing.T) {
	fs := vfs.NewMem()
	d, _, err := OpenDisk(DiskOptions{FS: fs, Dir: "/data", Identity: testID, SnapshotBytesMax: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 1, Leader: 1}, Commit: 3}
	save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: 1, Entries: entries(1, 3, 1)})
	err = d.Compact(context.Background(), paxos.SnapshotMeta{Slot: 3, Members: peer.MustSet(1)}, bytesWriter(make([]byte, 101)))
	if !errors.Is(err, ErrSnapshotTooLarge) {
		t.Fatalf("err = %v, want ErrSnapshotTooLarge", err)
	}
	if _, err := d.SnapshotInfo(3); err == nil || d.snapshot.Slot != 0 {
		t.Fatal("the refused snapshot was kept")
	}
	if err := d.Compact(context.Background(), paxos.SnapshotMeta{Slot: 3, Members: peer.MustSet(1)}, bytesWriter(make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
}

// TestDiskSurvivesCrashAfterEachSave crashes (keeping only synced data)
// after every Save and checks the restart holds exactly what was saved: Save
// returning is the promise that the state is durable.
func TestDiskSurvivesCrashAfterEachSave(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	defer d.Close()
	var want []paxos.Entry
	for i := uint64(1); i <= 20; i++ {
		hs := paxos.HardState{Promised: paxos.Ballot{Round: i, Leader: 1}, Commit: i - 1}
		from := i
		if i%5 == 0 {
			from = i - 2 // overwrite a suffix now and then
		}
		es := entries(from, i, i)
		save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: from, Entries: es})
		want = append(want[:from-1], es...)
		if i == 12 {
			meta := paxos.SnapshotMeta{Slot: 8, Members: peer.MustSet(1)}
			if err := d.Compact(context.Background(), meta, bytesWriter([]byte("s8"))); err != nil {
				t.Fatal(err)
			}
		}
		crashed := fs.CrashClone(vfs.CrashConfig{})
		d2, rec, err := OpenDisk(DiskOptions{FS: crashed, Dir: "/data", Identity: testID})
		if err != nil {
			t.Fatalf("after save %d: %v", i, err)
		}
		if rec.Restored.HardState.Promised != hs.Promised {
			t.Fatalf("after save %d: promise %v, want %v", i, rec.Restored.HardState.Promised, hs.Promised)
		}
		first := rec.Restored.Snapshot.Slot + 1
		sameEntries(t, rec.Restored.Entries, want[first-1:])
		d2.Close()
	}
}

func TestDiskRefusesAnotherIdentity(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	save(t, d, paxos.Ready{EntriesFrom: 1, Entries: entries(1, 1, 1)})
	d.Close()
	for _, other := range []Identity{{ClusterID: 8, MemberID: 1}, {ClusterID: 7, MemberID: 2}} {
		_, _, err := OpenDisk(DiskOptions{FS: fs, Dir: "/data", Identity: other})
		if !errors.Is(err, ErrIdentity) {
			t.Fatalf("identity %+v: err = %v, want ErrIdentity", other, err)
		}
	}
	// A log without its identity file is refused, not adopted.
	if err := fs.Remove("/data/" + identityFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenDisk(DiskOptions{FS: fs, Dir: "/data", Identity: testID}); !errors.Is(err, ErrIdentity) {
		t.Fatalf("log without identity: err = %v", err)
	}
}

// TestDiskPlantedForgetPromise shows the planted bug does what the
// simulator's checker relies on.
func TestDiskPlantedForgetPromise(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 4, Leader: 2}}
	save(t, d, paxos.Ready{HardState: &hs})
	d.Close()
	d, rec, err := OpenDisk(DiskOptions{FS: fs, Dir: "/data", Identity: testID, Bugs: DiskBugs{ForgetPromise: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !rec.Restored.HardState.Promised.IsZero() {
		t.Fatal("ForgetPromise kept the promise")
	}
}

// TestDiskSplitsLargeReady saves a Ready bigger than one WAL batch (a new
// leader's recovered suffix) and crashes between its chunks: the restart
// holds a prefix of the entries and a promise covering their ballot, never
// a commit beyond what is on disk.
func TestDiskSplitsLargeReady(t *testing.T) {
	fs := vfs.NewMem()
	opts := DiskOptions{FS: fs, Dir: "/data", Identity: testID, WAL: wal.Options{BatchBytesMax: 512, RecordBytesMax: 256}}
	d, _, err := OpenDisk(opts)
	if err != nil {
		t.Fatal(err)
	}
	big := entries(1, 40, 3) // about 40 x 40 bytes: several batches
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 3, Leader: 1}, Commit: 40}
	save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: 1, Entries: big})
	d.Close()
	d, rec, err := OpenDisk(opts)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, rec.Restored.Entries, big)
	d.Close()

	// Now fail the second fsync of a large Ready and crash.
	fs2 := vfs.NewMem()
	opts.FS = fs2
	d, _, err = OpenDisk(opts)
	if err != nil {
		t.Fatal(err)
	}
	fs2.InjectFault(vfs.Fault{Op: vfs.OpSync, Path: ".wal", After: 1})
	if err := d.Save(context.Background(), paxos.Ready{HardState: &hs, EntriesFrom: 1, Entries: big}); err == nil {
		t.Fatal("Save succeeded through a failed fsync")
	}
	d.Close()
	opts.FS = fs2.CrashClone(vfs.CrashConfig{})
	d, rec, err = OpenDisk(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := rec.Restored.Entries
	if len(got) == 0 || len(got) >= len(big) {
		t.Fatalf("restored %d entries, want a proper prefix of %d", len(got), len(big))
	}
	sameEntries(t, got, big[:len(got)])
	if rec.Restored.HardState.Promised.Less(hs.Promised) || rec.Restored.HardState.Commit > uint64(len(got)) {
		t.Fatalf("restored %v with %d entries", rec.Restored.HardState, len(got))
	}
}

// TestDiskPartialReadyDropsNothing is the regression test for simulator seed
// 41269: a Ready that re-proposes a suffix under a new ballot reaches the
// disk only in part (its first WAL append synced, the second failed). The
// entries it did not reach must keep their old, possibly chosen, values:
// only the new leader's values may replace them, nothing may delete them.
func TestDiskPartialReadyDropsNothing(t *testing.T) {
	fs := vfs.NewMem()
	opts := DiskOptions{FS: fs, Dir: "/data", Identity: testID, WAL: wal.Options{BatchBytesMax: 512, RecordBytesMax: 256}}
	d, _, err := OpenDisk(opts)
	if err != nil {
		t.Fatal(err)
	}
	payload := func(slot, round uint64) paxos.Entry {
		e := entry(slot, round, "")
		e.Data = make([]byte, 180) // two records per 512-byte batch
		e.Data[0] = byte(round)
		return e
	}
	old := []paxos.Entry{payload(1, 1), payload(2, 1), payload(3, 1), payload(4, 1)}
	save(t, d, paxos.Ready{EntriesFrom: 1, Entries: old})
	fs.InjectFault(vfs.Fault{Op: vfs.OpSync, Path: ".wal", After: 1})
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 2, Leader: 1}}
	rewrite := []paxos.Entry{payload(2, 2), payload(3, 2), payload(4, 2)}
	if err := d.Save(context.Background(), paxos.Ready{HardState: &hs, EntriesFrom: 2, Entries: rewrite}); err == nil {
		t.Fatal("Save succeeded through a failed fsync")
	}
	d.Close()
	opts.FS = fs.CrashClone(vfs.CrashConfig{})
	d, rec, err := OpenDisk(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sameEntries(t, rec.Restored.Entries, []paxos.Entry{old[0], rewrite[0], rewrite[1], old[3]})
}

// TestDiskDefersCommitOnlyHardState: a Ready that only advances the commit
// costs no fsync, a promise always does, and a restart restores at least
// the durable hard state.
func TestDiskDefersCommitOnlyHardState(t *testing.T) {
	fs := vfs.NewMem()
	d, _ := openDisk(t, fs)
	hs := paxos.HardState{Promised: paxos.Ballot{Round: 1, Leader: 1}, Commit: 0}
	save(t, d, paxos.Ready{HardState: &hs, EntriesFrom: 1, Entries: entries(1, 3, 1)})
	last := d.log.LastIndex()
	commitOnly := paxos.HardState{Promised: hs.Promised, Commit: 3}
	save(t, d, paxos.Ready{HardState: &commitOnly})
	if d.log.LastIndex() != last {
		t.Fatal("a commit-only hard state was written")
	}
	if d.DurableHardState() != hs {
		t.Fatalf("durable %v, want %v", d.DurableHardState(), hs)
	}
	promise := paxos.HardState{Promised: paxos.Ballot{Round: 2, Leader: 3}, Commit: 3}
	save(t, d, paxos.Ready{HardState: &promise})
	if d.log.LastIndex() != last+1 || d.DurableHardState() != promise {
		t.Fatal("a new promise was not written")
	}
	d.Close()
	d, rec := openDisk(t, fs)
	defer d.Close()
	if rec.Restored.HardState != promise {
		t.Fatalf("restored %v, want %v", rec.Restored.HardState, promise)
	}
}
