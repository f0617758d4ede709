// Package wal is chorus's write-ahead log: a segmented, index-addressed log
// of records on a vfs.FS, with group commit, crash recovery that tells a
// torn tail from corruption as far as that can be done locally, and
// checksummed snapshot files.
//
// # Records and indexes
//
// A record is a type byte and data. Records get consecutive indexes: the
// first record of a new log has index 1; TruncateFront moves the start
// forward (after a snapshot) and TruncateBack cuts the end (log repair).
// Every record stores its own index, so a record read from the wrong place
// (a misdirected write) is detected, not served.
//
// # Files
//
// A log lives in one directory:
//
//	0000000000000001.wal       a segment: records from index 1
//	00000000000a3f20.wal       the next segment: from index 0xa3f20
//	0000000000009000.front     front marker: the log starts at 0x9000
//	0000000000000001.wal.tmp   a segment being created (a leftover after a crash)
//	LOCK                       held (flock) while the log is open
//
// Segment names are 16 lower-case hex digits of their first index, so they
// sort in index order. Every segment but the last ends exactly where the next
// begins, and holds at least one record; a gap or an overlap is corruption.
// Other files in the directory are ignored (snapshots may live there), but a
// name ending in ".wal" or ".front" that does not parse is corruption.
//
// # Segment file
//
// All integers are big-endian. A segment is a 24-byte header followed by
// record frames, nothing else:
//
//	offset size field
//	0      8    magic "CHORUSWL"
//	8      2    format version, 1
//	10     2    flags, 0 (none defined; nonzero is refused)
//	12     8    first index: the index of the first record, equal to the name's
//	20     4    CRC32C (Castagnoli) of bytes 0..20
//	24     ...  record frames, back to back
//
// # Record frame
//
//	offset size field
//	0      4    CRC32C of the data (bytes 21..21+n) followed by bytes 4..21
//	4      4    n: data length in bytes
//	8      1    type
//	9      8    index
//	17     4    batch position: index minus the index of the first record
//	            of the same write (group-commit batch)
//	21     n    data
//
// The checksum covers every byte of the frame but itself, data first, so
// that appenders checksum their data in parallel and the flusher adds only
// the header once it assigns indexes. A frame of zeros never checks out
// (CRC32C of zeros is not zero). The batch position is what lets recovery
// tell a torn tail from corruption (below).
//
// # Front marker
//
// An empty file named with 16 hex digits of an index and ".front": the log's
// first index is the largest marker's, or 1 if there is none. Its name is its
// content: creating and removing names are atomic, so it cannot be torn.
//
// # Snapshot file
//
// Written by WriteSnapshot, read by ReadSnapshot:
//
//	offset size field
//	0      8    magic "CHORSNAP"
//	8      2    format version, 1
//	10     2    flags, 0
//	12     n    payload
//	12+n   8    n: payload length in bytes
//	20+n   4    CRC32C of bytes 0..20+n
//
// The length and checksum trail the payload because the writer streams it;
// the reader checks both over the whole file before it hands out a byte.
//
// # Group commit
//
// Append copies and checksums its records on the caller's goroutine, queues
// them (bounded by QueueRecordsMax and QueueBytesMax; when the queue is full,
// appends wait their turn first come first served) and waits. Indexes are
// assigned in queue order. One flusher goroutine takes
// every queued append up to BatchBytesMax, encodes them into one buffer, does
// one Write and one Sync, and only after the Sync returned nil makes them
// readable and returns from their Appends. Writes and syncs strictly
// alternate, so at any crash at most one batch, the last, is unsynced: the
// recovery rules below rely on it. Segments roll over between batches: the
// new segment is created under a temporary name, its header written and
// synced, renamed into place and the directory synced before any record in
// it is written, so a file with a segment's name always has a good header.
//
// An error from Write, Sync or SyncDir fails the log: the appends waiting and
// every later call return an error wrapping ErrFailed and the cause. There is
// no retry: after a failed fsync Linux may have marked the unwritten pages
// clean (fsyncgate; Rebello et al., ATC 2020), so only a restart that reads
// the disk back knows what is durable. A full disk (ENOSPC) fails the log in
// the same way: a short write may have left part of a batch in the file, and
// appending after it would bury a bad record under good ones.
//
// # Recovery
//
// Open lists the directory, removes temporary files and obsolete front
// markers, ignores the segments that end below the first index (leftovers of
// a TruncateFront) and removes them, then reads the live segments in index
// order, checking each header and each record: checksum, length, index and
// batch position.
//
// A bad record in the last segment is a torn tail if no later write follows
// it: Open cuts the file at the start of the bad record, durably, logs it and
// reports it in Recovery.TornTail. A later write is proven by a frame further
// on with a good checksum, a plausible index and a batch that began after the
// bad record's index: only the last write can be unsynced, it contains the bad
// record, and so the bad record had been synced. That is corruption of synced
// data, and so is a bad record in any segment but the last: Open fails with
// an error wrapping ErrCorrupt that names the file and the byte offset. It
// never skips a record and never returns one that does not check out. Good
// frames of the torn batch itself after a hole are not such proof: a disk may
// persist the sectors of one write in any order.
//
// What recovery cannot know: a bit flip inside the last synced batch looks
// exactly like a torn write, and no local check can tell the two apart
// (Alagappan et al., "Protocol-Aware Recovery for Consensus-Based Storage",
// FAST 2018, prove it). Recovery.TornTail names the first index cut, so the
// replication layer above treats every index from there on as possibly
// acknowledged and lost, and repairs it from its peers. The proof of a later
// write can also err the other way: a record whose data happens to contain a
// well-formed frame with a plausible index makes a torn tail look like
// corruption, so Open refuses rather than guesses; so does a search for a
// later write that runs out of its work budget (a few passes over the bytes
// left), which only crafted data can exhaust. Everything Open reports is
// durable when it returns (it syncs the last segment and the directory), so
// records a crashed process left in the page cache are not served until
// they are safe.
//
// # Interrupted operations
//
// Each multi-step operation is ordered so that every crash point recovers to
// a consistent log:
//
//   - Roll-over: temp file, header, Sync, Rename, SyncDir. A crash leaves the
//     old log, maybe plus a temporary file that Open removes, or the old log
//     plus an empty new segment.
//   - TruncateFront(i): create the marker for i, SyncDir, then remove the
//     segments that end below i and the old marker, SyncDir. Before the first
//     SyncDir a crash leaves the old log; after it, Open sees the marker and
//     finishes the job: the new log.
//   - TruncateBack(i): remove the segments that start after i, newest first,
//     each followed by SyncDir, then cut the segment holding i and Sync it. A
//     crash leaves a log that still holds all or part of the suffix, never a
//     gap; the caller repeats the call.
//
// # Memory
//
// The log keeps four bytes per record in memory (its offset in its segment),
// one open file per segment, the queue, and one batch buffer. Open reads one
// segment at a time whole, so its peak is the largest segment.
package wal
