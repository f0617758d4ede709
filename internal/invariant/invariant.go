// Package invariant states the conditions that must hold inside chorus, and
// stops the process when one does not.
//
// A check guards the program's own logic: a broken invariant means a bug, and
// carrying on would spread the damage (a wrong vote, a lost write). Input that
// comes from outside (a peer, a client, the disk) is never checked here; it is
// validated and rejected with an error or a dropped message. This mirrors
// TigerBeetle's assertions: the specification, checked at run time.
package invariant

import "fmt"

// Violation is the value Check panics with, so tests can tell a broken
// invariant from any other panic.
type Violation struct {
	Message string
}

func (v Violation) Error() string { return "invariant violated: " + v.Message }

// Check panics with a Violation when cond is false. The message is only
// formatted on failure, but Go boxes the variadic arguments at every call,
// so on a hot path write `if !cond { invariant.Unreachable(...) }` instead,
// which costs one branch when the condition holds.
func Check(cond bool, format string, args ...any) {
	if !cond {
		panic(Violation{Message: fmt.Sprintf(format, args...)})
	}
}

// Unreachable panics with a Violation: the caller reached code that its own
// logic rules out (a switch over a closed set of values, for instance).
func Unreachable(format string, args ...any) {
	panic(Violation{Message: "unreachable: " + fmt.Sprintf(format, args...)})
}
