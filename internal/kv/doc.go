// Package kv is the deterministic key-value state machine of the chorus
// server: namespaces of ordered keys, transactions, exactly-once client
// sessions and streamed snapshots.
//
// It is a pure value: no goroutines, clock, files or network, and no map
// order reaches its output. Commands come from a replicated log (smr,
// Multi-Paxos) or from a group's total order; every member applies the
// same commands at the same indexes and ends in byte-identical state, which
// Digest shows. See docs/kv.md for the user's view.
//
// # Data model
//
// A Machine holds namespaces (at most NamespacesMax), each created with a
// NamespaceSpec (name, replication mode, params; the mode is opaque here)
// and holding keys in byte order (a B-tree). Every key has a value, a
// Version (1 at creation, +1 per put; a deleted key is gone and starts at 1
// again), a CreateIndex and a ModIndex: the log indexes of the put that
// created it and of its last put, as etcd's revisions.
//
// # Transactions
//
// Every data command is a Txn on one namespace: compares, then the Then ops
// if all hold, else the Else ops. A single put, get, delete or scan is a
// txn of one op and no compares (as in etcd). The whole request is checked
// first (sizes, counts, limits, namespace); a refused request changes
// nothing and still advances AppliedIndex (it was a log entry). The one
// failure that can happen after changes began is a response too large for
// the previous values asked for (PrevKV): an undo log restores the state.
// Ops of the branch see the effects of the earlier ops.
//
// # Sessions
//
// A request with Session.Client != 0 is exactly-once: per client the table
// keeps the last Seq, the index it was applied at and its encoded response.
// Seq equal to the last returns that response without applying; below is
// CodeStaleSession; above applies and records. The client whose last
// command has the smallest index is evicted when SessionsMax is reached. A
// response over SessionResponseBytesMax is kept without its results
// (ResultsDropped). A command that does not decode has no session and
// records nothing. The table is part of the snapshot.
//
// # Threading
//
// A Machine is not safe for concurrent use: Apply, Query, Snapshot and
// Restore are called from one goroutine (smr.StateMachine's contract) or
// under one lock.
//
// # Encodings
//
// Integers are canonical unsigned varints (internal/wire: the shortest
// form, so every value has one encoding) unless a size is given; "bytes"
// and "string" are a uvarint length and that many bytes; u8 is one byte;
// bool is a u8 of 0 or 1. Decoders check every length against a limit and
// against the bytes left before allocating, and refuse trailing bytes, so
// that decode(encode(x)) == x and encode(decode(b)) == b (fuzzed).
//
// Request (a command for Apply, or a query for Query):
//
//	field            size      notes
//	version          u8        1
//	kind             u8        1 create-namespace, 2 delete-namespace,
//	                           3 list-namespaces, 4 describe-namespace, 5 txn
//	session client   uvarint   0: no deduplication
//	session seq      uvarint
//	kind 1:          spec
//	kind 2, 4:       namespace string (at most 64 bytes)
//	kind 3:          nothing
//	kind 5:          namespace string (at most 64 bytes)
//	                 compare count uvarint, compares
//	                 then count uvarint, ops
//	                 else count uvarint, ops
//	                 (the three counts add up to at most TxnOpsMax)
//
//	spec:     name string (<= 64) | mode string (<= 32) |
//	          param count uvarint (<= 32) |
//	          params, strictly increasing by key: { key string (<= 64), value string (<= 1024) }
//	compare:  key bytes (<= KeyBytesMax) | target u8 | result u8 |
//	          value bytes (<= ValueBytesMax) | version uvarint | index uvarint | exists bool
//	op:       type u8 | key bytes (<= KeyBytesMax + 1) | end bytes (<= KeyBytesMax + 1) |
//	          value bytes (<= ValueBytesMax) | limit uvarint (< 2^31) | prevkv bool
//
// (A range bound may be one byte longer than a key, for the page after a key
// of the largest size; validation holds other ops to KeyBytesMax.)
// Targets: 1 value, 2 version, 3 mod index, 4 create index, 5 exists.
// Results: 1 ==, 2 !=, 3 <, 4 >. Op types: 1 put, 2 delete, 3 get, 4 range,
// 5 delete-range.
//
// Response:
//
//	field            size      notes
//	version          u8        1
//	code             u8        0 ok, 1 bad_request, 2 not_found, 3 exists,
//	                           4 too_large, 5 stale_session
//	message          string    at most 1024 bytes
//	index            uvarint
//	succeeded        bool
//	results dropped  bool
//	result count     uvarint
//	results          { kv count uvarint | kvs | more bool | deleted uvarint |
//	                   has prevkv bool | [kv] }
//	namespace count  uvarint
//	namespaces       { spec | keys uvarint | bytes uvarint | create index uvarint }
//
//	kv:       key bytes | value bytes | version uvarint | create index uvarint | mod index uvarint
//
// Snapshot (streamed through a 64 KiB buffer; Restore builds the new state
// beside the old one and swaps it in only after the checksum and every
// invariant held):
//
//	field            size      notes
//	magic            8         "chorusKV"
//	version          u8        1
//	applied index    uvarint
//	namespace count  uvarint   at most NamespacesMax
//	namespaces       in name order, strictly increasing:
//	                 spec | create index uvarint | key count uvarint |
//	                 keys, strictly increasing:
//	                   { key bytes | value bytes | version uvarint |
//	                     create index uvarint | mod index uvarint }
//	session count    uvarint   at most SessionsMax
//	sessions         oldest last command first (strictly increasing index):
//	                 { client uvarint (not 0) | seq uvarint | index uvarint |
//	                   response bytes (at most SessionResponseBytesMax) }
//	crc32c           4         big-endian CRC-32C (Castagnoli) of every byte before it
//
// Nothing may follow the trailer. Restore also checks that versions are at
// least 1, that 0 < namespace create < key create <= key mod <= applied
// index, that session indexes are at most the applied index, and that
// stored responses decode.
package kv
