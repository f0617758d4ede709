// Package group is virtual synchrony for Go programs (DESIGN.md section
// 3): process groups whose members see the same sequence of views and the
// same messages in the same order, with state transfer to joiners and a
// rank in every view to split work by.
//
// A process opens one Host (its TCP endpoint and member ID) and Joins any
// number of groups over it; every envelope carries its group's ID, so the
// groups share connections. The first process of a group Joins with
// Bootstrap; every other process, and any process that restarts, Joins
// through Contacts and receives the application state from a member
// (Handler.Snapshot there, Handler.Restore here) before it delivers
// anything.
//
// # Guarantees
//
// These are the vsync core's (internal/vsync, whose package comment
// states them in full and says what is not verified):
//
//   - Views: every member installs the same sequence of views; a view
//     needs a majority of the previous one, so a minority partition never
//     installs a view (primary partition). A crashed member is excluded
//     after the failure detector's timeout, with the suspicion verified
//     through other members first.
//   - Virtual synchrony: members that pass together from one view to the
//     next delivered the same set of messages in the first, and a message
//     is delivered in the view it was sent in.
//   - Order, per message: FIFO (per sender), Causal, Total (one order at
//     every member, a sequencer at rank 0), Safe (Total, delivered once
//     every member holds it).
//   - State transfer: a joiner's Restore sees the state of a member as of
//     a point in the order, and then exactly the messages after it. A
//     stream that ends early or fails its checksum is refused; the joiner
//     retries as a new incarnation (JoinAttemptsMax) and never delivers on
//     top of a partial state.
//   - Exclusion while alive: a member the group excluded (a false
//     suspicion, a partition) learns it and rejoins as a new incarnation,
//     with state transfer; its Handler sees a Restore.
//
// The model is crash-stop: nothing is on disk, and a restarted process is
// a new incarnation (Config.Incarnation, or the wall clock). A group needs
// a majority of each view alive to change views: a group of two that loses
// one member is stuck until it comes back (as in any primary-partition
// protocol); grow to three before relying on crash tolerance.
//
// # Queries and splitting work by rank
//
// Query multicasts a request in total order and gathers the replies of
// Handler.Deliver: every member evaluates it at the same point of the
// order, in the same view, and knows its rank and the view's size from
// the ViewChange before it. A query can therefore be split by rank (each
// member evaluates its share) and the parts merged by the querier; see
// Example_splitByRank. Replies travel point to point, best effort: a
// reply lost on the way is waited for until the caller's ctx ends.
//
// # Threading
//
// See Handler. Send, Query, Leave, View, Err and Close are safe for
// concurrent use; the blocking ones take a ctx.
//
// # Addresses
//
// Views name members by ID. Members learn each other's addresses from
// Contacts and from address records that every member sends to its view
// every AddrGossipTicks and whenever it learns a new one; a joiner sends
// its own to its contacts until it is in a view. (The member that decides
// a view must reach the joiners it adds.)
//
// # Wire format
//
// Protocol messages travel as vsync.WireKind envelopes (vsync's format).
// The group layer adds two kinds, both with the group ID as the channel:
//
//	kind 0x0240 addrs:  count uvarint (at most 256), then per record
//	                    member id uvarint, address bytes (at most 255)
//	kind 0x0241 reply:  view uvarint, seq uvarint (the query's sender seq
//	                    in that view), reply bytes
//
// Every multicast payload starts with one byte: 0 a message, 1 a query, 2
// several messages packed (Sends of one order that waited together in the
// send queue, at most Config.PackBytesMax in all): a uvarint count (at
// least 2), then per message a uvarint length and its bytes. Packed
// messages share one sequence number and are delivered one after the
// other, numbered by Message.Part.
// The state-transfer stream ends with a 12-byte trailer (length, CRC-32C);
// see transfer.go.
package group
