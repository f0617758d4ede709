package node

import (
	"context"
	"errors"
	"fmt"
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
	if err := d.Compact(context.Background(), meta, []byte("state@5")); err != nil {
		t.Fatal(err)
	}
	save(t, d, paxos.Ready{EntriesFrom: 9, Entries: entries(9, 9, 1)})
	if got, err := d.SnapshotData(5); err != nil || string(got) != "state@5" {
		t.Fatalf("SnapshotData = %q, %v", got, err)
	}
	if d.log.FirstIndex() == 1 {
		t.Fatal("compaction did not cut the WAL's front")
	}
	d.Close()

	d, rec := openDisk(t, fs)
	defer d.Close()
	if rec.Restored.Snapshot.Slot != 5 || !rec.Restored.Snapshot.Members.Equal(meta.Members) || string(rec.SnapshotData) != "state@5" {
		t.Fatalf("snapshot restored as %v %q", rec.Restored.Snapshot, rec.SnapshotData)
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
	snap := &paxos.Snapshot{Meta: paxos.SnapshotMeta{Slot: 40, Ballot: paxos.Ballot{Round: 3, Leader: 2}, Members: peer.MustSet(1, 2)}, Data: []byte("big")}
	save(t, d, paxos.Ready{Snapshot: snap, EntriesFrom: 41, Entries: entries(41, 42, 3)})
	d.Close()
	d, rec := openDisk(t, fs)
	defer d.Close()
	if rec.Restored.Snapshot.Slot != 40 || rec.Restored.HardState.Commit != 40 || string(rec.SnapshotData) != "big" {
		t.Fatalf("restored %+v %q", rec.Restored, rec.SnapshotData)
	}
	sameEntries(t, rec.Restored.Entries, entries(41, 42, 3))
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
			if err := d.Compact(context.Background(), meta, []byte("s8")); err != nil {
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
