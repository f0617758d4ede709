package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/chorus-project/chorus/internal/paxos"
	"github.com/chorus-project/chorus/internal/wire"
)

// ErrBadCommand: an applied entry or a snapshot that the simulated key-value
// store cannot decode. It can only come from a bug (the simulator wrote every
// command itself), so the run reports it as a failure.
var ErrBadCommand = errors.New("sim: undecodable command or snapshot")

// Limits of the simulated key-value store's formats.
const (
	keyBytesMax   = 64
	valueBytesMax = 64
	// sessionsMax bounds the client table in a snapshot; a run has a handful
	// of clients.
	sessionsMax = 64
	// pairsMax bounds the key-value pairs in a snapshot.
	pairsMax = 1024
)

// command is a client's put, as proposed into the log:
//
//	offset size field
//	0      1    format version, 1
//	1      4    client id (big-endian)
//	5      8    client sequence number of the put (big-endian)
//	13     1+k  key: uvarint length, then bytes (at most keyBytesMax)
//	...    1+v  value: uvarint length, then bytes (at most valueBytesMax)
//
// (client, seq) is unique per put and lets the store drop a put that a
// duplicated request made the leader propose twice, the way a real
// service's client sessions do (Raft thesis section 6.3).
type command struct {
	client uint32
	seq    uint64
	key    string
	value  string
}

func (c command) encode() []byte {
	w := wire.NewBuffer(make([]byte, 0, 32+len(c.key)+len(c.value)))
	w.Uint8(1)
	w.Uint32(c.client)
	w.Uint64(c.seq)
	w.String(c.key)
	w.String(c.value)
	return w.Bytes()
}

func decodeCommand(p []byte) (command, error) {
	r := wire.NewReader(p)
	if v := r.Uint8(); r.Err() == nil && v != 1 {
		return command{}, fmt.Errorf("%w: command format version %d", ErrBadCommand, v)
	}
	c := command{client: r.Uint32(), seq: r.Uint64(), key: r.String(keyBytesMax), value: r.String(valueBytesMax)}
	if err := r.Done(); err != nil {
		return command{}, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	return c, nil
}

// kvStore is the deterministic state machine every member runs: string keys
// to string values, plus the highest put sequence applied per client.
type kvStore struct {
	data     map[string]string
	sessions map[uint32]uint64
	applied  uint64
	// ballot is the ballot of the entry at applied (or of the snapshot),
	// which the snapshot metadata names.
	ballot paxos.Ballot
}

func newKV() *kvStore {
	return &kvStore{data: map[string]string{}, sessions: map[uint32]uint64{}}
}

// apply executes one committed entry. It returns the put the entry holds
// (nil for no-ops and config entries) and whether it took effect: a put
// whose client already has this or a later put applied is a duplicate (the
// client re-sent it, or the network duplicated its request) and changes
// nothing.
func (s *kvStore) apply(e paxos.Entry) (c *command, took bool, err error) {
	s.applied, s.ballot = e.Slot, e.Ballot
	if e.Type != paxos.EntryNormal {
		return nil, false, nil
	}
	cmd, err := decodeCommand(e.Data)
	if err != nil {
		return nil, false, fmt.Errorf("slot %d: %w", e.Slot, err)
	}
	if cmd.seq <= s.sessions[cmd.client] {
		return &cmd, false, nil
	}
	s.sessions[cmd.client] = cmd.seq
	s.data[cmd.key] = cmd.value
	return &cmd, true, nil
}

// done reports whether the client's put seq has taken effect and is the
// client's latest: it can be acknowledged.
func (s *kvStore) done(client uint32, seq uint64) bool { return s.sessions[client] == seq }

// snapshot encodes the state:
//
//	offset size field
//	0      1    format version, 1
//	1      ...  pairs: uvarint count, then per pair key and value (uvarint
//	            length + bytes each), in key order
//	...    ...  sessions: uvarint count, then per client id (4 bytes) and
//	            seq (8 bytes), in id order
//
// The applied slot and ballot travel in the paxos snapshot metadata.
func (s *kvStore) snapshot() []byte {
	w := wire.NewBuffer(nil)
	w.Uint8(1)
	keys := sortedKeys(s.data)
	w.Uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.String(k)
		w.String(s.data[k])
	}
	ids := sortedKeys(s.sessions)
	w.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		w.Uint32(id)
		w.Uint64(s.sessions[id])
	}
	return w.Bytes()
}

func restoreKV(p []byte, meta paxos.SnapshotMeta) (*kvStore, error) {
	s := newKV()
	s.applied, s.ballot = meta.Slot, meta.Ballot
	if p == nil {
		return s, nil
	}
	r := wire.NewReader(p)
	if v := r.Uint8(); r.Err() == nil && v != 1 {
		return nil, fmt.Errorf("%w: snapshot format version %d", ErrBadCommand, v)
	}
	for n := r.Count(pairsMax, 2); n > 0 && r.Err() == nil; n-- {
		k := r.String(keyBytesMax)
		s.data[k] = r.String(valueBytesMax)
	}
	for n := r.Count(sessionsMax, 12); n > 0 && r.Err() == nil; n-- {
		id := r.Uint32()
		s.sessions[id] = r.Uint64()
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: snapshot at slot %d: %w", ErrBadCommand, meta.Slot, err)
	}
	return s, nil
}

// stateHash is an FNV-64 hash of the whole state (pairs and sessions in
// order), equal on two members exactly when their states are.
func (s *kvStore) stateHash() uint64 {
	h := fnv.New64a()
	h.Write(s.snapshot())
	return h.Sum64()
}

func sortedKeys[K string | uint32, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
