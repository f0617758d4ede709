package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chorus-project/chorus/internal/invariant"
	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/vfs"
	"github.com/chorus-project/chorus/internal/wal"
	"github.com/chorus-project/chorus/internal/wire"
)

// Errors of the disk layer; test with errors.Is.
var (
	// ErrIdentity: the data directory belongs to another cluster or member,
	// or holds a log without an identity file.
	ErrIdentity = errors.New("node: data directory identity mismatch")
	// ErrCorruptState: a record of the log decoded by the WAL (its checksum
	// held) but its content is not a valid paxos record, or the records
	// contradict each other.
	ErrCorruptState = errors.New("node: corrupt paxos state on disk")
	// ErrSnapshotTooLarge: the application wrote more than
	// DiskOptions.SnapshotBytesMax bytes into a snapshot; it was not kept.
	ErrSnapshotTooLarge = errors.New("node: snapshot over its size limit")
)

// Record types in the member's WAL.
const (
	recEntry     uint8 = 1 // one accepted entry; replaces the entry at its slot only
	recHardState uint8 = 2 // the promised ballot and the commit index
	recTruncate  uint8 = 3 // drop every entry at or above a slot
)

// Layout of a member's data directory.
const (
	identityFile = "IDENTITY"
	walDir       = "wal"
	snapDir      = "snap"
	snapSuffix   = ".snap"
	// recvFile holds the chunks of a snapshot being received from a leader.
	// It is never synced: a restart removes it (the transfer starts again).
	recvFile = "receiving.part"
	// walSnapshotHeaderBytes is the header wal.WriteSnapshot puts before the
	// payload (package wal's file format: magic, version, flags); chunks are
	// read at offsets past it. TestSnapshotChunksMatch guards the value.
	walSnapshotHeaderBytes = 12
)

// Identity names the cluster and the member a data directory belongs to. It
// is written once, when the directory is initialised, and checked at every
// start, so a member never joins a cluster other than the one its log came
// from.
type Identity struct {
	ClusterID uint64
	MemberID  peer.ID
}

// DiskOptions configures OpenDisk.
type DiskOptions struct {
	FS       vfs.FS
	Dir      string
	Identity Identity
	// WAL tunes the log; FS and Dir are filled in by OpenDisk.
	WAL    wal.Options
	Logger *slog.Logger
	// SnapshotBytesMax bounds the application bytes of a snapshot that
	// Compact writes; 0 means no bound. (What a peer may send is bounded by
	// the paxos core's Limits.SnapshotBytesMax.)
	SnapshotBytesMax uint64
	// Bugs plants deliberate bugs, for the simulator's checkers only.
	Bugs DiskBugs
}

// DiskBugs are deliberate bugs that the simulator's checkers must catch.
type DiskBugs struct {
	// ForgetPromise makes OpenDisk restore a zero promised ballot: the member
	// forgets the promises it made before the crash.
	ForgetPromise bool
}

// Recovered is what OpenDisk found: the state to hand to paxos.New (the
// latest snapshot's application bytes are read with Disk.ReadSnapshot).
type Recovered struct {
	Restored paxos.Restored
	// Fresh reports that the directory was empty and has just been
	// initialised with the identity.
	Fresh bool
	// WAL reports what the log's recovery found and repaired.
	WAL wal.Recovery
}

// Disk keeps one paxos member's durable state: a WAL of entry, truncate and
// hard-state records, and snapshot files. Save persists one Ready with a
// single WAL append, so one fsync makes all of it durable at once.
//
// Records are replayed in order at start-up: an entry record for slot s
// replaces the entry at s (or appends it at the end of the log), a truncate
// record drops every entry at or above its slot, the last hard-state record
// wins. An entry record never deletes anything by itself: a Ready that
// rewrites a suffix writes its entries first and the truncation of what lies
// beyond them after, so any prefix of its records (a torn batch, or the
// first chunks of a split one, that reached the disk before a crash) only
// replaces accepted values by the new leader's, never drops one. Dropping an
// entry that was acknowledged under an older ballot without holding the
// new leader's value for that slot would let a chosen value vanish: the
// simulator found exactly that (seed 41269, docs/simulator.md).
//
// A Disk is used by one goroutine at a time (the shell's or the simulator's).
type Disk struct {
	opts DiskOptions
	log  *wal.Log

	// The durable state, as replaying the WAL would rebuild it, except
	// that hs (the latest hard state the core handed out) may run ahead of
	// durableHS (the last one written) in Commit only (see Save).
	hs, durableHS paxos.HardState
	snapshot      paxos.SnapshotMeta
	// walIndex[i] is the WAL index of the record holding the current entry
	// of slot firstSlot()+i: the log is contiguous from the snapshot on.
	walIndex []uint64
	// snaps describes the snapshot files kept (the latest, and the one
	// before it while a leader may still be sending it), by slot.
	snaps map[uint64]snapFile
	// recv is the file of the snapshot being received (nil if none) and
	// recvBytes its length.
	recv      vfs.File
	recvBytes uint64
}

