package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Network configures how registry requests fail and are retried. A zero
// field means its default (DefaultNetwork).
type Network struct {
	// Attempts is how many times one request is tried before its error is
	// final. A blob download that makes progress starts counting afresh:
	// only attempts in a row that bring no new byte count.
	Attempts int
	// StallTimeout abandons a request that receives nothing, headers or
	// body, for this long; it is then retried (resumed, for blobs).
	StallTimeout time.Duration
	// Backoff is the delay before the first retry; each later one doubles
	// it, up to MaxBackoff, with ±20% jitter. A 429 or 503 answer's
	// Retry-After is honoured up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
}

// DefaultNetwork: 5 attempts, 30 s without a byte, delays 0.5, 1, 2, 4 s.
var DefaultNetwork = Network{
	Attempts:     5,
	StallTimeout: 30 * time.Second,
	Backoff:      500 * time.Millisecond,
	MaxBackoff:   15 * time.Second,
}

func (n Network) withDefaults() Network {
	d := DefaultNetwork
	if n.Attempts <= 0 {
		n.Attempts = d.Attempts
	}
	if n.StallTimeout <= 0 {
		n.StallTimeout = d.StallTimeout
	}
	if n.Backoff <= 0 {
		n.Backoff = d.Backoff
	}
	if n.MaxBackoff <= 0 {
		n.MaxBackoff = max(d.MaxBackoff, n.Backoff)
	}
	return n
}

// delay is the wait before retry number try (1 for the first retry), or
// the server's Retry-After when it asked for one.
func (n Network) delay(try int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, n.MaxBackoff)
	}
	d := n.Backoff << min(try-1, 20)
	if d <= 0 || d > n.MaxBackoff {
		d = n.MaxBackoff
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryable reports whether a failed registry request may succeed when
// repeated: server trouble (408, 429, 5xx), a stall, or a connection that
// broke after it was made. A refused or unresolvable connection is final
// unless dialRetry (the registry answered earlier in this pull), so that
// a wrong address fails at once.
func retryable(err error, dialRetry bool) bool {
	var te *transport.Error
	var st *statusError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &st):
		return retryableStatus(st.code)
	case errors.As(err, &te):
		return retryableStatus(te.StatusCode)
	case errors.Is(err, errStalled), errors.Is(err, errBadRange), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return dialRetry
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dialRetry && dnsErr.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// statusError is a registry answer other than the one expected, kept
// with its status code for retryable and the classification after it.
type statusError struct {
	code       int
	retryAfter time.Duration
	err        error // *transport.Error from transport.CheckError
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func newStatusError(resp *http.Response) *statusError {
	err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent)
	return &statusError{code: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After")), err: err}
}

// parseRetryAfter reads Retry-After in seconds (the HTTP-date form is
// rare from registries and ignored).
func parseRetryAfter(s string) time.Duration {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// withRetries runs op until it succeeds, fails for good, or has been
// tried net.Attempts times; the final error says how many attempts were
// made when there was more than one.
func (s *Store) withRetries(ctx context.Context, what string, dialRetry bool, op func() error) error {
	for try := 1; ; try++ {
		err := op()
		if err == nil || !retryable(err, dialRetry) {
			return err
		}
		if try >= s.net.Attempts {
			return fmt.Errorf("giving up after %d attempts: %w", try, classifyRemote(err))
		}
		d := s.net.delay(try, retryAfterOf(err))
		s.log.Info("retrying", "what", what, "attempt", try+1, "in", d, "err", err)
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

func retryAfterOf(err error) time.Duration {
	var st *statusError
	if errors.As(err, &st) {
		return st.retryAfter
	}
	return 0
}
