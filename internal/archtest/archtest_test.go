package archtest

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func moduleRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestPureLayers is the architecture test itself: it fails the build when a
// pure package breaks a rule.
func TestPureLayers(t *testing.T) {
	vs, err := Check(moduleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
}

// TestCatchesPlantedViolations runs the checker over testdata/planted, a
// miniature module whose pure packages break each rule once, and checks that
// every planted violation is reported and nothing else.
func TestCatchesPlantedViolations(t *testing.T) {
	vs, err := Check(filepath.Join("testdata", "planted"))
	if err != nil {
		t.Fatal(err)
	}
	// Each prefix must match the violation at the same position in the
	// sorted list: r.IntN on an injected source (line 21) and the rand.New
	// constructor (line 20) are allowed and must not appear.
	want := []string{
		`paxos/bad.go:14: go statement`,
		`paxos/bad.go:15: channel type`,
		`paxos/bad.go:16: select statement`,
		`paxos/bad.go:17: channel receive`,
		`paxos/bad.go:19: channel send`,
		`paxos/bad.go:22: math/rand/v2 global IntN`,
		`paxos/bad.go:4: imports "github.com/chorus-project/chorus/internal/wal": a pure package may import only pure packages`,
		`paxos/bad.go:5: imports "github.com/example/dep": a pure package uses the standard library only`,
		`paxos/bad.go:7: imports "time": time is a tick count passed in by Tick()`,
		`peer/bad.go:3: imports "github.com/chorus-project/chorus/internal/quorum" of layer 1 from layer 0`,
		`quorum/bad.go:3: imports "sync": a core is single-threaded`,
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.String())
	}
	if len(got) != len(want) {
		t.Fatalf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("violation %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
	}
}