// snapFile locates the application bytes in a snapshot file: they start at
// dataOffset bytes into the file, and info gives their length and CRC32C.
type snapFile struct {
	meta       paxos.SnapshotMeta
	dataOffset int64
	info       paxos.SnapshotInfo
}

// OpenDisk opens (or initialises) the data directory and replays it.
func OpenDisk(opts DiskOptions) (*Disk, Recovered, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Identity.MemberID == peer.None {
		return nil, Recovered{}, fmt.Errorf("node: member id 0 is reserved")
	}
	d := &Disk{opts: opts, snaps: map[uint64]snapFile{}}
	var rec Recovered
	fresh, err := d.checkIdentity()
	if err != nil {
		return nil, rec, err
	}
	rec.Fresh = fresh
	if err := mkdirDurable(opts.FS, filepath.Join(opts.Dir, snapDir)); err != nil {
		return nil, rec, err
	}
	if err := d.removeLeftovers(); err != nil {
		return nil, rec, err
	}
	wopts := opts.WAL
	wopts.FS, wopts.Dir, wopts.Logger = opts.FS, filepath.Join(opts.Dir, walDir), opts.Logger
	log, wrec, err := wal.Open(wopts)
	if err != nil {
		return nil, rec, fmt.Errorf("node: open log: %w", err)
	}
	d.log, rec.WAL = log, wrec
	if err := d.loadLatestSnapshot(); err != nil {
		log.Close()
		return nil, rec, err
	}
	restored, err := d.replay()
	if err != nil {
		log.Close()
		return nil, rec, err
	}
	if opts.Bugs.ForgetPromise {
		restored.HardState.Promised = paxos.Ballot{}
	}
	rec.Restored = restored
	return d, rec, nil
}

