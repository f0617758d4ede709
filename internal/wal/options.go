package wal

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/chorus-project/chorus/internal/vfs"
)

// Errors returned by this package, wrapped with detail; test with errors.Is.
var (
	// ErrCorrupt: data that had been synced is damaged (a bad checksum, an
	// impossible length, a record with the wrong index, a gap between
	// segments, a bad snapshot). The message names the file and the byte
	// offset. The log refuses to open rather than skip it: the records must
	// be repaired from a peer.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrFailed: a write, sync or directory sync failed, so the log no
	// longer knows what is durable and refuses all further work. It is
	// wrapped together with the cause. Restart the process and Open again:
	// do not reopen in the same process, since the kernel may already have
	// dropped the pages a failed fsync did not write (fsyncgate).
	ErrFailed = errors.New("wal: failed")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: closed")
	// ErrRecordTooLarge: a record's data is over Options.RecordBytesMax.
	ErrRecordTooLarge = errors.New("wal: record too large")
	// ErrTooLarge: one Append call is over Options.BatchBytesMax,
	// Options.QueueBytesMax or Options.QueueRecordsMax; split it.
	ErrTooLarge = errors.New("wal: append too large")
	// ErrCompacted: the index is below FirstIndex (TruncateFront dropped it).
	ErrCompacted = errors.New("wal: index compacted")
	// ErrOutOfRange: the index is above LastIndex.
	ErrOutOfRange = errors.New("wal: index out of range")
	// ErrInvalid: an argument or option the caller got wrong.
	ErrInvalid = errors.New("wal: invalid argument")
)

// Defaults for Options; each says why.
const (
	// DefaultSegmentBytesMax: a segment is the unit of removal after a
	// snapshot and the largest buffer Open reads at once, so it is small
	// enough to read in one go and large enough that a roll-over (two
	// fsyncs) is rare: one per 64 MiB.
	DefaultSegmentBytesMax = 64 << 20
	// DefaultRecordBytesMax: a record is read whole by Get and by recovery.
	// 1 MiB carries a full batch of client commands (the KV layer refuses
	// larger requests well before that); bigger state belongs in a snapshot.
	DefaultRecordBytesMax = 1 << 20
	// DefaultBatchBytesMax: one write and one fsync per batch. At ~0.4 ms per
	// fsync, 4 MiB batches already spend more time transferring than
	// syncing on a disk of ~1 GB/s, so a bigger batch only adds latency; it
	// must hold a maximal record.
	DefaultBatchBytesMax = 4 << 20
	// DefaultQueueRecordsMax: appends waiting for the flusher. Enough for
	// many batches of small records from a few hundred appenders; an
	// appender past it waits, which is the back-pressure we want.
	DefaultQueueRecordsMax = 16 << 10
	// DefaultQueueBytesMax: bytes of encoded records waiting for the
	// flusher: four batches, so the flusher always has a full batch ready
	// while memory stays bounded.
	DefaultQueueBytesMax = 4 * DefaultBatchBytesMax
)

// Options configures a Log. Zero numeric fields take the defaults above.
type Options struct {
	// FS is the file system the log lives on. Required.
	FS vfs.FS
	// Dir holds the segment files (and a LOCK file); created if missing.
	// Other files in it are left alone, so snapshots may share it.
	Dir string
	// SegmentBytesMax: the log rolls to a new segment file before a batch
	// that would take the current one past this size.
	SegmentBytesMax int64
	// RecordBytesMax: Append refuses a record with more data than this.
	RecordBytesMax int
	// BatchBytesMax: the most encoded bytes one group-commit write carries.
	// One Append call must fit in it.
	BatchBytesMax int
	// QueueRecordsMax and QueueBytesMax bound the appends waiting for the
	// flusher; Append waits (or gives up when its ctx is done) while the
	// queue is full.
	QueueRecordsMax int
	QueueBytesMax   int
	// Logger receives recovery reports and failures; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns o with zero fields defaulted, or an error wrapping
// ErrInvalid for values that cannot work together.
func (o Options) withDefaults() (Options, error) {
	if o.FS == nil {
		return o, fmt.Errorf("%w: Options.FS is nil", ErrInvalid)
	}
	if o.Dir == "" {
		return o, fmt.Errorf("%w: Options.Dir is empty", ErrInvalid)
	}
	if o.SegmentBytesMax == 0 {
		o.SegmentBytesMax = DefaultSegmentBytesMax
	}
	if o.RecordBytesMax == 0 {
		o.RecordBytesMax = min(DefaultRecordBytesMax, int(o.SegmentBytesMax)/2)
	}
	if o.BatchBytesMax == 0 {
		o.BatchBytesMax = min(DefaultBatchBytesMax, int(o.SegmentBytesMax-segmentHeaderBytes))
	}
	if o.QueueRecordsMax == 0 {
		o.QueueRecordsMax = DefaultQueueRecordsMax
	}
	if o.QueueBytesMax == 0 {
		o.QueueBytesMax = max(DefaultQueueBytesMax, o.BatchBytesMax)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.SegmentBytesMax < segmentHeaderBytes+frameHeaderBytes || o.SegmentBytesMax > segmentBytesLimit:
		return o, fmt.Errorf("%w: SegmentBytesMax %d outside [%d, %d]",
			ErrInvalid, o.SegmentBytesMax, segmentHeaderBytes+frameHeaderBytes, segmentBytesLimit)
	case o.BatchBytesMax <= 0 || int64(o.BatchBytesMax) > o.SegmentBytesMax-segmentHeaderBytes:
		return o, fmt.Errorf("%w: BatchBytesMax %d must be positive and fit in a segment after its %d-byte header (SegmentBytesMax %d)",
			ErrInvalid, o.BatchBytesMax, segmentHeaderBytes, o.SegmentBytesMax)
	case o.RecordBytesMax < 0 || frameBytes(o.RecordBytesMax) > o.BatchBytesMax:
		return o, fmt.Errorf("%w: RecordBytesMax %d plus its %d-byte frame header must fit in BatchBytesMax %d",
			ErrInvalid, o.RecordBytesMax, frameHeaderBytes, o.BatchBytesMax)
	case o.QueueRecordsMax <= 0:
		return o, fmt.Errorf("%w: QueueRecordsMax %d must be positive", ErrInvalid, o.QueueRecordsMax)
	case o.QueueBytesMax < o.BatchBytesMax:
		return o, fmt.Errorf("%w: QueueBytesMax %d must hold a full batch (BatchBytesMax %d)",
			ErrInvalid, o.QueueBytesMax, o.BatchBytesMax)
	}
	return o, nil
}
