package testimage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// RefNameAnnotation tags a manifest inside an OCI layout (what skopeo's
// and umoci's oci:DIR:TAG look up).
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Push writes img to the registry reference ref ("host:port/repo:tag").
func Push(t TB, img v1.Image, ref string, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("parsing %q: %v", ref, err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// PushIndex writes idx (and all its manifests) to ref.
func PushIndex(t TB, idx v1.ImageIndex, ref string, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("parsing %q: %v", ref, err)
	}
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// WriteLayout adds img to the OCI layout at dir (created if missing) under
// tag, replacing an earlier manifest of the same tag.
func WriteLayout(t TB, dir, tag string, img v1.Image) {
	t.Helper()
	if err := SaveLayout(dir, tag, img); err != nil {
		t.Fatalf("writing layout %s:%s: %v", dir, tag, err)
	}
}

// WriteLayoutIndex is WriteLayout for an index.
func WriteLayoutIndex(t TB, dir, tag string, idx v1.ImageIndex) {
	t.Helper()
	p, err := openLayout(dir)
	if err == nil {
		err = p.ReplaceIndex(idx, match.Annotation(RefNameAnnotation, tag), tagOpt(tag))
	}
	if err != nil {
		t.Fatalf("writing layout %s:%s: %v", dir, tag, err)
	}
}

// SaveLayout is WriteLayout returning its error.
func SaveLayout(dir, tag string, img v1.Image) error {
	p, err := openLayout(dir)
	if err != nil {
		return err
	}
	return p.ReplaceImage(img, match.Annotation(RefNameAnnotation, tag), tagOpt(tag))
}

func tagOpt(tag string) layout.Option {
	return layout.WithAnnotations(map[string]string{RefNameAnnotation: tag})
}

func openLayout(dir string) (layout.Path, error) {
	_, err := os.Stat(filepath.Join(dir, "index.json"))
	if err == nil {
		return layout.FromPath(dir)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("opening layout: %w", err)
	}
	return layout.Write(dir, empty.Index)
}

// WriteDockerArchive writes img as a `docker save` tarball to file, with
// tag (e.g. "ocifs.test/demo:latest") in its manifest.json RepoTags.
func WriteDockerArchive(t TB, file, tag string, img v1.Image) {
	t.Helper()
	tg, err := name.NewTag(tag)
	if err != nil {
		t.Fatalf("parsing tag %q: %v", tag, err)
	}
	if err := tarball.WriteToFile(file, tg, img); err != nil {
		t.Fatalf("writing docker archive %s: %v", file, err)
	}
}
