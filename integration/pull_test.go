package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// pullImage is a three-layer image with one gzip, one zstd and one
// uncompressed layer.
func pullImage(t *testing.T, platform string) v1.Image {
	return ti.Image(t, [][]byte{
		ti.Layer(ti.Dir("etc"), ti.File("etc/os-release", "ID=ocifs-"+platform+"\n"), ti.File("bin/sh", strings.Repeat("ELF", 30000), ti.Mode(0o755))),
		ti.Layer(ti.File("etc/hostname", "zstd\n"), ti.Whiteout("bin/sh")),
		ti.Layer(ti.File("etc/motd", "plain\n"), ti.Hardlink("etc/motd2", "etc/motd")),
	}, ti.WithCompression(ti.Gzip, ti.Zstd, ti.Uncompressed), ti.WithPlatform(platform))
}

// lsEntry is one image of `ocifs cache ls --json`.
type lsEntry struct {
	Ref, Platform, Digest, Stored, Problem string
	Layers                                 []struct {
		Digest, DiffID, MediaType string
		Size, Unpacked, Index     int64
		Entries                   int
	}
}

func cacheLs(t *testing.T) []lsEntry {
	t.Helper()
	var out []lsEntry
	if err := json.Unmarshal([]byte(mustOcifs(t, nil, "cache", "ls", "--json")), &out); err != nil {
		t.Fatalf("cache ls --json: %v", err)
	}
	return out
}

func TestPullRealRegistry(t *testing.T) {
	reg := testregistry.Start(t)
	img := pullImage(t, "linux/amd64")
	ref := reg.Repo("three") + ":v1"
	ti.Push(t, img, ref)
	digest, _ := img.Digest()

	stdout, stderr, code := runOcifs(t, nil, "pull", ref)
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("pull (not a terminal): exit %d, stdout %q, stderr %q; want 0 and silence", code, stdout, stderr)
	}
	out := mustOcifs(t, nil, "pull", "--verbose", ref)
	if !strings.Contains(out, digest.String()) || !strings.Contains(out, "3 layers, 0 fetched") {
		t.Errorf("pull --verbose of a stored image: %q", out)
	}
	ls := cacheLs(t)
	if len(ls) != 1 || ls[0].Ref != ref || ls[0].Digest != digest.String() || ls[0].Problem != "" || len(ls[0].Layers) != 3 {
		t.Fatalf("cache ls: %+v", ls)
	}
	for i, mt := range []string{"application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar"} {
		if l := ls[0].Layers[i]; l.MediaType != mt || l.Size == 0 || l.Index == 0 || (i < 2) != (l.Unpacked > 0) {
			t.Errorf("layer %d: %+v (want %s, an unpacked copy only if compressed)", i, l, mt)
		}
	}
	mustOcifs(t, nil, "cache", "verify")
	checkSkopeo(t, ref, digest, img)
	checkUmoci(t, ref)
}

// checkSkopeo reads our store with skopeo, which no one here wrote.
func checkSkopeo(t *testing.T, ref string, digest v1.Hash, img v1.Image) {
	t.Helper()
	skopeo := testenv.RequireTool(t, "skopeo", "apt-get install -y skopeo")
	out, err := exec.Command(skopeo, "inspect", "oci:"+cacheDir(t)+":"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	var got struct {
		Digest       string
		Architecture string
		Layers       []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("skopeo inspect output: %v\n%s", err, out)
	}
	m, _ := img.Manifest()
	if got.Digest != digest.String() || got.Architecture != "amd64" || len(got.Layers) != len(m.Layers) {
		t.Fatalf("skopeo inspect = %+v, want digest %s amd64 %d layers", got, digest, len(m.Layers))
	}
	for i, l := range m.Layers {
		if got.Layers[i] != l.Digest.String() {
			t.Errorf("skopeo layer %d = %s, want %s", i, got.Layers[i], l.Digest)
		}
	}
	// skopeo copies (and so re-verifies) every blob out of our layout.
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command(skopeo, "copy", "oci:"+cacheDir(t)+":"+ref, "dir:"+dst).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy out of the cache: %v\n%s", err, out)
	}
}