// checkIdentity compares the directory's identity file with the configured
// one, writing it if the directory is new.
func (d *Disk) checkIdentity() (fresh bool, err error) {
	fsys, dir, want := d.opts.FS, d.opts.Dir, d.opts.Identity
	if err := mkdirDurable(fsys, dir); err != nil {
		return false, err
	}
	var got []byte
	err = wal.ReadSnapshot(fsys, dir, identityFile, func(r io.Reader) error {
		got, err = io.ReadAll(io.LimitReader(r, 64))
		return err
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		names, lerr := fsys.List(filepath.Join(dir, walDir))
		if lerr == nil && len(names) > 0 {
			return false, fmt.Errorf("%w: %s holds a log but no %s file; refusing to guess whose it is",
				ErrIdentity, dir, identityFile)
		}
		enc := encodeIdentity(want)
		if err := wal.WriteSnapshot(fsys, dir, identityFile, func(w io.Writer) error {
			_, err := w.Write(enc)
			return err
		}); err != nil {
			return false, fmt.Errorf("node: write identity: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("node: read identity: %w", err)
	}
	have, err := decodeIdentity(got)
	if err != nil {
		return false, fmt.Errorf("%w: %s/%s: %w", ErrIdentity, dir, identityFile, err)
	}
	if have != want {
		return false, fmt.Errorf("%w: %s belongs to cluster %d member %s, not cluster %d member %s; use another directory",
			ErrIdentity, dir, have.ClusterID, have.MemberID, want.ClusterID, want.MemberID)
	}
	return false, nil
}

// mkdirDurable creates dir and syncs its parent, so that the new entry
// survives a power cut (MkdirAll alone does not promise that).
func mkdirDurable(fsys vfs.FS, dir string) error {
	if err := fsys.MkdirAll(dir); err != nil {
		return fmt.Errorf("node: create directory %s: %w", dir, err)
	}
	if err := fsys.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return fmt.Errorf("node: sync the parent of %s: %w", dir, err)
	}
	return nil
}

func encodeIdentity(id Identity) []byte {
	w := wire.NewBuffer(nil)
	w.Uint8(1) // format version
	w.Uint64(id.ClusterID)
	w.Uint64(uint64(id.MemberID))
	return w.Bytes()
}

func decodeIdentity(p []byte) (Identity, error) {
	r := wire.NewReader(p)
	if v := r.Uint8(); r.Err() == nil && v != 1 {
		return Identity{}, fmt.Errorf("identity format version %d unknown", v)
	}
	id := Identity{ClusterID: r.Uint64(), MemberID: peer.ID(r.Uint64())}
	return id, r.Done()
}

// replay rebuilds the durable state from the WAL.
func (d *Disk) replay() (paxos.Restored, error) {
	var entries []paxos.Entry
	for i := d.log.FirstIndex(); i <= d.log.LastIndex(); i++ {
		r, err := d.log.Get(i)
		if err != nil {
			return paxos.Restored{}, fmt.Errorf("node: read log record %d: %w", i, err)
		}
		switch r.Type {
		case recEntry:
			e, err := decodeEntry(r.Data)
			if err != nil {
				return paxos.Restored{}, fmt.Errorf("%w: record %d: %w", ErrCorruptState, i, err)
			}
			entries, err = d.replayEntry(entries, e, i)
			if err != nil {
				return paxos.Restored{}, err
			}
		case recHardState:
			hs, err := decodeHardState(r.Data)
			if err != nil {
				return paxos.Restored{}, fmt.Errorf("%w: record %d: %w", ErrCorruptState, i, err)
			}
			d.hs, d.durableHS = hs, hs
		case recTruncate:
			if len(r.Data) != 8 {
				return paxos.Restored{}, fmt.Errorf("%w: record %d: truncate record of %d bytes", ErrCorruptState, i, len(r.Data))
			}
			d.noteTruncate(binary.BigEndian.Uint64(r.Data))
			entries = entries[:len(d.walIndex)]
		default:
			return paxos.Restored{}, fmt.Errorf("%w: record %d has unknown type %d", ErrCorruptState, i, r.Type)
		}
	}
	// A snapshot holds only committed state, so its slot is committed even
	// if no hard-state record says so yet. An acceptor accepts under a
	// ballot only after promising it, so the promise covers every entry's
	// ballot even if a crash came between the entries and the hard state
	// of one Ready (see appendChunked).
	hs := d.hs
	hs.Commit = max(hs.Commit, d.snapshot.Slot)
	for _, e := range entries {
		if hs.Promised.Less(e.Ballot) {
			hs.Promised = e.Ballot
		}
	}
	return paxos.Restored{HardState: hs, Entries: entries, Snapshot: d.snapshot}, nil
}

// replayEntry applies one entry record (at WAL index w) to the replayed log.
func (d *Disk) replayEntry(entries []paxos.Entry, e paxos.Entry, w uint64) ([]paxos.Entry, error) {
	if e.Slot < d.firstSlot() {
		// Written before a snapshot that covers it.
		return entries, nil
	}
	if e.Slot > d.lastSlot()+1 {
		return nil, fmt.Errorf("%w: entry for slot %d at log record %d, but the log ends at slot %d",
			ErrCorruptState, e.Slot, w, d.lastSlot())
	}
	d.noteEntry(e.Slot, w)
	if i := e.Slot - d.firstSlot(); i < uint64(len(entries)) {
		entries[i] = e
		return entries, nil
	}
	return append(entries, e), nil
}

// Save makes the durable parts of rd durable: the snapshot chunks it
// received (appended to the file of the snapshot being received, unsynced),
// its snapshot when complete (the received file copied into a snapshot file,
// synced), its log change and its hard state, with one WAL append and so
// one fsync. It must return before any message of rd is sent. An error means
// the member must stop: what is on disk is unknown (see package wal).
func (d *Disk) Save(ctx context.Context, rd paxos.Ready) error {
	for _, ch := range rd.SnapshotChunks {
		if err := d.writeChunk(ch); err != nil {
			return err
		}
	}
	if rd.Snapshot != nil {
		// The file alone makes the snapshot durable: it holds committed state
		// only, so OpenDisk may adopt it whatever the WAL says.
		if err := d.installReceived(*rd.Snapshot); err != nil {
			return err
		}
		d.applySnapshotMeta(*rd.Snapshot)
	}
	var recs []wal.Record
	for _, e := range rd.Entries {
		recs = append(recs, wal.Record{Type: recEntry, Data: encodeEntry(e)})
	}
	// The core asks to drop every entry from EntriesFrom on before its new
	// ones: write the new ones first, then drop what lies beyond them.
	truncateAt := uint64(0)
	if rd.EntriesFrom != 0 {
		if end := rd.EntriesFrom + uint64(len(rd.Entries)); end <= d.lastSlot() {
			truncateAt = end
			recs = append(recs, wal.Record{Type: recTruncate, Data: binary.BigEndian.AppendUint64(nil, truncateAt)})
		}
	}
	// A hard state that only moves the commit index forward, with nothing
	// else to persist, is not worth an fsync: a lagging commit on disk is
	// safe (a restarted member learns the commit again from the leader and
	// re-applies from its snapshot), while the promise must never lag. This
	// halves the fsyncs of a lightly loaded cluster, where every command
	// otherwise costs each member a second fsync for its commit.
	writeHS := rd.HardState != nil && (len(recs) > 0 || rd.Snapshot != nil || rd.HardState.Promised != d.durableHS.Promised)
	if writeHS {
		recs = append(recs, wal.Record{Type: recHardState, Data: encodeHardState(*rd.HardState)})
	}
	if rd.HardState != nil {
		d.hs = *rd.HardState
	}
	if len(recs) == 0 {
		return nil
	}
	last, err := d.appendChunked(ctx, recs)
	if err != nil {
		return fmt.Errorf("node: persist: %w", err)
	}
	// Mirror replay() on what was just written.
	first := last - uint64(len(recs)) + 1
	i := 0
	for _, e := range rd.Entries {
		d.noteEntry(e.Slot, first+uint64(i))
		i++
	}
	if truncateAt != 0 {
		d.noteTruncate(truncateAt)
	}
	if writeHS {
		d.durableHS = *rd.HardState
	}
	return nil
}

// noteTruncate records that the entries at slot and above are gone.
// appendChunked appends recs in as few WAL appends as the WAL's batch limit
// allows (one, and so one fsync, for any Ready the shell bounds), in order,
// and returns the index of the last. A Ready can exceed one batch: a new
// leader re-proposes its whole recovered suffix at once. Splitting is safe
// because nothing of the Ready is sent before all of it is durable, entry
// records never delete (see Disk), and the hard state goes last, so a crash
// between chunks leaves entries without a commit that names them (replay
// raises the promise to cover their ballots).
func (d *Disk) appendChunked(ctx context.Context, recs []wal.Record) (uint64, error) {
	var last uint64
	for len(recs) > 0 {
		n, bytes := 0, 0
		for n < len(recs) && (n == 0 || bytes+len(recs[n].Data)+wal.RecordOverheadBytes <= d.log.BatchBytesMax()) {
			bytes += len(recs[n].Data) + wal.RecordOverheadBytes
			n++
		}
		var err error
		if last, err = d.log.Append(ctx, recs[:n]...); err != nil {
			return 0, err
		}
		recs = recs[n:]
	}
	return last, nil
}

func (d *Disk) noteTruncate(slot uint64) {
	if slot <= d.lastSlot() {
		d.walIndex = d.walIndex[:max(slot, d.firstSlot())-d.firstSlot()]
	}
}

// firstSlot and lastSlot bound the entries on disk (lastSlot is
// firstSlot-1 when there are none).
func (d *Disk) firstSlot() uint64 { return d.snapshot.Slot + 1 }
func (d *Disk) lastSlot() uint64  { return d.snapshot.Slot + uint64(len(d.walIndex)) }

// noteEntry records that WAL index w holds the entry of slot, replacing the
// one there or extending the log by one.
func (d *Disk) noteEntry(slot, w uint64) {
	invariant.Check(slot >= d.firstSlot() && slot <= d.lastSlot()+1, "entry for slot %d; disk holds %d..%d",
		slot, d.firstSlot(), d.lastSlot())
	if i := slot - d.firstSlot(); i < uint64(len(d.walIndex)) {
		d.walIndex[i] = w
		return
	}
	d.walIndex = append(d.walIndex, w)
}

// applySnapshotMeta records a snapshot: the entries it covers are gone, the
// ones above it stay.
func (d *Disk) applySnapshotMeta(meta paxos.SnapshotMeta) {
	if meta.Slot <= d.snapshot.Slot {
		return
	}
	drop := min(uint64(len(d.walIndex)), meta.Slot-d.snapshot.Slot)
	d.walIndex = append([]uint64(nil), d.walIndex[drop:]...)
	d.snapshot = meta
}

// Compact records a snapshot the application took at meta.Slot (write
// streams its bytes into the file) and drops the WAL records it makes
// unnecessary. The caller then calls Core.Compact(meta.Slot). A snapshot
// over DiskOptions.SnapshotBytesMax fails with ErrSnapshotTooLarge and
// changes nothing; the member may go on.
func (d *Disk) Compact(ctx context.Context, meta paxos.SnapshotMeta, write func(io.Writer) error) error {
	if meta.Slot <= d.snapshot.Slot {
		return nil
	}
	if err := d.writeSnapshotFile(meta, write); err != nil {
		return err
	}
	prev := d.snapshot.Slot
	d.applySnapshotMeta(meta)
	// Rewrite the entries above the snapshot and the hard state, so that
	// every record still needed follows the cut and the WAL's front can move
	// past everything older. They are few: the snapshot is at the applied
	// slot, so only committed-but-unapplied and uncommitted entries remain
	// (bounded by the leader's proposal queue).
	recs := make([]wal.Record, 0, len(d.walIndex)+1)
	for _, w := range d.walIndex {
		r, err := d.log.Get(w)
		if err != nil {
			return fmt.Errorf("node: compact: read log record %d: %w", w, err)
		}
		recs = append(recs, r)
	}
	recs = append(recs, wal.Record{Type: recHardState, Data: encodeHardState(d.hs)})
	last, err := d.appendChunked(ctx, recs)
	if err != nil {
		return fmt.Errorf("node: compact: %w", err)
	}
	d.durableHS = d.hs
	first := last - uint64(len(recs)) + 1
	for i := range d.walIndex {
		d.walIndex[i] = first + uint64(i)
	}
	if err := d.log.TruncateFront(first); err != nil {
		return fmt.Errorf("node: compact log: %w", err)
	}
	// Keep the previous snapshot: a leader may be sending it in chunks.
	d.removeSnapshotsBelow(prev)
	return nil
}

// removeSnapshotsBelow deletes snapshot files older than slot. Failures are
// logged, not returned: an old file left behind wastes space, nothing more.
func (d *Disk) removeSnapshotsBelow(slot uint64) {
	dir := filepath.Join(d.opts.Dir, snapDir)
	names, err := d.opts.FS.List(dir)
	if err != nil {
		d.opts.Logger.Warn("listing snapshots", "dir", dir, "err", err)
		return
	}
	for _, name := range names {
		s, ok := parseSnapName(name)
		if ok && s < slot {
			delete(d.snaps, s)
			if err := d.opts.FS.Remove(filepath.Join(dir, name)); err != nil {
				d.opts.Logger.Warn("removing old snapshot", "file", name, "err", err)
			}
		}
	}
}

func snapName(slot uint64) string { return fmt.Sprintf("%016x%s", slot, snapSuffix) }

func parseSnapName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, snapSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil
}

// limitWriter counts and checksums the application's bytes on their way
// into a snapshot file, and refuses more than max of them (0: no limit).
type limitWriter struct {
	w     io.Writer
	max   uint64
	bytes uint64
	crc   uint32
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.max > 0 && l.bytes+uint64(len(p)) > l.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrSnapshotTooLarge, l.max)
	}
	n, err := l.w.Write(p)
	l.bytes += uint64(n)
	l.crc = paxos.UpdateChecksum(l.crc, p[:n])
	return n, err
}

