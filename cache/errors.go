package cache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors. Every error the cache returns for one of these
// conditions wraps the matching sentinel, so callers branch with errors.Is;
// the message says what was being done and names the reference or digest.
var (
	// ErrBadReference: the REF could not be parsed.
	ErrBadReference = errors.New("bad image reference")
	// ErrNotFound: the registry, layout or archive has no such image, tag,
	// repository or blob.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the registry refused the credentials (401/403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrDigestMismatch: bytes did not hash to the digest (or diffID) they
	// were announced with, or had the wrong size.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrInvalidImage: the manifest, config or a layer's tar stream is
	// malformed or unsupported.
	ErrInvalidImage = errors.New("invalid image")
	// ErrNoPlatform: a multi-platform image has no manifest for the
	// requested platform; the message lists the available ones.
	ErrNoPlatform = errors.New("no matching platform")
	// ErrUnreachable: the registry could not be reached (connection
	// refused, DNS failure, TLS handshake against a plain-HTTP server).
	ErrUnreachable = errors.New("registry unreachable")
)

// kindError attaches a sentinel to an error without repeating the
// sentinel's text when the detail already says it.
type kindError struct {
	kind error
	msg  string
	err  error // may be nil
}

func (e *kindError) Error() string {
	if e.err == nil {
		return e.msg
	}
	if e.msg == "" {
		return e.err.Error()
	}
	return e.msg + ": " + e.err.Error()
}

func (e *kindError) Unwrap() []error {
	if e.err == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.err}
}

// errorf returns an error wrapping kind whose message is the formatted text.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// mismatchf reports a digest (or diffID or size) mismatch of digest.
func mismatchf(format string, args ...any) error {
	return errorf(ErrDigestMismatch, format, args...)
}

// classifyRemote wraps an error from the registry client with the sentinel
// that describes it, and shortens the message to what a user needs.
func classifyRemote(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return classifyTransport(te)
	}
	if name.IsErrBadName(err) {
		return &kindError{kind: ErrBadReference, err: err}
	}
	if isUnreachable(err) {
		return &kindError{kind: ErrUnreachable, msg: ErrUnreachable.Error() + ": " + rootCause(err)}
	}
	return err
}

func classifyTransport(te *transport.Error) error {
	msg := transportMessage(te)
	for _, d := range te.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return &kindError{kind: ErrNotFound, msg: msg}
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return &kindError{kind: ErrUnauthorized, msg: msg}
		case transport.NameInvalidErrorCode, transport.TagInvalidErrorCode:
			return &kindError{kind: ErrBadReference, msg: msg}
		}
	}
	switch te.StatusCode {
	case http.StatusNotFound:
		return &kindError{kind: ErrNotFound, msg: msg}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &kindError{kind: ErrUnauthorized, msg: msg}
	}
	return &kindError{kind: errRegistry, msg: msg}
}

// errRegistry marks other registry answers; it is not exported because no
// caller branches on it.
var errRegistry = errors.New("registry error")

// transportMessage renders the registry's diagnostics without the request
// URL, which the caller's context already names.
func transportMessage(te *transport.Error) string {
	if len(te.Errors) == 0 {
		return fmt.Sprintf("registry answered %d %s", te.StatusCode, http.StatusText(te.StatusCode))
	}
	parts := make([]string, 0, len(te.Errors))
	for _, d := range te.Errors {
		s := strings.ToLower(d.Message)
		if s == "" {
			s = strings.ToLower(string(d.Code))
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("%s (registry answered %d)", strings.Join(parts, "; "), te.StatusCode)
}

func isUnreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var recErr tls.RecordHeaderError
	var certErr *tls.CertificateVerificationError
	var unkAuth x509.UnknownAuthorityError
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &recErr), errors.As(err, &certErr), errors.As(err, &unkAuth):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNRESET):
		return true
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return true
	}
	// net/http reports an HTTPS request to a plain-HTTP server this way.
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// rootCause is the innermost useful text of a network error: "connect:
// connection refused" rather than two full URLs (ggcr tries https, then
// http).
func rootCause(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	return err.Error()
}
