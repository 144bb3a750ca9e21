package testimage

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TB is the part of testing.TB these helpers use; testing.TB satisfies it.
// (An interface of our own keeps the testing package out of binaries that
// build images from fixtures, such as the demo generator.)
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

type imageConfig struct {
	compression []Compression
	docker      bool
	platform    v1.Platform
	edit        []func(*v1.Config)
}

// ImageOpt configures Image and Build.
type ImageOpt func(*imageConfig)

// WithCompression sets the layers' compression: one value for all layers,
// or one per layer. Default gzip.
func WithCompression(cs ...Compression) ImageOpt {
	return func(c *imageConfig) { c.compression = cs }
}

// WithDockerMediaTypes makes a Docker schema 2 image instead of OCI.
func WithDockerMediaTypes() ImageOpt { return func(c *imageConfig) { c.docker = true } }

// WithPlatform sets os/arch[/variant] in the config (default linux and the
// host's architecture).
func WithPlatform(p string) ImageOpt {
	return func(c *imageConfig) { c.platform = ParsePlatform(p) }
}

// WithConfig edits the runtime config (Env, Cmd, ...).
func WithConfig(f func(*v1.Config)) ImageOpt {
	return func(c *imageConfig) { c.edit = append(c.edit, f) }
}

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) v1.Platform {
	parts := strings.SplitN(s, "/", 3)
	p := v1.Platform{OS: parts[0]}
	if len(parts) > 1 {
		p.Architecture = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p
}

// Image builds an image from uncompressed tar layers (bottom first), or
// fails t.
func Image(t TB, layers [][]byte, opts ...ImageOpt) v1.Image {
	t.Helper()
	img, err := Build(layers, opts...)
	if err != nil {
		t.Fatalf("building test image: %v", err)
	}
	return img
}

// Build is Image returning its error. Same input, same digest.
func Build(layers [][]byte, opts ...ImageOpt) (v1.Image, error) {
	c := imageConfig{platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}
	for _, o := range opts {
		o(&c)
	}
	if n := len(c.compression); n > 1 && n != len(layers) {
		return nil, fmt.Errorf("building image: %d compressions for %d layers", n, len(layers))
	}
	img := base(c.docker)
	for i, tb := range layers {
		l, err := NewLayer(tb, c.compressionOf(i), c.docker)
		if err != nil {
			return nil, fmt.Errorf("building layer %d: %w", i, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: fmt.Sprintf("testimage layer %d", i)},
		})
		if err != nil {
			return nil, fmt.Errorf("appending layer %d: %w", i, err)
		}
	}
	return finishConfig(img, c)
}

func (c imageConfig) compressionOf(i int) Compression {
	switch len(c.compression) {
	case 0:
		return Gzip
	case 1:
		return c.compression[0]
	}
	return c.compression[i]
}

func base(docker bool) v1.Image {
	if docker {
		return empty.Image
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

func finishConfig(img v1.Image, c imageConfig) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: Epoch}
	cf.OS, cf.Architecture, cf.Variant = c.platform.OS, c.platform.Architecture, c.platform.Variant
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	for _, f := range c.edit {
		f(&cf.Config)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return img, nil
}
