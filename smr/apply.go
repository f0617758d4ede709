package smr

import (
	"bufio"
	"bytes"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/chorus-project/chorus/internal/node"
	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// Kinds of smr command in an EntryNormal slot (see the package comment).
const (
	cmdUser    uint8 = 1
	cmdAddress uint8 = 2

	snapshotVersion uint8 = 1
)

// errCorruptCommand: a committed entry that is not an smr command. Every
// member sees the same entry, so every member skips it the same way.
var errCorruptCommand = errors.New("smr: corrupt command in the log")

// RequestID identifies a command for deduplication: Client names the
// client (random, so clients need not coordinate) and Seq numbers its
// requests from 1, one outstanding at a time.
type RequestID struct {
	Client uint64
	Seq    uint64
}

func encodeUserCommand(id RequestID, cmd []byte) []byte {
	w := wire.NewBuffer(make([]byte, 0, 1+20+len(cmd)))
	w.Uint8(cmdUser)
	w.Uvarint(id.Client)
	w.Uvarint(id.Seq)
	w.LenBytes(cmd)
	return w.Bytes()
}

func encodeAddressCommand(id MemberID, addr string) []byte {
	w := wire.NewBuffer(nil)
	w.Uint8(cmdAddress)
	w.Uvarint(uint64(id))
	w.String(addr)
	return w.Bytes()
}

// outcome is what a waiting proposal gets.
type outcome struct {
	result []byte
	err    error
}

// waiter is a proposal of this member, waiting for its slot to be applied.
type waiter struct {
	typ  paxos.EntryType
	data []byte // EntryNormal: the entry it proposed
	cc   paxos.ConfChange
	ch   chan outcome // buffered 1
}

// matches reports whether the entry applied at the waiter's slot is the one
// it proposed.
func (w *waiter) matches(e paxos.Entry) bool {
	if e.Type != w.typ {
		return false
	}
	if e.Type == paxos.EntryNormal {
		return bytes.Equal(e.Data, w.data)
	}
	m, err := paxos.DecodeMembers(e.Data)
	if err != nil {
		return false
	}
	return m.Contains(w.cc.ID) == (w.cc.Op == paxos.AddMember)
}

// session is a client's last applied request.
type session struct {
	client uint64
	seq    uint64
	result []byte
}

// applier is the member's node.ShellApp: it decodes smr commands,
// deduplicates them, applies them to the user's StateMachine, keeps the
// address book and answers this member's waiting proposals.
//
// The shell calls Apply, Restore and Snapshot on its goroutine; mu guards
// what other goroutines also touch (waiters, the address book, the shell).
type applier struct {
	sm          StateMachine
	sessionsMax int
	self        peer.ID
	// plantNoDedup is a planted bug for this package's tests: every
	// command is applied, retries included. It shows that the exactly-once
	// checks of the tests catch a missing deduplication.
	plantNoDedup bool

	// Touched only on the shell's goroutine.
	sessions map[uint64]*list.Element // of *session
	lru      list.List                // least recently applied first

	mu      sync.Mutex
	waiters map[uint64]*waiter // by slot
	applied uint64
	book    map[MemberID]string
	config  peer.Set // the membership of the last applied config entry or snapshot
	shell   *node.Shell
}

func newApplier(sm StateMachine, sessionsMax int, self peer.ID, members []Peer, config peer.Set) *applier {
	a := &applier{
		sm: sm, sessionsMax: sessionsMax, self: self,
		sessions: make(map[uint64]*list.Element),
		waiters:  make(map[uint64]*waiter),
		book:     make(map[MemberID]string),
		config:   config,
	}
	for _, p := range members {
		a.book[p.ID] = p.Addr
	}
	return a
}

// setShell wires the applier to the running shell and hands it the address
// book as restored from the local snapshot.
func (a *applier) setShell(s *node.Shell) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.shell = s
	for id, addr := range a.book {
		s.SetPeer(peer.ID(id), addr)
	}
}

func (a *applier) address(id MemberID) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.book[id]
}

