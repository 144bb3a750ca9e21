package integration

import (
	"encoding/json"
	"strings"
	"testing"

	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

func TestInspect(t *testing.T) {
	reg := testregistry.Start(t)
	img := ti.Image(t, rulesLayers(), ti.WithCompression(ti.Gzip, ti.Zstd, ti.Uncompressed))
	ref := reg.Repo("rules") + ":v1"
	ti.Push(t, img, ref)
	digest, _ := img.Digest()

	out := mustOcifs(t, nil, "inspect", ref)
	layers, _ := img.Layers()
	for _, want := range []string{digest.String(), "layers    3", "gzip", "zstd", "none"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	for _, l := range layers {
		d, _ := l.Digest()
		if !strings.Contains(out, d.String()) {
			t.Errorf("inspect output lacks layer %s", d)
		}
	}

	var im struct {
		Digest string
		Layers []struct {
			Digest    string
			Entries   int
			Whiteouts int
		}
	}
	if err := json.Unmarshal([]byte(mustOcifs(t, nil, "inspect", "--json", ref)), &im); err != nil {
		t.Fatal(err)
	}
	if im.Digest != digest.String() || len(im.Layers) != 3 || im.Layers[1].Whiteouts != 3 || im.Layers[2].Whiteouts != 1 {
		t.Errorf("inspect --json = %+v; want digest %s, 3 layers with 0, 3 (opaque marker included), 1 whiteouts", im, digest)
	}
}

func TestInspectPath(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Repo("rules") + ":v1"
	ti.Push(t, ti.Image(t, rulesLayers()), ref)

	var motd struct {
		Merged struct {
			Type  string
			Size  int64
			Layer int
		}
		History []struct {
			Layer int
			Event string
			By    string
		}
	}
	if err := json.Unmarshal([]byte(mustOcifs(t, nil, "inspect", "--json", ref, "/etc/motd")), &motd); err != nil {
		t.Fatal(err)
	}
	var hist []string
	for _, h := range motd.History {
		hist = append(hist, h.Event+"@"+string(rune('0'+h.Layer)))
	}
	if got := strings.Join(hist, " "); got != "created@0 whited out@1 created@1" {
		t.Errorf("history of /etc/motd = %q; want created@0 whited out@1 created@1", got)
	}
	if motd.Merged.Type != "file" || motd.Merged.Size != int64(len("new motd\n")) || motd.Merged.Layer != 1 {
		t.Errorf("merged /etc/motd = %+v", motd.Merged)
	}

	out := mustOcifs(t, nil, "inspect", ref, "var/cache/apt/pkgcache.bin")
	for _, want := range []string{"merged    absent", "hidden", "by var/cache/.wh.apt"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect of a hidden path lacks %q:\n%s", want, out)
		}
	}
	out = mustOcifs(t, nil, "inspect", ref, "bin/ping")
	if !strings.Contains(out, "security.capability=0x") || !strings.Contains(out, "0755") {
		t.Errorf("inspect bin/ping lacks its capability or mode:\n%s", out)
	}

	if _, stderr, code := runOcifs(t, nil, "inspect", ref, "/no/such/path"); code != 1 || !strings.Contains(stderr, "no such path") {
		t.Errorf("inspect of a missing path: exit %d, stderr %q; want exit 1 naming it", code, stderr)
	}
	if _, stderr, code := runOcifs(t, nil, "inspect", ref, "../../etc"); code != 2 || !strings.Contains(stderr, `path "../../etc": name escapes the root`) {
		t.Errorf("inspect of an escaping path: exit %d, stderr %q; want 2 naming it", code, stderr)
	}
	if _, stderr, code := runOcifs(t, nil, "inspect", "--layers", "1", ref, "opt/tool/c"); code != 1 || !strings.Contains(stderr, "no such path in the first 1 of the") {
		t.Errorf("inspect --layers 1 of a later path: exit %d, stderr %q; want 1 saying which layers were searched", code, stderr)
	}
	if _, _, code := runOcifs(t, nil, "inspect", "--layers", "9", ref); code != 2 {
		t.Errorf("inspect --layers beyond the image: exit %d; want 2", code)
	}
}
