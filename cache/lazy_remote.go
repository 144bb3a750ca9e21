package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// errNoRange is a registry (or a mirror in front of it) that answered a
// Range request with the whole blob, or with other bytes than asked.
var errNoRange = errors.New("the registry does not serve Range requests")

// rangeSource reads byte ranges of one blob from its registry, over the
// same authenticated, stall-watching client and retry policy as pulls.
type rangeSource struct {
	s      *Store
	reg    *registrySource
	url    string
	digest v1.Hash
	size   int64

	fetched  atomic.Int64 // body bytes received
	requests atomic.Int64
}

func (r *registrySource) ranges(d v1.Descriptor) *rangeSource {
	repo := r.ref.Context()
	url := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d.Digest)
	return &rangeSource{s: r.s, reg: r, url: url, digest: d.Digest, size: d.Size}
}

// readRange returns the blob's bytes [from, to), retrying what may pass
// (5xx, resets, stalls, short bodies) within ctx. A server that ignores
// Range fails at once with errNoRange, its body unread.
func (rs *rangeSource) readRange(ctx context.Context, from, to int64) ([]byte, error) {
	if from < 0 || to > rs.size || from >= to {
		return nil, fmt.Errorf("reading bytes %d-%d of blob %s of %d bytes: bad range", from, to, rs.digest, rs.size)
	}
	var out []byte
	what := fmt.Sprintf("fetching bytes %d-%d of blob %s", from, to, rs.digest)
	err := rs.s.withRetries(ctx, what, true, func() error {
		b, err := rs.try(ctx, from, to)
		out = b
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, classifyRemote(err))
	}
	return out, nil
}

func (rs *rangeSource) try(ctx context.Context, from, to int64) ([]byte, error) {
	c, err := rs.reg.blobClient(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rs.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to-1))
	rs.requests.Add(1)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && from == 0 && to == rs.size:
	case resp.StatusCode == http.StatusOK:
		return nil, errNoRange
	case resp.StatusCode == http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != from {
			return nil, fmt.Errorf("%w: asked for bytes from %d, got Content-Range %q", errNoRange, from, resp.Header.Get("Content-Range"))
		}
	default:
		return nil, newStatusError(resp)
	}
	buf := make([]byte, to-from)
	n, err := io.ReadFull(resp.Body, buf)
	rs.fetched.Add(int64(n))
	if err != nil {
		return nil, fmt.Errorf("response ended after %d of %d bytes: %w", n, len(buf), io.ErrUnexpectedEOF)
	}
	return buf, nil
}

// whole streams the entire blob from byte 0, resuming broken downloads
// (see blobReader); for registries without Range support.
func (rs *rangeSource) whole(ctx context.Context) (io.ReadCloser, error) {
	rc, err := rs.reg.blob(ctx, v1.Descriptor{Digest: rs.digest, Size: rs.size})
	if err != nil {
		return nil, err
	}
	return &countingReader{rc: rc, n: &rs.fetched}, nil
}

type countingReader struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }
