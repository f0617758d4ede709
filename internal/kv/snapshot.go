package kv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/chorus-project/chorus/internal/wire"
	"github.com/tidwall/btree"
)

// snapshotMagic opens every snapshot; snapshotVersion follows it.
const (
	snapshotMagic   = "chorusKV"
	snapshotVersion = 1
	// snapshotBufferBytes is the buffer of Snapshot and Restore: memory
	// stays bounded by it plus one key-value, whatever the state's size.
	snapshotBufferBytes = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcWriter passes writes through and keeps their CRC-32C.
type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// Snapshot writes the whole state to w in the format drawn in doc.go:
// streamed through a fixed buffer, ending with a CRC-32C of every byte
// before it. It fails only if w does.
func (m *Machine) Snapshot(w io.Writer) error {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, snapshotBufferBytes)
	scratch := wire.NewBuffer(make([]byte, 0, 256))
	emit := func() {
		bw.Write(scratch.Bytes()) // a write error sticks in bw; Flush reports it
		*scratch = *wire.NewBuffer(scratch.Bytes()[:0])
	}
	bw.WriteString(snapshotMagic)
	scratch.Uint8(snapshotVersion)
	scratch.Uvarint(m.applied)
	scratch.Uvarint(uint64(m.namespaces.Len()))
	emit()
	m.namespaces.Scan(func(ns *namespace) bool {
		encodeSpec(scratch, ns.spec)
		scratch.Uvarint(ns.create)
		scratch.Uvarint(uint64(ns.keys.Len()))
		emit()
		ns.keys.Scan(func(it *item) bool {
			scratch.LenBytes(it.key())
			scratch.LenBytes(it.value())
			scratch.Uvarint(it.version)
			scratch.Uvarint(it.create)
			scratch.Uvarint(it.mod)
			emit()
			return true
		})
		return true
	})
	if plant.snapshotNoSessions {
		scratch.Uvarint(0)
		emit()
	} else {
		scratch.Uvarint(uint64(m.sessions.len()))
		emit()
	}
	m.sessions.each(func(s *session) {
		if plant.snapshotNoSessions {
			return
		}
		scratch.Uvarint(s.client)
		scratch.Uvarint(s.seq)
		scratch.Uvarint(s.index)
		scratch.LenBytes(s.resp)
		emit()
	})
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("kv: write snapshot: %w", err)
	}
	var trailer [4]byte
	crc := cw.crc
	trailer[0], trailer[1], trailer[2], trailer[3] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	if _, err := w.Write(trailer[:]); err != nil {
		return fmt.Errorf("kv: write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole state with a snapshot read from r, which must
// end where the snapshot does. It checks the snapshot's CRC, its layout and
// its invariants (sorted keys, indexes at or below the applied index, the
// machine's limits) and changes the state only when all hold; otherwise it
// returns an error wrapping ErrCorruptSnapshot and the state is unchanged.
// A snapshot taken with larger limits than this machine's may be refused.
func (m *Machine) Restore(r io.Reader) error {
	sr := &snapReader{r: bufio.NewReaderSize(r, snapshotBufferBytes)}
	st, err := m.readSnapshot(sr)
	if err == nil {
		err = sr.finish()
	}
	if err != nil {
		if errors.Is(err, ErrCorruptSnapshot) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	m.applied, m.namespaces, m.sessions = st.applied, st.namespaces, st.sessions
	return nil
}

type snapState struct {
	applied    uint64
	namespaces *btree.BTreeG[*namespace]
	sessions   sessionTable
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

func (m *Machine) readSnapshot(sr *snapReader) (snapState, error) {
	st := snapState{namespaces: newNamespaceTree(), sessions: newSessionTable()}
	var magic [len(snapshotMagic)]byte
	sr.full(magic[:])
	version := sr.byte()
	if sr.err != nil {
		return st, sr.err
	}
	if string(magic[:]) != snapshotMagic {
		return st, corrupt("bad magic %q", magic[:])
	}
	if version != snapshotVersion {
		return st, corrupt("version %d, want %d", version, snapshotVersion)
	}
	st.applied = sr.uvarint()
	nsCount := sr.uvarint()
	if sr.err != nil {
		return st, sr.err
	}
	if nsCount > uint64(m.cfg.NamespacesMax) {
		return st, corrupt("%d namespaces, NamespacesMax is %d", nsCount, m.cfg.NamespacesMax)
	}
	var prev *namespace
	for i := range nsCount {
		ns, err := m.readNamespace(sr, st.applied)
		if err != nil {
			return st, fmt.Errorf("namespace %d: %w", i, err)
		}
		if prev != nil && ns.spec.Name <= prev.spec.Name {
			return st, corrupt("namespace %q after %q", ns.spec.Name, prev.spec.Name)
		}
		st.namespaces.Load(ns)
		prev = ns
	}
	if err := m.readSessions(sr, &st); err != nil {
		return st, err
	}
	return st, nil
}

func (m *Machine) readNamespace(sr *snapReader, applied uint64) (*namespace, error) {
	var spec NamespaceSpec
	spec.Name = string(sr.lenBytes(NamespaceNameBytesMax, nil))
	spec.Mode = string(sr.lenBytes(ModeBytesMax, nil))
	nParams := sr.uvarint()
	if sr.err == nil && nParams > ParamsMax {
		return nil, corrupt("%d params, limit %d", nParams, ParamsMax)
	}
	prevParam := ""
	for i := range nParams {
		k := string(sr.lenBytes(ParamKeyBytesMax, nil))
		v := string(sr.lenBytes(ParamValueBytesMax, nil))
		if sr.err != nil {
			return nil, sr.err
		}
		if i > 0 && k <= prevParam {
			return nil, corrupt("params not sorted by key")
		}
		if spec.Params == nil {
			spec.Params = make(map[string]string, nParams)
		}
		spec.Params[k] = v
		prevParam = k
	}
	create := sr.uvarint()
	nKeys := sr.uvarint()
	if sr.err != nil {
		return nil, sr.err
	}
	if err := validateSpec(spec); err != nil {
		return nil, corrupt("%v", err)
	}
	if create == 0 || create > applied {
		return nil, corrupt("namespace %q created at index %d, applied index %d", spec.Name, create, applied)
	}
	ns := newNamespace(spec, create)
	keyBuf := make([]byte, 0, m.cfg.KeyBytesMax)
	var prevKey []byte
	for range nKeys {
		key := sr.lenBytes(m.cfg.KeyBytesMax, keyBuf[:0])
		vlen := sr.uvarint()
		if sr.err != nil {
			return nil, sr.err
		}
		if vlen > uint64(m.cfg.ValueBytesMax) {
			return nil, corrupt("value of %d bytes, ValueBytesMax is %d", vlen, m.cfg.ValueBytesMax)
		}
		if len(key) == 0 || (prevKey != nil && bytes.Compare(key, prevKey) <= 0) {
			return nil, corrupt("namespace %q: keys empty or not in order", spec.Name)
		}
		buf := make([]byte, len(key)+int(vlen))
		copy(buf, key)
		sr.full(buf[len(key):])
		it := &item{buf: buf, keyLen: uint32(len(key))}
		it.version, it.create, it.mod = sr.uvarint(), sr.uvarint(), sr.uvarint()
		if sr.err != nil {
			return nil, sr.err
		}
		if it.version == 0 || it.create <= create || it.mod < it.create || it.mod > applied {
			return nil, corrupt("namespace %q: a key has version %d, create index %d, mod index %d (namespace created at %d, applied %d)",
				spec.Name, it.version, it.create, it.mod, create, applied)
		}
		ns.keys.Load(it)
		ns.bytes += it.size()
		prevKey = it.key()
	}
	return ns, nil
}

func (m *Machine) readSessions(sr *snapReader, st *snapState) error {
	n := sr.uvarint()
	if sr.err != nil {
		return sr.err
	}
	if n > uint64(m.cfg.SessionsMax) {
		return corrupt("%d sessions, SessionsMax is %d", n, m.cfg.SessionsMax)
	}
	var prevIndex uint64
	for range n {
		s := &session{client: sr.uvarint(), seq: sr.uvarint(), index: sr.uvarint()}
		s.resp = sr.lenBytes(m.cfg.SessionResponseBytesMax, nil)
		if sr.err != nil {
			return sr.err
		}
		if s.client == 0 || st.sessions.get(s.client) != nil {
			return corrupt("session of client %d: zero or repeated", s.client)
		}
		if s.index <= prevIndex || s.index > st.applied {
			return corrupt("session of client %d at index %d: not after %d or above the applied index %d",
				s.client, s.index, prevIndex, st.applied)
		}
		if _, err := DecodeResponse(s.resp); err != nil {
			return corrupt("session of client %d: %v", s.client, err)
		}
		if len(s.resp) == 0 {
			s.resp = nil
		}
		st.sessions.byClient[s.client] = st.sessions.lru.PushBack(s)
		prevIndex = s.index
	}
	return nil
}

// snapReader reads a snapshot, keeping the CRC-32C of every byte consumed.
// The first error sticks.
type snapReader struct {
	r   *bufio.Reader
	crc uint32
	err error
}

func (s *snapReader) fail(err error) {
	if s.err == nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = corrupt("truncated: %v", err)
		}
		s.err = err
	}
}

func (s *snapReader) byte() byte {
	if s.err != nil {
		return 0
	}
	var b [1]byte
	s.full(b[:])
	return b[0]
}

func (s *snapReader) full(p []byte) {
	if s.err != nil {
		return
	}
	if _, err := io.ReadFull(s.r, p); err != nil {
		s.fail(err)
		return
	}
	s.crc = crc32.Update(s.crc, castagnoli, p)
}

// uvarint reads a canonical uvarint, as wire.Reader does.
func (s *snapReader) uvarint() uint64 {
	if s.err != nil {
		return 0
	}
	p, err := s.r.Peek(binary.MaxVarintLen64)
	if len(p) == 0 {
		s.fail(err)
		return 0
	}
	v, n := binary.Uvarint(p)
	switch {
	case n == 0:
		s.fail(corrupt("truncated varint"))
		return 0
	case n < 0:
		s.fail(corrupt("varint overflows 64 bits"))
		return 0
	case n != wire.UvarintLen(v):
		s.fail(corrupt("non-canonical varint"))
		return 0
	}
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.r.Discard(n) // Peek returned at least n bytes
	return v
}

// lenBytes reads a length-prefixed byte string of at most max bytes into
// dst (grown as needed) after checking the length.
func (s *snapReader) lenBytes(max int, dst []byte) []byte {
	n := s.uvarint()
	if s.err != nil {
		return nil
	}
	if n > uint64(max) {
		s.fail(corrupt("byte string of %d bytes, limit %d", n, max))
		return nil
	}
	var p []byte
	if uint64(cap(dst)) >= n {
		p = dst[:n]
	} else {
		p = make([]byte, n)
	}
	s.full(p)
	return p
}

// finish reads and checks the CRC trailer, then requires the end of the
// stream.
func (s *snapReader) finish() error {
	want := s.crc
	var t [4]byte
	s.full(t[:])
	if s.err != nil {
		return s.err
	}
	got := uint32(t[0])<<24 | uint32(t[1])<<16 | uint32(t[2])<<8 | uint32(t[3])
	if got != want && !plant.skipChecksum {
		return corrupt("checksum %08x, computed %08x", got, want)
	}
	if _, err := s.r.ReadByte(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("%w: after the trailer: %w", ErrCorruptSnapshot, err)
		}
		return corrupt("bytes after the trailer")
	}
	return nil
}
