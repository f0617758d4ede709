// Package smr is a durable replicated state machine: a Multi-Paxos log
// (internal/paxos) on every member's write-ahead log (internal/wal), members
// talking over TCP (internal/transport), driving a deterministic StateMachine
// that the user supplies.
//
// A Member is one process's share of a cluster. Start it with a Config,
// Propose commands to the leader (Propose returns the result of Apply on
// this member once the command is applied), Read with a linearizable query
// (ReadIndex: the leader confirms with a quorum that it still leads, then
// the query runs once this member applied up to the leader's commit index),
// change the membership one member at a time with AddMember and RemoveMember.
//
// # Guarantees
//
// Propose and Read are linearizable. An acknowledged Propose is never lost
// while a majority (a phase-2 quorum, with flexible quorums) of the members'
// disks survive: every entry is fsynced on a quorum before it commits. A
// command retried with the same RequestID is applied at most once while its
// client's session is in the session table (see Deduplication).
//
// # Deduplication
//
// Every command carries a RequestID (Client, Seq). A client numbers its
// requests 1, 2, 3, ... and has at most one outstanding at a time. The
// applier keeps, per client, the last Seq applied and its result:
//
//   - Seq above the last: applied, and the result is recorded;
//   - Seq equal to the last: not applied again; the recorded result is
//     returned (a retry after a timeout, a leader change or ErrProposalLost);
//   - Seq below the last: not applied; the caller gets ErrStaleRequest.
//
// The table holds at most Config.SessionsMax clients. When it is full, the
// client whose last command is oldest in the log is forgotten, so a retry is
// deduplicated only while its client is among the SessionsMax most recently
// active. The table is part of every snapshot and is rebuilt the same way on
// every member (eviction depends on the log only), so all members answer a
// retry the same way.
//
// # Log entry format
//
// Each EntryNormal slot of the log holds one smr command (integers are
// canonical uvarints, see internal/wire; "bytes" is a uvarint length then
// that many bytes):
//
//	field        size     notes
//	kind         1        1 user command, 2 address of a member
//	kind 1:      client uvarint | seq uvarint | command bytes
//	kind 2:      member id uvarint | address bytes (at most 255)
//
// An address command is written by AddMember before the membership change
// itself, so that every member (and any future leader) knows where the new
// member listens before it is in the configuration.
//
// # Snapshot format
//
// What the shell stores and ships as a snapshot's application bytes:
//
//	field              size     notes
//	version            1        1
//	session count      uvarint  at most SessionsMax
//	sessions           count x { client uvarint, seq uvarint,
//	                   result bytes }, least recently used first
//	address count      uvarint
//	addresses          count x { member id uvarint, address bytes }
//	user snapshot      the rest: what StateMachine.Snapshot wrote
//
// # What is not done
//
// Proposals and reads are not forwarded to the leader: a follower answers
// with a *NotLeaderError naming the leader and its address. Leases are not
// implemented (every Read pays a quorum round). Snapshots are taken on the
// member's goroutine and held in memory whole. See docs/smr.md.
package smr
