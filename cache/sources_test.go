package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPullOCILayout(t *testing.T) {
	img, layers := threeLayers(t)
	other := imageOf(t, "linux/amd64", gzipLayer(t, ti.Layer(ti.File("other", "x"))))
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{AnnotationRefName: "v1"})))
	s := openStore(t, "")
	// One image: found without a name.
	got, err := s.Pull(context.Background(), "oci:"+dir, PullOptions{})
	must(t, err)
	checkImageAgainst(t, got, layers)
	got.Close()
	if got.Ref != "oci:"+dir {
		t.Errorf("ref = %q", got.Ref)
	}
	must(t, p.AppendImage(other, layout.WithAnnotations(map[string]string{AnnotationRefName: "other"})))
	got, err = s.Pull(context.Background(), "oci:"+dir+":v1", PullOptions{})
	must(t, err)
	checkImageAgainst(t, got, layers)
	got.Close()
	_, err = s.Pull(context.Background(), "oci:"+dir, PullOptions{})
	if !isErr(err, ErrNotFound) || !contains(err, "other, v1") {
		t.Errorf("two images, no name: err = %v, want ErrNotFound listing the names", err)
	}
	_, err = s.Pull(context.Background(), "oci:"+dir+":nope", PullOptions{})
	if !isErr(err, ErrNotFound) || !contains(err, `"nope"`) {
		t.Errorf("unknown name: err = %v", err)
	}
	// Our own store is a layout too: pull from it by its ref names.
	s2 := openStore(t, "")
	got, err = s2.Pull(context.Background(), "oci:"+s.Dir()+":oci:"+dir+":v1", PullOptions{})
	must(t, err)
	checkImageAgainst(t, got, layers)
	got.Close()
}

func TestPullDockerArchiveCompressed(t *testing.T) {
	img, layers := threeLayers(t)
	path := filepath.Join(t.TempDir(), "img.tar")
	tag, err := name.NewTag("example.com/three:v1")
	must(t, err)
	must(t, tarball.WriteToFile(path, tag, img))
	s := openStore(t, "")
	got, err := s.Pull(context.Background(), "docker-archive:"+path, PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, layers)
	checkLayout(t, s.Dir(), "docker-archive:"+path)
	g, err := s.Pull(context.Background(), "docker-archive:"+path+":example.com/three:v1", PullOptions{})
	must(t, err)
	g.Close()
	if _, err := s.Pull(context.Background(), "docker-archive:"+path+":nope:v2", PullOptions{}); !isErr(err, ErrNotFound) {
		t.Errorf("unknown tag: err = %v", err)
	}
}

// dockerSave writes a legacy `docker save` archive with uncompressed
// layers, as docker does.
func dockerSave(t *testing.T, path string, cfg []byte, layerTars [][]byte, tags []string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o644}))
		tw.Write(b)
	}
	var names []string
	for i, l := range layerTars {
		dir := string(rune('a'+i)) + "0000"
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}))
		if i > 0 && bytes.Equal(l, layerTars[0]) { // docker links repeated layers
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "/layer.tar", Linkname: "../a0000/layer.tar"}))
		} else {
			add(dir+"/layer.tar", l)
		}
		names = append(names, dir+"/layer.tar")
	}
	add("config.json", cfg)
	m, _ := json.Marshal([]archiveManifest{{Config: "config.json", RepoTags: tags, Layers: names}})
	add("manifest.json", m)
	must(t, tw.Close())
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func TestPullDockerArchiveUncompressed(t *testing.T) {
	l1 := plainLayer(ti.Layer(ti.File("a", "one")))
	l2 := plainLayer(ti.Layer(ti.File("b", "two")))
	img := imageOf(t, "linux/amd64", l1, l2, l1)
	cfg, err := img.RawConfigFile()
	must(t, err)
	path := filepath.Join(t.TempDir(), "save.tar")
	dockerSave(t, path, cfg, [][]byte{l1.tar, l2.tar, l1.tar}, []string{"busybox:latest"})
	s := openStore(t, "")
	got, err := s.Pull(context.Background(), "docker-archive:"+path+":busybox", PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, []*testLayer{l1, l2, l1})
	for _, l := range got.Layers {
		if l.MediaType != types.OCIUncompressedLayer || l.Digest != l.DiffID {
			t.Errorf("layer %s: media type %s, diffID %s; want uncompressed with digest == diffID", l.Digest, l.MediaType, l.DiffID)
		}
		if exists(s.unpackedPath(l.DiffID)) {
			t.Errorf("layer %s has a needless unpacked copy", l.Digest)
		}
	}
	// A config that lies about a diffID fails the pull, naming the layer.
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = v1.Hash{Algorithm: "sha256", Hex: string(bytes.Repeat([]byte("ab"), 32))}
	bad, _ := json.Marshal(cf)
	dockerSave(t, path, bad, [][]byte{l1.tar, l2.tar, l1.tar}, nil)
	_, err = openStore(t, "").Pull(context.Background(), "docker-archive:"+path, PullOptions{})
	if !isErr(err, ErrDigestMismatch) || !contains(err, cf.RootFS.DiffIDs[1].String()) {
		t.Errorf("lying config: err = %v, want ErrDigestMismatch naming the diffID", err)
	}
}
