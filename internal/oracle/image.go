package oracle

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/internal/testimage"
)

// UmociUnpackImage writes img to a fresh OCI layout that umoci 0.4.7 can
// read (zstd layers recompressed as gzip) and unpacks it with UmociUnpack.
func UmociUnpackImage(t testing.TB, img v1.Image) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "umoci", "apt-get install -y umoci")
	conv, err := WithoutZstd(img)
	if err != nil {
		t.Fatalf("preparing image for umoci: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	testimage.WriteLayout(t, dir, "oracle", conv)
	return UmociUnpack(t, dir, "oracle")
}

// WithoutZstd returns img with every zstd layer recompressed as gzip; the
// tar streams, hence the diffIDs and the config, stay the same. An image
// without zstd layers is returned as is.
func WithoutZstd(img v1.Image) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	hasZstd := false
	for _, l := range m.Layers {
		hasZstd = hasZstd || l.MediaType == types.OCILayerZStd
	}
	if !hasZstd {
		return img, nil
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	for i, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading layer %d: %w", i, err)
		}
		if d.MediaType == types.OCILayerZStd {
			if l, err = regzip(l); err != nil {
				return nil, fmt.Errorf("recompressing layer %d: %w", i, err)
			}
		}
		if out, err = mutate.AppendLayers(out, l); err != nil {
			return nil, fmt.Errorf("appending layer %d: %w", i, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return mutate.ConfigFile(out, cf)
}

func regzip(l v1.Layer) (v1.Layer, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tarBytes, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	return testimage.NewLayer(tarBytes, testimage.Gzip, false)
}
