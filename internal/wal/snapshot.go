package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"path/filepath"
	"strings"

	"github.com/chorus-project/chorus/internal/vfs"
)

const (
	snapshotMagic   = "CHORSNAP"
	snapshotVersion = 1
	// snapshotHeaderBytes: magic, version, flags.
	snapshotHeaderBytes = 12
	// snapshotTrailerBytes: payload length, CRC.
	snapshotTrailerBytes = 12
	// snapshotTempSuffix marks a snapshot being written; see
	// RemoveSnapshotTemps.
	snapshotTempSuffix = ".snaptmp"
	// snapshotBufferBytes: the write and read buffer, so a caller that
	// writes small pieces costs few system calls.
	snapshotBufferBytes = 64 << 10
)

// WriteSnapshot writes a snapshot file name in dir, durably and atomically:
// write streams the payload; it goes to a temporary file that is synced,
// renamed to name and whose directory is synced, so after a crash name holds
// either the complete new snapshot or whatever it held before. The file
// carries a header and a trailer with the payload's length and CRC32C (see
// the package comment). If write fails, the temporary file is removed and
// its error returned.
func WriteSnapshot(fs vfs.FS, dir, name string, write func(io.Writer) error) error {
	if name == "" || strings.ContainsRune(name, '/') || strings.HasSuffix(name, snapshotTempSuffix) {
		return fmt.Errorf("%w: snapshot name %q", ErrInvalid, name)
	}
	path := filepath.Join(dir, name)
	tmp := path + snapshotTempSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("wal: create snapshot %s: %w", tmp, err)
	}
	err = writeSnapshotFile(f, write)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		// Best effort: the temporary file holds nothing anyone needs, and
		// RemoveSnapshotTemps catches what this misses.
		_ = fs.Remove(tmp)
		return fmt.Errorf("wal: write snapshot %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("wal: rename snapshot %s: %w", tmp, err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("wal: sync directory %s: %w", dir, err)
	}
	return nil
}

// snapshotWriter counts and checksums the payload on its way to the file.
type snapshotWriter struct {
	w     *bufio.Writer
	crc   hash.Hash32
	bytes uint64
}

func (s *snapshotWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.crc.Write(p[:n])
	s.bytes += uint64(n)
	return n, err
}

func writeSnapshotFile(f io.Writer, write func(io.Writer) error) error {
	sw := &snapshotWriter{w: bufio.NewWriterSize(f, snapshotBufferBytes), crc: crc32.New(castagnoli)}
	var header [snapshotHeaderBytes]byte
	copy(header[:], snapshotMagic)
	binary.BigEndian.PutUint16(header[8:], snapshotVersion)
	sw.crc.Write(header[:])
	if _, err := sw.w.Write(header[:]); err != nil {
		return err
	}
	if err := write(sw); err != nil {
		return err
	}
	var trailer [snapshotTrailerBytes]byte
	binary.BigEndian.PutUint64(trailer[:], sw.bytes)
	sw.crc.Write(trailer[:8])
	binary.BigEndian.PutUint32(trailer[8:], sw.crc.Sum32())
	if _, err := sw.w.Write(trailer[:]); err != nil {
		return err
	}
	return sw.w.Flush()
}

// ReadSnapshot verifies the snapshot file name in dir and then calls read
// with its payload. The checksum is checked over the whole file before read
// sees a byte, so read never consumes corrupt data; a damaged file fails
// with an error wrapping ErrCorrupt, a missing one with one wrapping
// fs.ErrNotExist. read need not consume the whole payload.
func ReadSnapshot(fs vfs.FS, dir, name string, read func(io.Reader) error) error {
	path := filepath.Join(dir, name)
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("wal: open snapshot %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("wal: snapshot %s: %w", path, err)
	}
	payload, err := checkSnapshot(f, size)
	if err != nil {
		return fmt.Errorf("wal: snapshot %s: %w", path, err)
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, snapshotHeaderBytes, payload), snapshotBufferBytes)
	return read(r)
}

// checkSnapshot verifies the header, trailer and checksum of a snapshot file
// of size bytes and returns the payload's length.
func checkSnapshot(f io.ReaderAt, size int64) (int64, error) {
	if size < snapshotHeaderBytes+snapshotTrailerBytes {
		return 0, fmt.Errorf("%w: %d bytes, shorter than header and trailer", ErrCorrupt, size)
	}
	var header [snapshotHeaderBytes]byte
	var trailer [snapshotTrailerBytes]byte
	if _, err := f.ReadAt(header[:], 0); err != nil {
		return 0, fmt.Errorf("%w: read header: %w", ErrCorrupt, err)
	}
	if _, err := f.ReadAt(trailer[:], size-snapshotTrailerBytes); err != nil {
		return 0, fmt.Errorf("%w: read trailer: %w", ErrCorrupt, err)
	}
	payload := size - snapshotHeaderBytes - snapshotTrailerBytes
	if got := binary.BigEndian.Uint64(trailer[:]); got != uint64(payload) {
		return 0, fmt.Errorf("%w: trailer says %d payload bytes, the file holds %d", ErrCorrupt, got, payload)
	}
	crc := crc32.New(castagnoli)
	if _, err := io.Copy(crc, io.NewSectionReader(f, 0, size-4)); err != nil {
		return 0, fmt.Errorf("%w: read: %w", ErrCorrupt, err)
	}
	if got, want := binary.BigEndian.Uint32(trailer[8:]), crc.Sum32(); got != want {
		return 0, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	// The checksum matched, so these are what we wrote, or another format.
	if string(header[:8]) != snapshotMagic {
		return 0, fmt.Errorf("%w: magic %q, want %q", ErrCorrupt, header[:8], snapshotMagic)
	}
	if v := binary.BigEndian.Uint16(header[8:]); v != snapshotVersion {
		return 0, fmt.Errorf("%w: format version %d, this code reads %d", ErrCorrupt, v, snapshotVersion)
	}
	if fl := binary.BigEndian.Uint16(header[10:]); fl != 0 {
		return 0, fmt.Errorf("%w: unknown flags %04x", ErrCorrupt, fl)
	}
	return payload, nil
}

// RemoveSnapshotTemps removes the temporary files that WriteSnapshot calls
// interrupted by a crash left in dir, and returns their names. Call it at
// start-up, before any WriteSnapshot in dir.
func RemoveSnapshotTemps(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var removed []string
	for _, name := range names {
		if !strings.HasSuffix(name, snapshotTempSuffix) {
			continue
		}
		if err := fs.Remove(filepath.Join(dir, name)); err != nil {
			return removed, fmt.Errorf("wal: remove %s: %w", filepath.Join(dir, name), err)
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		if err := fs.SyncDir(dir); err != nil {
			return removed, fmt.Errorf("wal: sync directory %s: %w", dir, err)
		}
	}
	return removed, nil
}
