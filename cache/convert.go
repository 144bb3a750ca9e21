package cache

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AnnotationSourceDigest, on an index.json entry, holds the digest of the
// manifest as the source served it when the store keeps a converted one.
const AnnotationSourceDigest = "com.github.ocifs.source-digest"

// Docker schema 2 manifests are stored converted to OCI manifests, as
// `skopeo copy docker://… oci:…` does: skopeo and umoci only look at
// OCI-typed entries of an OCI layout. Only the manifest changes (media
// types); config and layer blobs are the same bytes. The original manifest
// is kept as a blob too, and Image.Digest stays the source's digest, the
// one users know.
var dockerToOCI = map[types.MediaType]types.MediaType{
	types.DockerManifestSchema2:   types.OCIManifestSchema1,
	types.DockerConfigJSON:        types.OCIConfigJSON,
	types.DockerLayer:             types.OCILayer,
	types.DockerUncompressedLayer: types.OCIUncompressedLayer,
	types.DockerForeignLayer:      types.OCIRestrictedLayer,
	types.MediaType("application/vnd.docker.image.rootfs.diff.tar.zstd"): types.OCILayerZStd,
}

// storedManifest is the manifest written to the store for r: r's own when
// it is OCI, else its OCI conversion.
type storedManifest struct {
	raw      []byte
	desc     v1.Descriptor
	manifest *v1.Manifest
	source   v1.Hash // zero unless converted
}

func ociManifest(r *resolved) (*storedManifest, error) {
	if r.desc.MediaType != types.DockerManifestSchema2 {
		return &storedManifest{raw: r.rawManifest, desc: r.desc, manifest: r.manifest}, nil
	}
	m := *r.manifest
	m.MediaType = convertType(m.MediaType)
	m.Config.MediaType = convertType(m.Config.MediaType)
	m.Layers = append([]v1.Descriptor(nil), m.Layers...)
	for i := range m.Layers {
		m.Layers[i].MediaType = convertType(m.Layers[i].MediaType)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("converting manifest %s to OCI: %w", r.desc.Digest, err)
	}
	return &storedManifest{
		raw:      raw,
		desc:     v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: sha256Hash(raw)},
		manifest: &m,
		source:   r.desc.Digest,
	}, nil
}

func convertType(mt types.MediaType) types.MediaType {
	if o, ok := dockerToOCI[mt]; ok {
		return o
	}
	return mt
}

// sourceDigest is the digest the source gave the entry's manifest.
func sourceDigest(d v1.Descriptor) v1.Hash {
	if s := d.Annotations[AnnotationSourceDigest]; s != "" {
		if h, err := v1.NewHash(s); err == nil {
			return h
		}
	}
	return d.Digest
}
