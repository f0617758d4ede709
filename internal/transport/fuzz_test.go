package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/chorus-project/chorus/internal/wire"
)

// FuzzReadFrame reads a connection's byte stream the way an acceptor does: a
// hello, then frames, each decoded as an envelope. No input may panic; a
// frame body may never exceed the limit; whatever is accepted must re-encode
// to the very bytes read (hello and envelope encodings are canonical), and
// reading must stop at the first error, consuming no more than it was given.
func FuzzReadFrame(f *testing.F) {
	const frameMax = 1 << 10
	good := appendHello(nil, goodHello(5, 1))
	env := wire.Envelope{Kind: testKind, Channel: 7, From: 5, To: 1, Payload: []byte("payload")}
	f.Add(good)
	f.Add(append(append(append([]byte(nil), good...), keepAliveFrame[:]...), frameOf(env)...))
	f.Add(append(append([]byte(nil), good...), 0xff, 0xff, 0xff, 0xff))                            // 4 GiB claim
	f.Add(append(append([]byte(nil), good...), binary.BigEndian.AppendUint32(nil, frameMax+1)...)) // just over
	f.Add(append(append([]byte(nil), good...), 0, 0, 0, 9, wire.Version, 0))                       // body cut short
	f.Add(append(append([]byte(nil), good...), rawFrame([]byte{wire.Version, 0x10, 0, 0x80, 0})...))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(good[:17])
	f.Fuzz(func(t *testing.T, in []byte) {
		src := bytes.NewReader(in)
		br := bufio.NewReader(src)
		h, err := readHello(br)
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("hello error %v does not wrap ErrHandshake", err)
			}
			return
		}
		if !bytes.Equal(appendHello(nil, h), in[:helloBytes]) {
			t.Fatalf("hello %+v re-encodes differently", h)
		}
		_ = h.check(testCluster, 1, 0) // must not panic whatever the fields
		fr := frameReader{r: br, frameBytesMax: frameMax}
		consumed := helloBytes
		for {
			body, err := fr.next()
			if errors.Is(err, io.EOF) {
				if consumed != len(in) {
					t.Fatalf("clean EOF after %d of %d bytes", consumed, len(in))
				}
				return
			}
			if err != nil {
				if errors.Is(err, ErrFrameTooLarge) && int(binary.BigEndian.Uint32(in[consumed:])) <= frameMax {
					t.Fatalf("frame within the limit refused: %v", err)
				}
				return
			}
			if len(body) > frameMax {
				t.Fatalf("body of %d bytes over the %d limit", len(body), frameMax)
			}
			if !bytes.Equal(body, in[consumed+frameHeaderBytes:consumed+frameHeaderBytes+len(body)]) {
				t.Fatal("body differs from the input")
			}
			consumed += frameHeaderBytes + len(body)
			if len(body) == 0 {
				continue
			}
			e, err := wire.DecodeEnvelope(body, frameMax)
			if err != nil {
				continue // the transport drops the connection here
			}
			if !bytes.Equal(wire.AppendEnvelope(nil, e), body) {
				t.Fatalf("envelope %+v re-encodes differently", e)
			}
		}
	})
}
