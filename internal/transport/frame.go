package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/chorus-project/chorus/internal/peer"
	"github.com/chorus-project/chorus/internal/wire"
)

const (
	// helloMagic opens every connection, so that a stray client (an HTTP
	// probe, a port scanner, another program) is refused after four bytes.
	helloMagic = "CHRS"
	// helloBytes is the fixed size of a hello: magic, version, cluster,
	// from, to.
	helloBytes = 4 + 1 + 8 + 8 + 8
	// frameHeaderBytes is the big-endian body length before each frame.
	frameHeaderBytes = 4
	// frameGrowBytes is the most a reader allocates for a frame body before
	// any of it has arrived; a larger body's buffer then grows fourfold each
	// time it fills, so memory follows what the peer actually sent (at most
	// 4x plus this), not what its header claims. Bodies up to this size, the
	// common case, are read with one exact allocation and no copy (growing
	// from 64 KiB instead cost 3x in throughput on 64 KiB frames).
	frameGrowBytes = 256 << 10
	// readBufferBytes is the bufio size on inbound connections: many small
	// frames per read system call.
	readBufferBytes = 64 << 10
)

// hello is the first thing each side of a connection writes.
type hello struct {
	version uint8
	cluster uint64
	from    peer.ID
	to      peer.ID
}

func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, helloMagic...)
	dst = append(dst, h.version)
	dst = binary.BigEndian.AppendUint64(dst, h.cluster)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.from))
	return binary.BigEndian.AppendUint64(dst, uint64(h.to))
}

// parseHello decodes exactly helloBytes bytes. It checks only the magic;
// check compares the fields with what this member expects.
func parseHello(b []byte) (hello, error) {
	if len(b) != helloBytes {
		return hello{}, fmt.Errorf("%w: hello of %d bytes, want %d", ErrHandshake, len(b), helloBytes)
	}
	if string(b[:4]) != helloMagic {
		return hello{}, fmt.Errorf("%w: bad magic %q", ErrHandshake, b[:4])
	}
	return hello{
		version: b[4],
		cluster: binary.BigEndian.Uint64(b[5:]),
		from:    peer.ID(binary.BigEndian.Uint64(b[13:])),
		to:      peer.ID(binary.BigEndian.Uint64(b[21:])),
	}, nil
}

// check accepts a hello from wantFrom (or anyone but None when wantFrom is
// None) to self in cluster.
func (h hello) check(cluster uint64, self, wantFrom peer.ID) error {
	switch {
	case h.version != wire.Version:
		return fmt.Errorf("%w: %w: peer speaks wire version %d, this build %d", ErrHandshake, wire.ErrVersion, h.version, wire.Version)
	case h.cluster != cluster:
		return fmt.Errorf("%w: cluster id %d, this cluster is %d", ErrHandshake, h.cluster, cluster)
	case h.to != self:
		return fmt.Errorf("%w: hello addressed to member %s, this member is %s", ErrHandshake, h.to, self)
	case h.from == peer.None:
		return fmt.Errorf("%w: hello from member 0", ErrHandshake)
	case wantFrom != peer.None && h.from != wantFrom:
		return fmt.Errorf("%w: member %s answered, expected member %s", ErrHandshake, h.from, wantFrom)
	}
	return nil
}

// readHello reads and parses one hello.
func readHello(r io.Reader) (hello, error) {
	var b [helloBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, fmt.Errorf("%w: read hello: %w", ErrHandshake, err)
	}
	return parseHello(b[:])
}

// appendFrame appends env as one frame. The caller has checked its size.
func appendFrame(dst []byte, env wire.Envelope, bodyBytes int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyBytes))
	return wire.AppendEnvelope(dst, env)
}

// keepAliveFrame is a frame with an empty body. No envelope encodes to zero
// bytes, so it cannot be confused with one, and the transport needs no
// envelope kind of its own.
var keepAliveFrame = [frameHeaderBytes]byte{}

// frameReader reads frames from a stream.
type frameReader struct {
	r             io.Reader
	frameBytesMax int
	hdr           [frameHeaderBytes]byte
}

// next returns the next frame body; an empty body is a keep-alive. A header
// claiming more than frameBytesMax fails with ErrFrameTooLarge before any
// body byte is read or allocated. Each body is a new slice that the caller
// owns. io.EOF means the stream ended cleanly between frames.
func (fr *frameReader) next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if uint64(n) > uint64(fr.frameBytesMax) {
		return nil, fmt.Errorf("%w: header claims %d bytes, limit %d", ErrFrameTooLarge, n, fr.frameBytesMax)
	}
	want := int(n)
	body := make([]byte, 0, min(want, frameGrowBytes))
	for len(body) < want {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(want-len(body), 3*cap(body)))
		}
		end := min(cap(body), want)
		k, err := io.ReadFull(fr.r, body[len(body):end])
		body = body[:len(body)+k]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("frame body (%d of %d bytes): %w", len(body), want, err)
		}
	}
	return body, nil
}

// idleReader reads from a connection with a fresh deadline before each read
// system call: the deadline measures silence, not the time a large frame
// takes to arrive, and a bufio.Reader above it touches the deadline only when
// its buffer is empty.
type idleReader struct {
	conn net.Conn
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	if err := r.conn.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
		return 0, err
	}
	n, err := r.conn.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: nothing received for %v", ErrIdle, r.idle)
	}
	return n, err
}
