// Package history records the operations clients run against a chorus
// cluster during a fault test, and checks the recorded history.
//
// Recording follows Jepsen: every operation is invoked and then completed
// with one of three outcomes. OK means it happened; Fail means it
// definitely did not (a refused request, a transaction whose compares did
// not hold); Unknown means the client cannot tell (a timeout, a lost
// connection): such an operation may have taken effect at any moment after
// its invocation, or never. An operation still pending when the history is
// taken counts as Unknown. Times are monotonic nanoseconds since the
// Recorder was made.
//
// The checkers:
//   - CheckLinearizable: per key, the gets, puts and compare-and-sets form
//     a linearizable register (porcupine). Unknown writes complete at
//     +infinity; unknown and failed reads are dropped (a read has no
//     effect).
//   - CheckBank: every successful read of all the accounts sums to the
//     initial total, with every account present and none negative.
//   - CheckNoLostWrites: every acknowledged write is still visible in the
//     final state unless a write that may have come after it (a later,
//     concurrent or unknown one) replaced it.
//
// Each returns anomalies with the sub-history that shows them; Format prints
// a sub-history for a human.
package history
