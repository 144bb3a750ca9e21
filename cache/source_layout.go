package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// layoutSource reads an OCI image layout directory (oci:DIR[:TAG]).
type layoutSource struct {
	path layout.Path
	spec *refSpec
}

func openLayoutSource(spec *refSpec) (*layoutSource, error) {
	if _, err := os.Stat(spec.path); err != nil {
		return nil, errorf(ErrNotFound, "no OCI layout there: %v", unwrapPathError(err))
	}
	p, err := layout.FromPath(spec.path)
	if err != nil {
		return nil, errorf(ErrInvalidImage, "%s is not an OCI image layout: %v", spec.path, unwrapPathError(err))
	}
	return &layoutSource{path: p, spec: spec}, nil
}

// root picks the index.json entry whose ref.name is TAG; without TAG, the
// only entry or else the one named latest.
func (l *layoutSource) root(ctx context.Context) (v1.Descriptor, []byte, error) {
	ii, err := l.path.ImageIndex()
	if err != nil {
		return v1.Descriptor{}, nil, errorf(ErrInvalidImage, "reading %s/index.json: %v", l.spec.path, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, nil, errorf(ErrInvalidImage, "parsing %s/index.json: %v", l.spec.path, err)
	}
	d, err := pickLayoutEntry(im, l.spec.tag)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	raw, err := l.manifest(ctx, d)
	return d, raw, err
}

func pickLayoutEntry(im *v1.IndexManifest, tag string) (v1.Descriptor, error) {
	var names []string
	var latest []v1.Descriptor
	for _, d := range im.Manifests {
		n := d.Annotations[AnnotationRefName]
		if tag != "" && n == tag {
			return d, nil
		}
		if n == "latest" {
			latest = append(latest, d)
		}
		if n != "" {
			names = append(names, n)
		}
	}
	switch {
	case tag == "" && len(im.Manifests) == 1:
		return im.Manifests[0], nil
	case tag == "" && len(latest) == 1:
		return latest[0], nil
	case len(im.Manifests) == 0:
		return v1.Descriptor{}, errorf(ErrNotFound, "the layout lists no images")
	}
	sort.Strings(names)
	list := strings.Join(names, ", ")
	if list == "" {
		list = "(none)"
	}
	if tag == "" {
		return v1.Descriptor{}, errorf(ErrNotFound, "the layout holds %d images and none is named latest; add :NAME, one of: %s", len(im.Manifests), list)
	}
	return v1.Descriptor{}, errorf(ErrNotFound, "no image named %q in the layout; names: %s", tag, list)
}

func (l *layoutSource) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	if d.Size > maxManifestSize {
		return nil, errorf(ErrInvalidImage, "manifest %s is too large (%d bytes)", d.Digest, d.Size)
	}
	b, err := l.path.Bytes(d.Digest)
	if err != nil {
		return nil, layoutBlobError(d, err)
	}
	return b, nil
}

func (l *layoutSource) blob(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	rc, err := l.path.Blob(d.Digest)
	if err != nil {
		return nil, layoutBlobError(d, err)
	}
	return rc, nil
}

func layoutBlobError(d v1.Descriptor, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(ErrNotFound, "blob %s is missing from the layout", d.Digest)
	}
	return fmt.Errorf("reading blob %s: %w", d.Digest, err)
}

func (l *layoutSource) close() error { return nil }

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
