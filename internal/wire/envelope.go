package wire

import (
	"fmt"

	"github.com/chorus-project/chorus/internal/peer"
)

// Version is the envelope format this build speaks. A peer that sends another
// version is refused (ErrVersion); the transport drops its connection.
const Version uint8 = 1

// Kind says which message a payload holds. Each protocol owns a range so
// kinds never collide when several protocols share one transport:
//
//	0x0000-0x00ff  reserved (the transport's hello and keep-alive are frames, not envelopes)
//	0x0100-0x01ff  paxos
//	0x0200-0x02ff  group communication: order 0x0210, liveness 0x0220, vsync 0x0230-0x023f,
//	               the group package 0x0240-0x024f
//	0x0300-0x0fff  replication modes
//	0x1000-0xffff  tests and applications
type Kind uint16

// Envelope is one message between two members. Channel routes it to one
// protocol instance on the receiving process: a process can be a member of
// several groups, or of a group and a Paxos cluster, over one transport.
//
// Encoded form (all varints canonical, see Reader.Uvarint):
//
//	offset  size      field
//	0       1         version (= Version)
//	1       2         kind, big-endian
//	3       1..10     channel, uvarint
//	.       1..10     from, uvarint (peer.ID)
//	.       1..10     to, uvarint (peer.ID)
//	.       1..10     payload length, uvarint
//	.       length    payload
//
// Nothing may follow the payload: the envelope's length is known from the
// frame that carries it, and trailing bytes are an error.
type Envelope struct {
	Kind    Kind
	Channel uint64
	From    peer.ID
	To      peer.ID
	Payload []byte
}

// EnvelopeHeaderBytesMax bounds the bytes an envelope takes besides its
// payload: version, kind and four varints of at most 10 bytes.
const EnvelopeHeaderBytesMax = 1 + 2 + 4*10

// AppendEnvelope appends the encoding of e to dst and returns the result.
func AppendEnvelope(dst []byte, e Envelope) []byte {
	w := NewBuffer(dst)
	w.Uint8(Version)
	w.Uint16(uint16(e.Kind))
	w.Uvarint(e.Channel)
	w.Uvarint(uint64(e.From))
	w.Uvarint(uint64(e.To))
	w.LenBytes(e.Payload)
	return w.Bytes()
}

// EncodedLen is the length AppendEnvelope will add for e.
func EncodedLen(e Envelope) int {
	return 3 + UvarintLen(e.Channel) + UvarintLen(uint64(e.From)) + UvarintLen(uint64(e.To)) +
		UvarintLen(uint64(len(e.Payload))) + len(e.Payload)
}

// DecodeEnvelope decodes one envelope that fills p exactly. A payload longer
// than payloadBytesMax is refused before anything is copied. The returned
// Payload aliases p.
func DecodeEnvelope(p []byte, payloadBytesMax int) (Envelope, error) {
	r := NewReader(p)
	if v := r.Uint8(); r.Err() == nil && v != Version {
		return Envelope{}, fmt.Errorf("%w: envelope version %d, this build speaks %d", ErrVersion, v, Version)
	}
	e := Envelope{
		Kind:    Kind(r.Uint16()),
		Channel: r.Uvarint(),
		From:    peer.ID(r.Uvarint()),
		To:      peer.ID(r.Uvarint()),
		Payload: r.LenBytes(payloadBytesMax),
	}
	if err := r.Done(); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	return e, nil
}