// checkUmoci lists and unpacks the image from our store with umoci.
func checkUmoci(t *testing.T, ref string) {
	t.Helper()
	umoci := testenv.RequireTool(t, "umoci", "apt-get install -y umoci")
	out, err := exec.Command(umoci, "ls", "--layout", cacheDir(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ref) {
		t.Fatalf("umoci ls --layout: %v\n%s", err, out)
	}
}

func TestPullMultiPlatform(t *testing.T) {
	reg := testregistry.Start(t)
	idx := ti.IndexWithAttestations(t, pullImage(t, "linux/amd64"), pullImage(t, "linux/arm64/v8"), pullImage(t, "linux/riscv64"))
	ref := reg.Repo("multi") + ":v1"
	ti.PushIndex(t, idx, ref)

	mustOcifs(t, nil, "pull", "--platform", "linux/arm64", ref)
	mustOcifs(t, nil, "--platform", "linux/riscv64", "pull", ref)
	ls := cacheLs(t)
	if len(ls) != 2 || ls[0].Platform != "linux/arm64" || ls[1].Platform != "linux/riscv64" {
		t.Fatalf("cache ls after two platforms: %+v", ls)
	}
	_, stderr, code := runOcifs(t, nil, "pull", "--platform", "linux/s390x", ref)
	if code != 3 || !strings.Contains(stderr, "available: linux/amd64, linux/arm64, linux/riscv64") || strings.Contains(stderr, "unknown") {
		t.Fatalf("pull for a missing platform: exit %d, stderr %q", code, stderr)
	}
	mustOcifs(t, nil, "cache", "verify")
}

// TestPullBadInput: each bad input gives one "ocifs:" line, a hint at
// most, and the documented exit code.
func TestPullBadInput(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Repo("exists") + ":v1"
	ti.Push(t, pullImage(t, "linux/amd64"), ref)
	authReg := testregistry.StartWithAuth(t, "alice", "secret")
	for _, tc := range []struct {
		name, ref string
		code      int
		text      string
	}{
		{"unknown image", reg.Repo("nothere") + ":v1", 3, "resolving"},
		{"unknown tag", reg.Repo("exists") + ":nope", 3, "manifest unknown"},
		{"malformed reference", "UPPER/Case::x", 3, "parsing image reference"},
		{"unreachable registry", closedAddr(t) + "/x/y:v1", 1, "connection refused"},
		{"unauthorized", authReg.Repo("x") + ":v1", 3, "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runOcifs(t, nil, "pull", tc.ref)
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			ok := code == tc.code && stdout == "" && strings.HasPrefix(lines[0], "ocifs: ") && strings.Contains(lines[0], tc.text)
			if len(lines) > 2 || (len(lines) == 2 && !strings.HasPrefix(lines[1], "hint: ")) {
				ok = false
			}
			if !ok {
				t.Fatalf("pull %s: exit %d (want %d), stdout %q, stderr:\n%s", tc.ref, code, tc.code, stdout, stderr)
			}
		})
	}
	if ls := cacheLs(t); len(ls) != 0 {
		t.Errorf("failed pulls recorded images: %+v", ls)
	}
}

func TestCacheVerifyFindsCorruptBlob(t *testing.T) {
	reg := testregistry.Start(t)
	img := pullImage(t, "linux/amd64")
	ref := reg.Repo("corrupt") + ":v1"
	ti.Push(t, img, ref)
	mustOcifs(t, nil, "pull", ref)
	layers, _ := img.Layers()
	d, _ := layers[1].Digest()
	blob := filepath.Join(cacheDir(t), "blobs", "sha256", d.Hex)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runOcifs(t, nil, "cache", "verify")
	if code != 1 || !strings.Contains(stdout, "bad blob "+d.String()) || !strings.HasPrefix(stderr, "ocifs: cache verify: 1 problem") {
		t.Fatalf("cache verify: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	stdout, _, code = runOcifs(t, nil, "cache", "verify", "--repair")
	if code != 1 || !strings.Contains(stdout, "(removed)") {
		t.Fatalf("cache verify --repair: exit %d (want 1: problems were found)\n%s", code, stdout)
	}
	// The next pull fetches the removed blob again and the store is clean.
	mustOcifs(t, nil, "pull", ref)
	mustOcifs(t, nil, "cache", "verify")
	out := mustOcifs(t, nil, "cache", "prune", "--all")
	if !strings.Contains(out, "forgot "+ref) {
		t.Errorf("cache prune --all: %s", out)
	}
}

// TestPullDockerMediaTypes: a Docker schema 2 image is stored with its
// manifest converted to OCI (as skopeo copy does), so that skopeo reads
// it; the cache still reports the registry's digest.
func TestPullDockerMediaTypes(t *testing.T) {
	reg := testregistry.Start(t)
	img := ti.Image(t, [][]byte{ti.Layer(ti.File("a", "docker"))}, ti.WithDockerMediaTypes(), ti.WithPlatform("linux/amd64"))
	ref := reg.Repo("docker") + ":v1"
	ti.Push(t, img, ref)
	digest, _ := img.Digest()
	mustOcifs(t, nil, "pull", ref)
	ls := cacheLs(t)
	if len(ls) != 1 || ls[0].Digest != digest.String() || ls[0].Stored == "" || ls[0].Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Fatalf("cache ls: %+v", ls)
	}
	mustOcifs(t, nil, "cache", "verify")
	stored, err := v1.NewHash(ls[0].Stored)
	if err != nil {
		t.Fatal(err)
	}
	checkSkopeo(t, ref, stored, img)
	if out := mustOcifs(t, nil, "cache", "prune"); !strings.Contains(out, "removed 0 files") {
		t.Errorf("prune removed parts of the converted image: %s", out)
	}
}
