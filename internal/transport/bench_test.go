package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

// The benchmarks count delivered messages, not Sends: the sender ends each
// run with a fin message, and the receiver answers it with how many data
// messages (and payload bytes) its Handler got since the previous fin. Per
// pair order means the fin arrives after everything sent before it. The
// sender paces itself with sendWait, so nothing is dropped by a full queue,
// and a run that delivers fewer than b.N fails.

const (
	benchCluster           = 0xbe9c
	benchData    wire.Kind = 0x1f00
	benchFin     wire.Kind = 0x1f01
	benchAck     wire.Kind = 0x1f02
	helperEnv              = "CHORUS_TRANSPORT_BENCH_PARENT"
)

// benchReceiver counts data messages and answers fins through tr.
type benchReceiver struct {
	self, parent  peer.ID
	tr            atomic.Pointer[Transport]
	frames, bytes atomic.Uint64
}

func (r *benchReceiver) handle(env wire.Envelope) {
	switch env.Kind {
	case benchData:
		r.frames.Add(1)
		r.bytes.Add(uint64(len(env.Payload)))
	case benchFin:
		ack := binary.BigEndian.AppendUint64(nil, r.frames.Swap(0))
		ack = binary.BigEndian.AppendUint64(ack, r.bytes.Swap(0))
		(*r.tr.Load()).Send(wire.Envelope{Kind: benchAck, From: r.self, To: r.parent, Payload: ack})
	}
}

// benchAcks turns ack messages into a channel.
func benchAcks() (Handler, <-chan [2]uint64) {
	acks := make(chan [2]uint64, 1)
	return func(env wire.Envelope) {
		if env.Kind == benchAck && len(env.Payload) == 16 {
			acks <- [2]uint64{binary.BigEndian.Uint64(env.Payload), binary.BigEndian.Uint64(env.Payload[8:])}
		}
	}, acks
}

// TestHelperProcess is the receiving member of BenchmarkTCP, run by the
// benchmark in a process of its own. It prints its address, serves until
// its stdin closes, and exits.
func TestHelperProcess(t *testing.T) {
	parent := os.Getenv(helperEnv)
	if parent == "" {
		t.Skip("the receiving process of BenchmarkTCP; runs only when the benchmark starts it")
	}
	r := &benchReceiver{self: 2, parent: 1}
	tr, err := NewTCP(DefaultConfig(2, benchCluster, "127.0.0.1:0"), r.handle)
	if err != nil {
		t.Fatal(err)
	}
	var asTransport Transport = tr
	r.tr.Store(&asTransport)
	tr.SetPeer(1, parent)
	fmt.Printf("listening %s\n", tr.Addr())
	io.Copy(io.Discard, os.Stdin)
	tr.Close()
}

// BenchmarkTCP measures delivered throughput from this process to a second
// process over loopback TCP.
func BenchmarkTCP(b *testing.B) {
	h, acks := benchAcks()
	tr, err := NewTCP(DefaultConfig(1, benchCluster, "127.0.0.1:0"), h)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+tr.Addr().String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("receiver process: %v", err)
		}
	}()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		b.Fatalf("receiver process printed no address (%v)", sc.Err())
	}
	go io.Copy(io.Discard, stdout)
	tr.SetPeer(2, addr)
	runDelivery(b, tr, 1, 2, acks)
}

// BenchmarkMem measures the same over a MemNetwork in this process.
func BenchmarkMem(b *testing.B) {
	n := NewMemNetwork()
	h, acks := benchAcks()
	e1, err := n.Endpoint(1, h)
	if err != nil {
		b.Fatal(err)
	}
	defer e1.Close()
	r := &benchReceiver{self: 2, parent: 1}
	e2, err := n.Endpoint(2, r.handle)
	if err != nil {
		b.Fatal(err)
	}
	defer e2.Close()
	var asTransport Transport = e2
	r.tr.Store(&asTransport)
	e1.SetPeer(2, "")
	e2.SetPeer(1, "")
	runDelivery(b, e1, 1, 2, acks)
}

func runDelivery(b *testing.B, tr Transport, from, to peer.ID, acks <-chan [2]uint64) {
	ws := tr.(waitSender)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fin := func() [2]uint64 {
		if !ws.sendWait(ctx, wire.Envelope{Kind: benchFin, From: from, To: to}) {
			b.Fatal("fin refused")
		}
		select {
		case a := <-acks:
			return a
		case <-time.After(time.Minute):
			b.Fatal("no ack from the receiver in a minute")
			return [2]uint64{}
		}
	}
	fin() // connections up and counters zeroed before any timing
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("payload=%dB", size), func(b *testing.B) {
			env := wire.Envelope{Kind: benchData, From: from, To: to, Payload: make([]byte, size)}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if !ws.sendWait(ctx, env) {
					b.Fatal("sendWait refused")
				}
			}
			got := fin()
			elapsed := time.Since(start)
			b.StopTimer()
			if got[0] != uint64(b.N) || got[1] != uint64(b.N*size) {
				b.Fatalf("delivered %d messages (%d bytes) of %d", got[0], got[1], b.N)
			}
			b.ReportMetric(float64(got[0])/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(got[1])/elapsed.Seconds()/1e6, "MB/s")
		})
	}
}
