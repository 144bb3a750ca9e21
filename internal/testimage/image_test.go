package testimage

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/internal/testregistry"
)

func threeLayers() [][]byte {
	return [][]byte{
		Layer(Dir("etc"), File("etc/hostname", "demo\n")),
		Layer(Dir("etc"), File("etc/motd", "hello\n"), Whiteout("etc/hostname")),
		Layer(Dir("usr"), Dir("usr/bin"), File("usr/bin/tool", "#!/bin/sh\n", Mode(0o755))),
	}
}

func mixedImage(t *testing.T) v1.Image {
	return Image(t, threeLayers(), WithCompression(Gzip, Zstd, Uncompressed), WithPlatform("linux/amd64"))
}

func TestImageMediaTypesAndDiffIDs(t *testing.T) {
	img := mixedImage(t)
	if err := Verify(img); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Fatalf("manifest %s, config %s: want OCI types", m.MediaType, m.Config.MediaType)
	}
	want := []types.MediaType{types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		if l.MediaType != want[i] {
			t.Errorf("layer %d media type %s, want %s", i, l.MediaType, want[i])
		}
		if d := sha(threeLayers()[i]); cf.RootFS.DiffIDs[i] != d {
			t.Errorf("layer %d diffID %s, want sha256 of the tar %s", i, cf.RootFS.DiffIDs[i], d)
		}
	}
	if m.Layers[2].Digest != cf.RootFS.DiffIDs[2] {
		t.Error("uncompressed layer's digest differs from its diffID")
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(Epoch) {
		t.Errorf("config platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
}

func TestImageDeterministic(t *testing.T) {
	a, _ := mixedImage(t).Digest()
	b, _ := mixedImage(t).Digest()
	if a != b {
		t.Fatalf("same input, digests %s and %s", a, b)
	}
	docker := Image(t, threeLayers(), WithDockerMediaTypes())
	if err := validate.Image(docker); err != nil {
		t.Fatalf("validate docker image: %v", err)
	}
	if mt, _ := docker.MediaType(); mt != types.DockerManifestSchema2 {
		t.Fatalf("docker image media type %s", mt)
	}
}

func TestIndexWithAttestations(t *testing.T) {
	amd := Image(t, threeLayers(), WithPlatform("linux/amd64"))
	arm := Image(t, threeLayers()[:1], WithPlatform("linux/arm64/v8"))
	idx := IndexWithAttestations(t, amd, arm)
	for _, img := range []v1.Image{amd, arm} {
		if err := Verify(img); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 4 || im.MediaType != types.OCIImageIndex {
		t.Fatalf("index %s with %d manifests, want OCI index with 4", im.MediaType, len(im.Manifests))
	}
	armDigest, _ := arm.Digest()
	if p := im.Manifests[2].Platform; p == nil || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Fatalf("manifest 2 platform %+v", p)
	}
	att := im.Manifests[3]
	attImg, err := idx.Image(att.Digest)
	if err != nil {
		t.Fatal(err)
	}
	am, _ := attImg.Manifest()
	if len(am.Layers) != 1 || am.Layers[0].MediaType != InTotoMediaType {
		t.Fatalf("attestation manifest layers %+v", am.Layers)
	}
	if att.Platform.OS != "unknown" || att.Annotations[AnnotationRefType] != AttestationManifest ||
		att.Annotations[AnnotationRefDigest] != armDigest.String() {
		t.Fatalf("attestation descriptor %+v", att)
	}
}

func TestLayoutReadBySkopeo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "oci")
	img := mixedImage(t)
	WriteLayout(t, dir, "v1", img)
	WriteLayout(t, dir, "v1", img) // replacing a tag keeps one entry
	WriteLayoutIndex(t, dir, "multi", Index(t, img))
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, _ := p.ImageIndex()
	im, _ := ii.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("layout index has %d manifests, want 2", len(im.Manifests))
	}
	skopeo := testenv.RequireTool(t, "skopeo", "apt-get install -y skopeo")
	out, err := exec.Command(skopeo, "inspect", "oci:"+dir+":v1").Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var info struct {
		Digest string
		Layers []string
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if info.Digest != d.String() || len(info.Layers) != 3 {
		t.Fatalf("skopeo sees digest %s with %d layers, want %s with 3", info.Digest, len(info.Layers), d)
	}
}

func TestDockerArchive(t *testing.T) {
	f := filepath.Join(t.TempDir(), "img.tar")
	img := Image(t, threeLayers())
	WriteDockerArchive(t, f, "ocifs.test/demo:latest", img)
	tag, _ := name.NewTag("ocifs.test/demo:latest")
	got, err := tarball.ImageFromPath(f, &tag)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := got.ConfigName()
	b, _ := img.ConfigName()
	if a != b {
		t.Fatalf("archive config %s, want %s", a, b)
	}
}

func TestPushToRegistry(t *testing.T) {
	r := testregistry.Start(t)
	img := mixedImage(t)
	ref := r.Repo("mixed") + ":v1"
	Push(t, img, ref)
	PushIndex(t, IndexWithAttestations(t, img), r.Repo("mixed")+":multi")
	pr, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(pr)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(got); err != nil {
		t.Fatalf("validating pulled image: %v", err)
	}
}

// TestVerifyCatchesBadDiffID makes sure Verify can fail.
func TestVerifyCatchesBadDiffID(t *testing.T) {
	img := mixedImage(t)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = sha([]byte("not the tar"))
	bad, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(bad); err == nil {
		t.Fatal("Verify accepted a wrong diffID")
	}
}
