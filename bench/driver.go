package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
)

// Sentinel errors of this package; returned errors wrap them.
var (
	// ErrBadConfig: a workload, flag or driver setting is invalid.
	ErrBadConfig = errors.New("bench: bad config")
	// ErrNotFound: a linearizable get found no value (the key was not preloaded).
	ErrNotFound = errors.New("bench: key not found")
	// ErrUnsupported: the system or driver does not offer the operation.
	ErrUnsupported = errors.New("bench: unsupported")
)

// Driver is one system under test. Put and Get are called concurrently by
// every worker; Get must be linearizable (it must reflect every put
// acknowledged before it started).
type Driver interface {
	// Name is the system's name in reports ("etcd", "chorus").
	Name() string
	// Put writes value under key and returns once the system acknowledges it
	// as durable.
	Put(ctx context.Context, worker int, key, value []byte) error
	// Get reads key linearizably; ErrNotFound when it has no value.
	Get(ctx context.Context, worker int, key []byte) error
	// Close releases connections.
	Close() error
}

// BatchPutter is an optional Driver extension for preloading: it writes
// several keys in one atomic request (a transaction), far faster than one put
// per key. BatchMax is the most puts one call accepts.
type BatchPutter interface {
	PutBatch(ctx context.Context, keys, values [][]byte) error
	BatchMax() int
}

// Keys formats benchmark keys: exactly keyBytes bytes, "k" followed by the
// zero-padded decimal index.
type Keys struct {
	n        int
	keyBytes int
}

// keyIndexDigitsMax bounds the zero-padded index so it fits in an int64.
const keyIndexDigitsMax = 18

// NewKeys returns the key space of n keys of keyBytes bytes each.
func NewKeys(n, keyBytes int) (Keys, error) {
	if n < 1 {
		return Keys{}, fmt.Errorf("%w: keys %d must be at least 1", ErrBadConfig, n)
	}
	if keyBytes < 2 {
		return Keys{}, fmt.Errorf("%w: key-bytes %d must be at least 2", ErrBadConfig, keyBytes)
	}
	digits := keyBytes - 1
	if digits < keyIndexDigitsMax {
		limit := 1
		for range digits {
			limit *= 10
		}
		if n > limit {
			return Keys{}, fmt.Errorf("%w: %d keys do not fit in key-bytes %d (at most %d)", ErrBadConfig, n, keyBytes, limit)
		}
	}
	return Keys{n: n, keyBytes: keyBytes}, nil
}

// N returns the number of keys.
func (k Keys) N() int { return k.n }

// Key writes key i into buf (reusing its storage) and returns it.
func (k Keys) Key(buf []byte, i int) []byte {
	buf = append(buf[:0], 'k')
	var digits [20]byte
	pos := len(digits)
	v := uint64(i)
	for v > 0 || pos == len(digits) {
		pos--
		digits[pos] = byte('0' + v%10)
		v /= 10
	}
	for range k.keyBytes - 1 - (len(digits) - pos) {
		buf = append(buf, '0')
	}
	return append(buf, digits[pos:]...)
}

// Value returns valueBytes pseudo-random printable bytes (printable so a
// value is valid in any text protocol a driver might use).
func Value(rng *rand.Rand, valueBytes int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	v := make([]byte, valueBytes)
	for i := range v {
		v[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return v
}