// writeSnapshotFile writes snap/<slot>.snap durably: the metadata (length
// prefixed) then the application's bytes, which write streams, checksummed
// as a whole by wal.WriteSnapshot. It records where the bytes lie.
func (d *Disk) writeSnapshotFile(meta paxos.SnapshotMeta, write func(io.Writer) error) error {
	dir := filepath.Join(d.opts.Dir, snapDir)
	w := wire.NewBuffer(nil)
	w.LenBytes(encodeSnapshotMeta(meta))
	lw := &limitWriter{max: d.opts.SnapshotBytesMax}
	if err := wal.WriteSnapshot(d.opts.FS, dir, snapName(meta.Slot), func(out io.Writer) error {
		if _, err := out.Write(w.Bytes()); err != nil {
			return err
		}
		lw.w = out
		return write(lw)
	}); err != nil {
		return fmt.Errorf("node: write snapshot at slot %d: %w", meta.Slot, err)
	}
	d.snaps[meta.Slot] = snapFile{meta: meta, dataOffset: walSnapshotHeaderBytes + int64(len(w.Bytes())),
		info: paxos.SnapshotInfo{TotalBytes: lw.bytes, Checksum: lw.crc}}
	return nil
}

// readSnapshotFile checks snap/<slot>.snap and calls read with its
// application bytes (streamed; read need not consume them all).
func (d *Disk) readSnapshotFile(slot uint64, read func(meta paxos.SnapshotMeta, metaBytes int, r io.Reader) error) error {
	dir := filepath.Join(d.opts.Dir, snapDir)
	if err := wal.ReadSnapshot(d.opts.FS, dir, snapName(slot), func(r io.Reader) error {
		cr := &countReader{r: r}
		n, err := binary.ReadUvarint(cr)
		if err != nil || n > 1<<20 {
			return fmt.Errorf("%w: snapshot at slot %d: metadata length %d: %v", ErrCorruptState, slot, n, err)
		}
		metaBytes := make([]byte, n)
		if _, err := io.ReadFull(cr, metaBytes); err != nil {
			return fmt.Errorf("%w: snapshot at slot %d: metadata: %w", ErrCorruptState, slot, err)
		}
		meta, err := decodeSnapshotMeta(metaBytes)
		if err != nil || meta.Slot != slot {
			return fmt.Errorf("%w: snapshot file for slot %d holds slot %d: %v", ErrCorruptState, slot, meta.Slot, err)
		}
		return read(meta, cr.n, cr.r)
	}); err != nil {
		return fmt.Errorf("node: read snapshot at slot %d: %w", slot, err)
	}
	return nil
}

