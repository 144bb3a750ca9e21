package cache

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// registrySource reads from a registry. Manifests go through one
// remote.Puller, so the ping and token exchange happen once per pull;
// blobs through blobReader (retries, resumption by Range) over a
// transport authenticated once. Every request runs over a stallTransport,
// and go-containerregistry's own retries are off: retries are the
// Store's, with one policy (Network) for everything.
type registrySource struct {
	s    *Store
	ref  name.Reference
	opts []remote.Option
	base http.RoundTripper // stall-watching, unauthenticated

	mu     sync.Mutex // guards client
	client *http.Client
}

func (s *Store) newRegistrySource(ctx context.Context, spec *refSpec) (*registrySource, error) {
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	if s.insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --insecure asks for it
	}
	base := &stallTransport{inner: tr, timeout: s.net.StallTimeout}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithUserAgent("ocifs"),
		remote.WithTransport(base),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	// Clipped, so that appending per-call options never shares a backing
	// array between concurrent calls.
	return &registrySource{s: s, ref: spec.reg, base: base, opts: slices.Clip(append(opts, remote.Reuse(p)))}, nil
}

func (r *registrySource) root(ctx context.Context) (v1.Descriptor, []byte, error) {
	var d *remote.Descriptor
	err := r.s.withRetries(ctx, "fetching manifest "+r.ref.String(), false, func() (err error) {
		d, err = remote.Get(r.ref, append(r.opts, remote.WithContext(ctx))...)
		return err
	})
	if err != nil {
		return v1.Descriptor{}, nil, classifyRemote(err)
	}
	return d.Descriptor, d.Manifest, nil
}

func (r *registrySource) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	var got *remote.Descriptor
	err := r.s.withRetries(ctx, "fetching manifest "+d.Digest.String(), true, func() (err error) {
		got, err = remote.Get(r.ref.Context().Digest(d.Digest.String()), append(r.opts, remote.WithContext(ctx))...)
		return err
	})
	if err != nil {
		return nil, classifyRemote(err)
	}
	return got.Manifest, nil
}

// blob returns a reader of the blob that retries and resumes on its own;
// its errors are final.
func (r *registrySource) blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	c, err := r.blobClient(ctx)
	if err != nil {
		return nil, classifyRemote(err)
	}
	repo := r.ref.Context()
	url := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d.Digest)
	return &blobReader{ctx: ctx, s: r.s, client: c, url: url, digest: d.Digest, size: d.Size}, nil
}

// blobClient returns the HTTP client for blob requests, authenticating
// (ping, token exchange) on first use. A failure is not kept: the next
// layer tries again.
func (r *registrySource) blobClient(ctx context.Context) (*http.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		return r.client, nil
	}
	repo := r.ref.Context()
	auth, err := authn.Resolve(ctx, r.s.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("finding credentials for %s: %w", repo.RegistryStr(), err)
	}
	var rt http.RoundTripper
	err = r.s.withRetries(ctx, "authenticating to "+repo.RegistryStr(), true, func() (err error) {
		rt, err = transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(r.base, "ocifs"), []string{repo.Scope(transport.PullScope)})
		return err
	})
	if err != nil {
		return nil, err
	}
	r.client = &http.Client{Transport: rt}
	return r.client, nil
}

func (r *registrySource) close() error { return nil }
