package testimage

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations buildkit puts on an attestation manifest's descriptor.
const (
	AnnotationRefType     = "vnd.docker.reference.type"
	AnnotationRefDigest   = "vnd.docker.reference.digest"
	AttestationManifest   = "attestation-manifest"
	InTotoMediaType       = "application/vnd.in-toto+json"
	inTotoPredicateAnnKey = "in-toto.io/predicate-type"
)

// Index builds a multi-arch OCI index over imgs; each entry's platform is
// read from the image's config (see WithPlatform).
func Index(t TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	idx, err := BuildIndex(false, imgs...)
	if err != nil {
		t.Fatalf("building test index: %v", err)
	}
	return idx
}

// IndexWithAttestations is Index plus, after each image, an attestation
// manifest as buildkit writes it: platform unknown/unknown, annotations
// vnd.docker.reference.type=attestation-manifest and
// vnd.docker.reference.digest=<the image's digest>, one in-toto layer.
// A puller choosing a platform must skip these entries.
func IndexWithAttestations(t TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	idx, err := BuildIndex(true, imgs...)
	if err != nil {
		t.Fatalf("building test index: %v", err)
	}
	return idx
}

// BuildIndex is Index/IndexWithAttestations returning its error.
func BuildIndex(attest bool, imgs ...v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading config of image %d: %w", i, err)
		}
		p := cf.Platform()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
		if !attest {
			continue
		}
		a, err := attestation(img)
		if err != nil {
			return nil, fmt.Errorf("building attestation for image %d: %w", i, err)
		}
		adds = append(adds, a)
	}
	return mutate.AppendManifests(idx, adds...), nil
}

func attestation(img v1.Image) (mutate.IndexAddendum, error) {
	d, err := img.Digest()
	if err != nil {
		return mutate.IndexAddendum{}, err
	}
	stmt, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": "https://slsa.dev/provenance/v0.2",
		"subject":       []any{map[string]any{"name": "test", "digest": map[string]string{"sha256": d.Hex}}},
		"predicate":     map[string]any{"builder": map[string]string{"id": "testimage"}},
	})
	if err != nil {
		return mutate.IndexAddendum{}, err
	}
	att := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	att = mutate.ConfigMediaType(att, types.OCIConfigJSON)
	att, err = mutate.Append(att, mutate.Addendum{
		Layer:       static.NewLayer(stmt, InTotoMediaType),
		Annotations: map[string]string{inTotoPredicateAnnKey: "https://slsa.dev/provenance/v0.2"},
	})
	if err != nil {
		return mutate.IndexAddendum{}, err
	}
	cf, err := att.ConfigFile()
	if err != nil {
		return mutate.IndexAddendum{}, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "unknown", "unknown"
	if att, err = mutate.ConfigFile(att, cf); err != nil {
		return mutate.IndexAddendum{}, err
	}
	return mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{
			AnnotationRefType:   AttestationManifest,
			AnnotationRefDigest: d.String(),
		},
	}}, nil
}
