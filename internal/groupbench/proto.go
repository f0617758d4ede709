package groupbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chorus-project/chorus/group"
)

// Errors of this package; test with errors.Is.
var (
	// ErrConfig: a Config or MemberConfig that cannot run; the message
	// names the field.
	ErrConfig = errors.New("groupbench: invalid config")
	// ErrMember: a member process failed, stalled or said something the
	// coordinator cannot use.
	ErrMember = errors.New("groupbench: member failed")
)

// Limits.
const (
	// MembersCount is the group size of the benchmark (issue 4: three).
	MembersCount = 3
	// SizeBytesMax bounds a message size (the JGroups side's limit).
	SizeBytesMax = 1 << 20
	// headerBytes is the benchmark header every payload starts with:
	// kind, case, sender rank, seq, wall-clock send time.
	headerBytes = 1 + 4 + 1 + 8 + 8
	// SizeBytesMin is the smallest size that holds the header.
	SizeBytesMin = headerBytes
	// samplesPerCaseMax bounds the all-member latency samples one member
	// keeps and reports per case (16 bytes each, plus JSON).
	samplesPerCaseMax = 1 << 17
	// sampleStride: every sampleStride-th message of a sender (by seq) is
	// sampled for the all-member latency, the same messages at every
	// member.
	sampleStride = 4
	// lineBytesMax bounds one control line from a member (a result with
	// samplesPerCaseMax samples is a few MB).
	lineBytesMax = 64 << 20
)

// Payload kinds (the first byte).
const (
	kindData byte = 1
	kindDone byte = 2 // a sender's last message of a case
)

func putHeader(b []byte, kind byte, caseID uint32, rank int, seq uint64, sentUnixNs int64) {
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], caseID)
	b[5] = byte(rank)
	binary.BigEndian.PutUint64(b[6:], seq)
	binary.BigEndian.PutUint64(b[14:], uint64(sentUnixNs))
}

type header struct {
	kind       byte
	caseID     uint32
	rank       int
	seq        uint64
	sentUnixNs int64
}

func parseHeader(b []byte) (header, bool) {
	if len(b) < headerBytes {
		return header{}, false
	}
	return header{kind: b[0], caseID: binary.BigEndian.Uint32(b[1:]), rank: int(b[5]),
		seq: binary.BigEndian.Uint64(b[6:]), sentUnixNs: int64(binary.BigEndian.Uint64(b[14:]))}, true
}

// ParseOrder maps a name (fifo, causal, total, safe) to a group.Order.
func ParseOrder(s string) (group.Order, error) {
	for _, o := range []group.Order{group.FIFO, group.Causal, group.Total, group.Safe} {
		if o.String() == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown order %q (fifo, causal, total or safe)", ErrConfig, s)
}

// Tuning is the group configuration the members run with; the zero value
// is group's defaults, what a user gets.
type Tuning struct {
	// Tick is group.Config.TickInterval (0: the default, 10 ms).
	Tick time.Duration
	// SendWindowMax is the order layer's per-sender window (0: default).
	SendWindowMax int
	// StabilityTicks is the stability gossip interval (0: default).
	StabilityTicks int
}

// command is one line from the coordinator to a member.
type command struct {
	Op          string `json:"op"` // "case"
	Case        uint32 `json:"case"`
	SizeBytes   int    `json:"size"`
	Order       string `json:"order"`
	AllSend     bool   `json:"all_send"`
	StartUnixNs int64  `json:"start_unix_ns"`
	WarmupNs    int64  `json:"warmup_ns"`
	DurationNs  int64  `json:"duration_ns"`
}

// event is one line from a member to the coordinator.
type event struct {
	Ev   string `json:"ev"` // "joined", "formed", "result", "error"
	ID   uint64 `json:"id,omitempty"`
	Addr string `json:"addr,omitempty"`
	Rank int    `json:"rank"`
	Err  string `json:"err,omitempty"`

	Case      uint32         `json:"case"`
	Delivered uint64         `json:"delivered,omitempty"`
	WindowNs  int64          `json:"window_ns,omitempty"`
	Sent      uint64         `json:"sent,omitempty"`
	Early     uint64         `json:"early,omitempty"` // data of a case not started here yet
	Views     int            `json:"views,omitempty"` // views installed during the case
	OwnHist   map[int]uint64 `json:"own_hist,omitempty"`
	Samples   [][2]int64     `json:"samples,omitempty"` // (rank<<48 | seq, latency ns)
}

// Contact is "id=host:port".
func parseContact(s string) (group.Member, error) {
	id, addr, ok := strings.Cut(s, "=")
	n, err := strconv.ParseUint(id, 10, 64)
	if !ok || err != nil || n == 0 || addr == "" {
		return group.Member{}, fmt.Errorf("%w: contact %q, want id=host:port", ErrConfig, s)
	}
	return group.Member{ID: group.MemberID(n), Addr: addr}, nil
}
