package cache

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// registrySource reads from a registry through one remote.Puller, so the
// ping and token exchange happen once per pull.
type registrySource struct {
	ref  name.Reference
	opts []remote.Option
}

func (s *Store) newRegistrySource(ctx context.Context, spec *refSpec) (*registrySource, error) {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithUserAgent("ocifs"),
	}
	if s.insecure {
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --insecure asks for it
		opts = append(opts, remote.WithTransport(tr))
	}
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	// Clipped, so that appending per-call options never shares a backing
	// array between concurrent calls.
	return &registrySource{ref: spec.reg, opts: slices.Clip(append(opts, remote.Reuse(p)))}, nil
}

func (r *registrySource) root(ctx context.Context) (v1.Descriptor, []byte, error) {
	d, err := remote.Get(r.ref, append(r.opts, remote.WithContext(ctx))...)
	if err != nil {
		return v1.Descriptor{}, nil, classifyRemote(err)
	}
	return d.Descriptor, d.Manifest, nil
}

func (r *registrySource) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	got, err := remote.Get(r.ref.Context().Digest(d.Digest.String()), append(r.opts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, classifyRemote(err)
	}
	return got.Manifest, nil
}

func (r *registrySource) blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	l, err := remote.Layer(r.ref.Context().Digest(d.Digest.String()), append(r.opts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, classifyRemote(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, classifyRemote(err)
	}
	return rc, nil
}

func (r *registrySource) close() error { return nil }