// wait registers w for slot. It is called on the shell's goroutine right
// after the proposal was appended at slot, above the commit index, so the
// entry at slot is applied after this call.
func (a *applier) wait(slot uint64, w *waiter) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if slot <= a.applied {
		w.ch <- outcome{err: fmt.Errorf("%w: slot %d already applied", ErrProposalLost, slot)}
		return
	}
	if old, ok := a.waiters[slot]; ok {
		// A proposal of an earlier leadership of ours at the same slot:
		// the log now says it is not there.
		old.ch <- outcome{err: fmt.Errorf("%w: slot %d reused", ErrProposalLost, slot)}
	}
	a.waiters[slot] = w
}

// forget drops the waiter of slot if it is w (its caller gave up).
func (a *applier) forget(slot uint64, w *waiter) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.waiters[slot] == w {
		delete(a.waiters, slot)
	}
}

// Apply implements node.Applier.
func (a *applier) Apply(e paxos.Entry) {
	var out outcome
	switch e.Type {
	case paxos.EntryNormal:
		out = a.applyCommand(e.Data)
	case paxos.EntryConfig:
		a.applyConfig(e.Data)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied = e.Slot
	w, ok := a.waiters[e.Slot]
	if !ok {
		return
	}
	delete(a.waiters, e.Slot)
	if !w.matches(e) {
		out = outcome{err: fmt.Errorf("%w: slot %d holds another entry", ErrProposalLost, e.Slot)}
	}
	w.ch <- out
}

func (a *applier) applyCommand(p []byte) outcome {
	r := wire.NewReader(p)
	switch kind := r.Uint8(); kind {
	case cmdUser:
		id := RequestID{Client: r.Uvarint(), Seq: r.Uvarint()}
		cmd := r.LenBytes(len(p))
		if err := r.Done(); err != nil {
			return outcome{err: fmt.Errorf("%w: %w", errCorruptCommand, err)}
		}
		return a.applyUser(id, cmd)
	case cmdAddress:
		id := MemberID(r.Uvarint())
		addr := r.String(addrBytesMax)
		if err := r.Done(); err != nil || id == 0 {
			return outcome{err: fmt.Errorf("%w: address command: %v", errCorruptCommand, err)}
		}
		a.mu.Lock()
		a.book[id] = addr
		if a.shell != nil {
			a.shell.SetPeer(peer.ID(id), addr)
		}
		a.mu.Unlock()
		return outcome{}
	default:
		return outcome{err: fmt.Errorf("%w: kind %d", errCorruptCommand, kind)}
	}
}

// applyUser applies a user command once per RequestID.
func (a *applier) applyUser(id RequestID, cmd []byte) outcome {
	if a.plantNoDedup {
		return outcome{result: a.sm.Apply(cmd)}
	}
	if el, ok := a.sessions[id.Client]; ok {
		s := el.Value.(*session)
		switch {
		case id.Seq == s.seq:
			return outcome{result: s.result}
		case id.Seq < s.seq:
			return outcome{err: fmt.Errorf("%w: client %x seq %d, last applied %d", ErrStaleRequest, id.Client, id.Seq, s.seq)}
		}
		s.seq, s.result = id.Seq, a.sm.Apply(cmd)
		a.lru.MoveToBack(el)
		return outcome{result: s.result}
	}
	s := &session{client: id.Client, seq: id.Seq, result: a.sm.Apply(cmd)}
	a.sessions[id.Client] = a.lru.PushBack(s)
	for a.lru.Len() > a.sessionsMax {
		old := a.lru.Remove(a.lru.Front()).(*session)
		delete(a.sessions, old.client)
	}
	return outcome{result: s.result}
}

// applyConfig updates the transport's peers to a committed membership: a
// member that left is dropped, one that arrived is (re)added from the
// address book. Only the difference with the previous configuration counts:
// the book also holds members whose AddMember is still on its way (address
// committed, membership change not yet), and they must stay reachable.
func (a *applier) applyConfig(data []byte) {
	m, err := paxos.DecodeMembers(data)
	if err != nil {
		return // the core refuses such entries; nothing to do here
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shell != nil {
		for id := range a.config.All() {
			if !m.Contains(id) && id != a.self {
				a.shell.RemovePeer(id)
			}
		}
		for id := range m.All() {
			if addr, ok := a.book[MemberID(id)]; ok && !a.config.Contains(id) {
				a.shell.SetPeer(id, addr)
			}
		}
	}
	a.config = m
}

// Snapshot implements node.ShellApp (format in the package comment).
func (a *applier) Snapshot(w io.Writer) error {
	b := wire.NewBuffer(nil)
	b.Uint8(snapshotVersion)
	b.Uvarint(uint64(a.lru.Len()))
	for el := a.lru.Front(); el != nil; el = el.Next() {
		s := el.Value.(*session)
		b.Uvarint(s.client)
		b.Uvarint(s.seq)
		b.LenBytes(s.result)
	}
	a.mu.Lock()
	ids := make([]MemberID, 0, len(a.book))
	for id := range a.book {
		ids = append(ids, id)
	}
	book := make(map[MemberID]string, len(a.book))
	for id, addr := range a.book {
		book[id] = addr
	}
	a.mu.Unlock()
	slices.Sort(ids)
	b.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		b.Uvarint(uint64(id))
		b.String(book[id])
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	return a.sm.Snapshot(w)
}

// snapshotResultBytesMax bounds one session's result when reading a
// snapshot (the file is checksummed; this only bounds a damaged length).
const snapshotResultBytesMax = 1 << 30

// snapReader reads the smr header of a snapshot from a stream.
type snapReader struct {
	r   *bufio.Reader
	err error
}

func (sr *snapReader) uvarint() uint64 {
	if sr.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(sr.r)
	sr.err = err
	return v
}

func (sr *snapReader) bytes(limit uint64) []byte {
	n := sr.uvarint()
	if sr.err != nil {
		return nil
	}
	if n > limit {
		sr.err = fmt.Errorf("a field of %d bytes, limit %d", n, limit)
		return nil
	}
	var b bytes.Buffer
	if _, err := io.CopyN(&b, sr.r, int64(n)); err != nil {
		sr.err = err
	}
	return b.Bytes()
}

// Restore implements node.Applier: it reads the smr header (sessions,
// address book) and streams the rest to the state machine.
func (a *applier) Restore(meta paxos.SnapshotMeta, in io.Reader) error {
	sr := &snapReader{r: bufio.NewReaderSize(in, 64<<10)}
	v, err := sr.r.ReadByte()
	if err != nil {
		return fmt.Errorf("smr: snapshot at slot %d: %w", meta.Slot, err)
	}
	if v != snapshotVersion {
		return fmt.Errorf("smr: snapshot format version %d unknown", v)
	}
	n := sr.uvarint()
	if n > sessionsLimit {
		return fmt.Errorf("smr: snapshot at slot %d: %d sessions, limit %d", meta.Slot, n, sessionsLimit)
	}
	sessions := make([]*session, 0, min(n, 4096))
	for range n {
		s := &session{client: sr.uvarint(), seq: sr.uvarint()}
		s.result = sr.bytes(snapshotResultBytesMax)
		if sr.err != nil {
			break
		}
		sessions = append(sessions, s)
	}
	seen := make(map[uint64]bool, len(sessions))
	for _, s := range sessions {
		if seen[s.client] {
			return fmt.Errorf("smr: snapshot at slot %d lists client %x twice", meta.Slot, s.client)
		}
		seen[s.client] = true
	}
	nb := sr.uvarint()
	if nb > uint64(paxos.DefaultLimits.MembersMax)*16 {
		return fmt.Errorf("smr: snapshot at slot %d: %d addresses", meta.Slot, nb)
	}
	book := make(map[MemberID]string, nb)
	for range nb {
		id := MemberID(sr.uvarint())
		book[id] = string(sr.bytes(addrBytesMax))
	}
	if sr.err != nil {
		return fmt.Errorf("smr: snapshot at slot %d: %w", meta.Slot, sr.err)
	}
	if err := a.sm.Restore(sr.r); err != nil {
		return fmt.Errorf("smr: state machine restore at slot %d: %w", meta.Slot, err)
	}
	clear(a.sessions)
	a.lru.Init()
	for _, s := range sessions {
		a.sessions[s.client] = a.lru.PushBack(s)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, addr := range book {
		a.book[id] = addr
		if a.shell != nil {
			a.shell.SetPeer(peer.ID(id), addr)
		}
	}
	a.applied = max(a.applied, meta.Slot)
	if meta.Members.Len() > 0 {
		a.config = meta.Members
	}
	for slot, w := range a.waiters {
		if slot <= meta.Slot {
			w.ch <- outcome{err: fmt.Errorf("%w: slot %d covered by a snapshot", ErrProposalLost, slot)}
			delete(a.waiters, slot)
		}
	}
	return nil
}
