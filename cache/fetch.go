package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobReader streams a blob from a registry and survives what networks do
// to long downloads. When a response breaks off (a dropped connection, a
// stall, a body shorter than the blob, a 5xx or 429), it asks again from
// the first byte it has not delivered, with an HTTP Range request, after
// a backoff. Every byte offset is delivered exactly once and in order, so
// the caller's hash of the stream stays that of the whole blob: the digest
// check after the last byte covers the bytes of every attempt. A server
// that ignores Range answers 200 with the whole blob; the reader then
// discards what it already delivered. Only failed attempts in a row count
// against Network.Attempts; an attempt that brings new bytes resets the
// count.
type blobReader struct {
	ctx    context.Context
	s      *Store
	client *http.Client
	url    string
	digest v1.Hash
	size   int64 // from the descriptor; < 0: unknown

	pos     int64         // bytes delivered
	body    io.ReadCloser // the current response's, nil between attempts
	skip    int64         // bytes of body to discard (the server ignored Range)
	noRange bool          // the server refused a Range request: ask for all
	fails   int           // failed attempts in a row
	lastErr error
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.size >= 0 && b.pos >= b.size {
			b.drop()
			return 0, io.EOF
		}
		if b.body == nil {
			if err := b.open(); err != nil {
				return 0, err
			}
		}
		if b.size >= 0 && int64(len(p)) > b.size-b.pos+b.skip {
			p = p[:b.size-b.pos+b.skip]
		}
		n, err := b.body.Read(p)
		n = b.discard(p, n)
		b.pos += int64(n)
		if n > 0 {
			b.fails = 0
		}
		switch {
		case err == nil && n == 0:
			continue
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && (b.size < 0 || b.pos >= b.size):
			b.drop()
			return n, io.EOF
		case errors.Is(err, io.EOF):
			err = fmt.Errorf("response ended after %d of %d bytes: %w", b.pos, b.size, io.ErrUnexpectedEOF)
		}
		b.drop()
		if !retryable(err, true) {
			return n, err
		}
		b.fail(err)
		if n > 0 {
			return n, nil
		}
	}
}

// discard drops the first bytes of a response that repeats what was
// already delivered, moving the rest of p to its front.
func (b *blobReader) discard(p []byte, n int) int {
	if b.skip == 0 || n == 0 {
		return n
	}
	k := int(min(int64(n), b.skip))
	b.skip -= int64(k)
	return copy(p, p[k:n])
}

func (b *blobReader) fail(err error) {
	b.fails++
	b.lastErr = err
}

func (b *blobReader) drop() {
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
}

func (b *blobReader) Close() error {
	b.drop()
	return nil
}

// open starts a response at b.pos, retrying with backoff.
func (b *blobReader) open() error {
	for {
		if b.fails >= b.s.net.Attempts {
			return fmt.Errorf("giving up after %d attempts: %w", b.fails, classifyRemote(b.lastErr))
		}
		if b.fails > 0 {
			d := b.s.net.delay(b.fails, retryAfterOf(b.lastErr))
			b.s.log.Info("retrying blob download", "digest", b.digest, "from", b.pos, "attempt", b.fails+1, "in", d, "err", b.lastErr)
			if err := sleep(b.ctx, d); err != nil {
				return err
			}
		}
		err := b.request()
		if err == nil {
			return nil
		}
		if !retryable(err, true) {
			return err
		}
		b.fail(err)
	}
}

// request sends one GET from b.pos and checks the answer.
func (b *blobReader) request() error {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return err
	}
	if b.pos > 0 && !b.noRange {
		req.Header.Set("Range", b.rangeHeader())
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		b.skip = b.pos
		if b.pos > 0 {
			b.s.log.Info("registry ignored Range; skipping what was delivered", "digest", b.digest, "bytes", b.pos)
		}
	case resp.StatusCode == http.StatusPartialContent && req.Header.Get("Range") != "":
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != b.pos {
			resp.Body.Close()
			b.noRange = true
			return fmt.Errorf("%w: asked for bytes from %d, got Content-Range %q", errBadRange, b.pos, resp.Header.Get("Content-Range"))
		}
		b.skip = 0
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && req.Header.Get("Range") != "":
		resp.Body.Close()
		b.noRange = true
		return fmt.Errorf("%w: the registry refused %q", errBadRange, req.Header.Get("Range"))
	default:
		err := newStatusError(resp)
		resp.Body.Close()
		return err
	}
	b.body = resp.Body
	return nil
}

// errBadRange is a registry that cannot serve a Range request right (a
// 416, or a 206 for other bytes than asked); the next attempt asks for the
// whole blob and skips what was delivered.
var errBadRange = errors.New("bad range answer")

// rangeHeader asks for the rest of the blob, closed when its size is known
// (some servers understand only "bytes=START-END").
func (b *blobReader) rangeHeader() string {
	if b.size > 0 {
		return fmt.Sprintf("bytes=%d-%d", b.pos, b.size-1)
	}
	return fmt.Sprintf("bytes=%d-", b.pos)
}

// contentRangeStart parses the first byte position of "bytes START-END/SIZE".
func contentRangeStart(s string) (int64, bool) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil && n >= 0
}
