package cache

import (
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func isErr(err, target error) bool { return err != nil && errors.Is(err, target) }

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

func addendum(img v1.Image, p *v1.Platform, ann map[string]string) mutate.IndexAddendum {
	return mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p, Annotations: ann}}
}

func indexOf(t testing.TB, adds ...mutate.IndexAddendum) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, adds...)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
