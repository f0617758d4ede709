// Package groupbench measures the group package the way issue 4 asks and
// the way bench/jgroups measures JGroups: three member processes on
// 127.0.0.1, member 1 bootstraps and the others join; for each order, size
// and sender pattern ("one": rank 0 sends; "all": every member sends) the
// senders call Send as fast as it returns for a warm-up and then the
// measured window, and every member counts its deliveries.
//
// Figures per case:
//
//   - msgs/s: deliveries in the window at each member divided by the
//     window's length, the minimum over members (as the JGroups side);
//     MB/s is that times the message size.
//   - own latency (p50_ms, p99_ms): from Send to the sender's own delivery
//     of that message, every message delivered in the window, merged over
//     the senders; the JGroups side's definition, and the one the
//     comparison uses.
//   - all latency (p50_all_ms, p99_all_ms): from Send to delivery at every
//     member, the maximum over members per message, for every
//     sampleStride-th message of each sender sent in the window (the same
//     messages at every member). Members are processes on one machine, so
//     the send and delivery times are both wall-clock UnixNano readings of
//     one clock (monotonic readings do not cross processes).
//
// The window is wall-clock time: the coordinator gives every member the
// same start time (a little in the future), warm-up and duration. After
// the window each sender multicasts a Done marker in the case's order; a
// member that delivered every sender's Done has delivered all of the
// case's data (every order is FIFO per sender), so cases never overlap.
//
// Coordinator and members talk JSON lines: commands on the member's
// stdin, events ("joined", "formed", "result", "error") on its stdout.
// A member exits when its stdin closes, so members never outlive the
// coordinator's pipes.
package groupbench
