package cache

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

func TestDockerManifestStoredAsOCI(t *testing.T) {
	host, _ := startRegistry(t)
	l := gzipLayer(t, ti.Layer(ti.File("a", "docker")))
	l.mt = types.DockerLayer
	img := imageOf(t, "linux/amd64", l)
	img = mutate.MediaType(img, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	ref := host + "/test/docker:v1"
	digest := push(t, ref, img)
	s := openStore(t, "")
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	if got.Digest != digest {
		t.Errorf("Image.Digest = %s, want the registry's %s", got.Digest, digest)
	}
	if got.Manifest.MediaType != types.OCIManifestSchema1 || got.Manifest.Config.MediaType != types.OCIConfigJSON || got.Layers[0].MediaType != types.OCILayer {
		t.Errorf("stored manifest types: %s %s %s", got.Manifest.MediaType, got.Manifest.Config.MediaType, got.Layers[0].MediaType)
	}
	checkImageAgainst(t, got, []*testLayer{{blob: l.blob, tar: l.tar, mt: types.OCILayer}})
	checkLayout(t, s.Dir(), ref)
	if !exists(s.blobPath(digest)) {
		t.Error("the original manifest is not kept")
	}
	rep, err := s.Prune(context.Background(), PruneOptions{})
	must(t, err)
	if len(rep.Removed) != 0 {
		t.Errorf("prune removed %v", rep.Removed)
	}
	again, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	defer again.Close()
	if again.Digest != digest {
		t.Errorf("Get: Digest = %s, want %s", again.Digest, digest)
	}
	ii, err := layout.ImageIndexFromPath(s.Dir())
	must(t, err)
	im, _ := ii.IndexManifest()
	if im.Manifests[0].MediaType != types.OCIManifestSchema1 || im.Manifests[0].Annotations[AnnotationSourceDigest] != digest.String() {
		t.Errorf("index.json entry: %+v", im.Manifests[0])
	}
}