// countReader counts the bytes read through it (and reads one at a time
// for binary.ReadUvarint).
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *countReader) ReadByte() (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	return b[0], err
}

// loadLatestSnapshot adopts the newest snapshot file as the base of the log,
// after checking it and measuring its application bytes (streamed: a
// snapshot is never held in memory whole). A damaged newest snapshot is an
// error, not a reason to fall back silently: the WAL's front may already
// have been cut past the older one.
func (d *Disk) loadLatestSnapshot() error {
	dir := filepath.Join(d.opts.Dir, snapDir)
	names, err := d.opts.FS.List(dir)
	if err != nil {
		return fmt.Errorf("node: list snapshots: %w", err)
	}
	var newest uint64
	for _, name := range names {
		if s, ok := parseSnapName(name); ok {
			newest = max(newest, s)
		}
	}
	if newest == 0 {
		return nil
	}
	var sf snapFile
	if err := d.readSnapshotFile(newest, func(meta paxos.SnapshotMeta, metaBytes int, r io.Reader) error {
		lw := &limitWriter{w: io.Discard}
		if _, err := io.Copy(lw, r); err != nil {
			return err
		}
		sf = snapFile{meta: meta, dataOffset: walSnapshotHeaderBytes + int64(metaBytes),
			info: paxos.SnapshotInfo{TotalBytes: lw.bytes, Checksum: lw.crc}}
		return nil
	}); err != nil {
		return err
	}
	d.snapshot = sf.meta
	d.snaps[newest] = sf
	return nil
}

