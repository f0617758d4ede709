package invariant

import (
	"errors"
	"testing"
)

func TestCheckPassesWhenTrue(t *testing.T) {
	Check(true, "never formatted %d", 1)
}

func TestCheckPanicsWithViolation(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func()
		want string
	}{
		{"check", func() { Check(1 > 2, "commit %d beyond last %d", 7, 5) }, "invariant violated: commit 7 beyond last 5"},
		{"unreachable", func() { Unreachable("state %q", "x") }, `invariant violated: unreachable: state "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				v, ok := r.(Violation)
				if !ok {
					t.Fatalf("recovered %#v, want a Violation", r)
				}
				if v.Error() != tc.want {
					t.Fatalf("message %q, want %q", v.Error(), tc.want)
				}
				var asErr error = v
				if !errors.As(asErr, &v) {
					t.Fatal("Violation is not usable as an error")
				}
			}()
			tc.fn()
		})
	}
}
