package paxos

import (
	"github.com/chorus-project/chorus/internal/wal"
	"github.com/example/dep"
	"math/rand/v2"
	"time"
)

var _ = wal.X
var _ = dep.Y

func Bad(r *rand.Rand) time.Duration {
	go func() {}()
	var c chan int
	select {
	case <-c:
	}
	c <- 1
	_ = rand.New(rand.NewPCG(1, 2))
	_ = r.IntN(3)
	return time.Duration(rand.IntN(3))
}
