package sim

import (
	"os"
	"strconv"
	"testing"
)

func TestTry2(t *testing.T) {
	s, _ := strconv.Atoi(os.Getenv("S"))
	members, _ := strconv.Atoi(os.Getenv("M"))
	bugs, _ := ParseBugs(os.Getenv("BUG"))
	f, _ := os.Create("/tmp/simtry/trace.txt")
	defer f.Close()
	r := Run(Options{Seed: uint64(s), Members: members, Bugs: bugs, Trace: f})
	t.Log(r.Summary())
}