// ReadSnapshot streams the application bytes of the latest snapshot to read
// (after checking the file's checksum); it does nothing when there is none.
func (d *Disk) ReadSnapshot(read func(meta paxos.SnapshotMeta, r io.Reader) error) error {
	if d.snapshot.Slot == 0 {
		return nil
	}
	return d.readSnapshotFile(d.snapshot.Slot, func(meta paxos.SnapshotMeta, _ int, r io.Reader) error {
		return read(meta, r)
	})
}

// SnapshotInfo implements paxos.SnapshotSource: the size and checksum of the
// application bytes of a snapshot this disk keeps.
func (d *Disk) SnapshotInfo(slot uint64) (paxos.SnapshotInfo, error) {
	sf, ok := d.snaps[slot]
	if !ok || slot == 0 {
		return paxos.SnapshotInfo{}, fmt.Errorf("node: no snapshot at slot %d (latest is %d)", slot, d.snapshot.Slot)
	}
	return sf.info, nil
}

// SnapshotChunk implements paxos.SnapshotSource: n application bytes of the
// snapshot at slot from offset, read from its file. The whole snapshot's
// checksum, which the receiver checks, covers these reads.
func (d *Disk) SnapshotChunk(slot, offset uint64, n int) ([]byte, error) {
	sf, ok := d.snaps[slot]
	if !ok || slot == 0 || n < 0 || offset+uint64(n) > sf.info.TotalBytes {
		return nil, fmt.Errorf("node: no bytes %d+%d of a snapshot at slot %d", offset, n, slot)
	}
	path := filepath.Join(d.opts.Dir, snapDir, snapName(slot))
	f, err := d.opts.FS.Open(path)
	if err != nil {
		return nil, fmt.Errorf("node: open snapshot %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, sf.dataOffset+int64(offset)); err != nil {
		return nil, fmt.Errorf("node: read snapshot %s at %d: %w", path, offset, err)
	}
	return buf, nil
}

// writeChunk appends a received chunk to the file of the snapshot being
// received; a chunk at offset 0 starts that file afresh.
func (d *Disk) writeChunk(ch paxos.SnapshotChunk) error {
	path := filepath.Join(d.opts.Dir, snapDir, recvFile)
	if ch.Offset == 0 {
		if err := d.closeRecv(); err != nil {
			return err
		}
		f, err := d.opts.FS.Create(path)
		if err != nil {
			return fmt.Errorf("node: create %s: %w", path, err)
		}
		d.recv, d.recvBytes = f, 0
	}
	if d.recv == nil || ch.Offset != d.recvBytes {
		return fmt.Errorf("node: snapshot chunk at offset %d, but %d bytes received", ch.Offset, d.recvBytes)
	}
	if _, err := d.recv.Write(ch.Data); err != nil {
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	d.recvBytes += uint64(len(ch.Data))
	return nil
}

func (d *Disk) closeRecv() error {
	if d.recv == nil {
		return nil
	}
	err := d.recv.Close()
	d.recv, d.recvBytes = nil, 0
	if err != nil {
		return fmt.Errorf("node: close the snapshot being received: %w", err)
	}
	return nil
}

// installReceived turns the received bytes into the snapshot file of meta
// (copied, streamed, into a file written as Compact writes one), then
// removes the received file.
func (d *Disk) installReceived(meta paxos.SnapshotMeta) error {
	path := filepath.Join(d.opts.Dir, snapDir, recvFile)
	size := d.recvBytes
	if err := d.closeRecv(); err != nil {
		return err
	}
	f, err := d.opts.FS.Open(path)
	if err != nil {
		return fmt.Errorf("node: open %s: %w", path, err)
	}
	err = d.writeSnapshotFile(meta, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(f, 0, int64(size)))
		return err
	})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("node: close %s: %w", path, cerr)
	}
	if err != nil {
		return err
	}
	if err := d.opts.FS.Remove(path); err != nil {
		d.opts.Logger.Warn("removing the received snapshot", "file", path, "err", err)
	}
	d.removeSnapshotsBelow(meta.Slot)
	return nil
}

// removeLeftovers removes, at start-up, a partly received snapshot and the
// temporary files of snapshot writes a crash interrupted.
func (d *Disk) removeLeftovers() error {
	dir := filepath.Join(d.opts.Dir, snapDir)
	if err := d.opts.FS.Remove(filepath.Join(dir, recvFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("node: remove the partly received snapshot: %w", err)
	}
	if _, err := wal.RemoveSnapshotTemps(d.opts.FS, dir); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// DurableHardState is the hard state a restart restores at least: the
// promise of the latest Save, and a commit index that may lag behind it.
func (d *Disk) DurableHardState() paxos.HardState { return d.durableHS }

// Close closes the WAL (and the file of a snapshot being received).
func (d *Disk) Close() error { return errors.Join(d.closeRecv(), d.log.Close()) }
