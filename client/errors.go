package client

import (
	"errors"
	"fmt"
)

// Error codes of the HTTP API: stable strings in every error body.
const (
	CodeBadRequest        = "bad_request"         // 400: malformed input, a limit exceeded in a txn
	CodeUnknownMode       = "unknown_mode"        // 400: a mode chorus does not have
	CodeModeUnavailable   = "mode_unavailable"    // 400: a mode chorus has but this server does not run (yet)
	CodeStaleSession      = "stale_session"       // 400: a session seq below the last one applied
	CodeNamespaceNotFound = "namespace_not_found" // 404
	CodeKeyNotFound       = "key_not_found"       // 404
	CodeNotFound          = "not_found"           // 404: no such endpoint
	CodeMethodNotAllowed  = "method_not_allowed"  // 405
	CodeNamespaceExists   = "namespace_exists"    // 409
	CodeCompareFailed     = "compare_failed"      // 409: a txn's compares did not hold
	CodeMembership        = "membership_refused"  // 409: a membership change refused (one pending, already a member, not a member)
	CodeTooLarge          = "too_large"           // 413: body, key, value or command over its limit
	CodeUnavailable       = "unavailable"         // 503: no leader or no quorum; retry (Retry-After)
	CodeInternal          = "internal"            // 500
)

// Sentinel errors; an *Error matches the one of its code with errors.Is.
var (
	ErrBadRequest        = errors.New("client: bad request")
	ErrNotFound          = errors.New("client: not found") // namespace or key
	ErrNamespaceNotFound = errors.New("client: namespace not found")
	ErrKeyNotFound       = errors.New("client: key not found")
	ErrExists            = errors.New("client: namespace exists")
	ErrCompareFailed     = errors.New("client: transaction compare failed")
	ErrTooLarge          = errors.New("client: request too large")
	ErrUnavailable       = errors.New("client: cluster unavailable")
	ErrModeUnavailable   = errors.New("client: replication mode unavailable")
	// ErrNoEndpoints: Config.Endpoints is empty or malformed.
	ErrNoEndpoints = errors.New("client: no endpoints")
)

// Error is an error answered by a server: its HTTP status and the body's
// code and message.
type Error struct {
	HTTPStatus int
	Code       string
	Message    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.HTTPStatus, e.Message)
}

// Is matches the sentinels by code: a missing key is both ErrKeyNotFound and
// ErrNotFound.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.HTTPStatus == 400
	case ErrNotFound:
		return e.Code == CodeNamespaceNotFound || e.Code == CodeKeyNotFound
	case ErrNamespaceNotFound:
		return e.Code == CodeNamespaceNotFound
	case ErrKeyNotFound:
		return e.Code == CodeKeyNotFound
	case ErrExists:
		return e.Code == CodeNamespaceExists
	case ErrCompareFailed:
		return e.Code == CodeCompareFailed
	case ErrTooLarge:
		return e.Code == CodeTooLarge
	case ErrUnavailable:
		return e.Code == CodeUnavailable
	case ErrModeUnavailable:
		return e.Code == CodeModeUnavailable || e.Code == CodeUnknownMode
	}
	return false
}
