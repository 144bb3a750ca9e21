package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/ocifs/ocifs/internal/fswalk"
	"github.com/ocifs/ocifs/internal/oracle"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

func TestDeterministic(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	da, err := WriteLayout(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := WriteLayout(b)
	if err != nil {
		t.Fatal(err)
	}
	if da != db {
		t.Fatalf("two demo layouts differ: %s, %s", da, db)
	}
	ia, _ := os.ReadFile(filepath.Join(a, "index.json"))
	ib, _ := os.ReadFile(filepath.Join(b, "index.json"))
	if !bytes.Equal(ia, ib) {
		t.Fatalf("index.json differs:\n%s\n%s", ia, ib)
	}
	p, err := layout.FromPath(a)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(da)
	if err != nil {
		t.Fatal(err)
	}
	if err := ti.Verify(img); err != nil {
		t.Fatalf("verifying the demo as read back from its layout: %v", err)
	}
	m, _ := img.Manifest()
	if len(m.Layers) != 4 {
		t.Fatalf("demo has %d layers, want 4", len(m.Layers))
	}
}

func TestCapability(t *testing.T) {
	if !bytes.Equal(Capability(capNetBindService), ti.CapNetBindService()) {
		t.Fatalf("Capability(cap_net_bind_service) = %x, testimage has %x", Capability(capNetBindService), ti.CapNetBindService())
	}
}

// TestAgainstUmoci unpacks the demo with umoci and compares with Expect.
func TestAgainstUmoci(t *testing.T) {
	img, err := Image()
	if err != nil {
		t.Fatal(err)
	}
	root := oracle.UmociUnpackImage(t, img)
	recs, err := fswalk.Walk(root, fswalk.WalkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.String())
	}
	want := Expect()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("umoci unpack of the demo:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
