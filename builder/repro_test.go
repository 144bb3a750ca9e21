package builder

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
)

// variedDir is a small tree with every kind of entry and a directory big
// enough to be indexed.
func variedDir(t testing.TB) string {
	f := newFixture(t)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		f.file("usr/share/wide/"+name(i, 14), randomBytes(r, r.IntN(3000)), 0o644)
	}
	f.file("usr/bin/ping", randomBytes(r, 70000), 0o755)
	f.xattr("usr/bin/ping", "security.capability",
		[]byte("\x00\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.file("usr/bin/su", []byte("su"), 0o4755)
	f.hardlink("usr/bin/su-again", "usr/bin/su")
	f.symlink("usr/lib/long", strings.Repeat("long/", 30))
	f.xattr("usr/share", "user.note", []byte("a directory xattr"))
	if os.Geteuid() == 0 {
		f.mknod("dev/console", 0o20600, 5, 1)
		f.mknod("dev/big", 0o60600, 259, 70000)
		f.chown("usr/share/wide", 1000, 1001)
	}
	return f.dir
}

// TestReproducible builds the same tree twice, a second apart, and
// compares the bytes; a different label must change them (the test can
// fail).
func TestReproducible(t *testing.T) {
	requireE2fsprogs(t)
	src := variedDir(t)
	opts := Options{Seed: "sha256:0123", Headroom: DefaultHeadroom, Label: "rootfs"}
	_, a := buildDir(t, src, opts)
	time.Sleep(1100 * time.Millisecond) // a clock read would show
	_, b := buildDir(t, src, opts)
	ha, hb := sha256File(t, a), sha256File(t, b)
	if ha != hb {
		t.Errorf("two builds differ: %s and %s", ha, hb)
		if out, err := exec.Command("cmp", "-l", a, b).Output(); err == nil || len(out) > 0 {
			t.Logf("first differing bytes (offset, octal values):\n%s", strings.Join(first(strings.Split(string(out), "\n"), 20), "\n"))
		}
	}
	opts.Label = "other"
	_, c := buildDir(t, src, opts)
	if sha256File(t, c) == ha {
		t.Errorf("a different label gave the same image")
	}
}

// dumpe2fs returns the superblock fields of img.
func dumpe2fs(t testing.TB, img string) map[string]string {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs: %v", err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestImageProperties reads the superblock back: explicit features, the
// derived UUID and hash seed, fixed times, no reserved blocks, and an
// indexed big directory.
func TestImageProperties(t *testing.T) {
	requireE2fsprogs(t)
	testenv.RequireTool(t, "dumpe2fs", "apt-get install -y e2fsprogs")
	src := variedDir(t)
	os.Chtimes(filepath.Join(src, "usr/bin/su"), time.Unix(1600000000, 0), time.Unix(1700000000, 0))
	res, img := buildDir(t, src, Options{Seed: "sha256:feed", Label: "vm-root"})
	sb := dumpe2fs(t, img)
	want := map[string]string{
		"Filesystem features":    "has_journal ext_attr dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum",
		"Filesystem UUID":        deriveUUID("sha256:feed", "uuid"),
		"Directory Hash Seed":    deriveUUID("sha256:feed", "hash_seed"),
		"Filesystem volume name": "vm-root",
		"Reserved block count":   "0",
		"Block size":             "4096",
		"Inode size":             "256",
		"Default directory hash": "half_md4",
		"Errors behavior":        "Remount read-only",
		"Filesystem state":       "clean",
		"Total journal size":     "4096k",
		"Maximum mount count":    "-1",
		"Default mount options":  "user_xattr acl",
		"Filesystem created":     time.Unix(newestMTime(dirTree(t, src)), 0).UTC().Format("Mon Jan _2 15:04:05 2006"),
		"Block count":            fmt.Sprint(res.Blocks),
		"Inode count":            fmt.Sprint(res.Inodes),
	}
	for k, v := range want {
		if sb[k] != v {
			t.Errorf("%s: %q, want %q", k, sb[k], v)
		}
	}
	if res.UUID != want["Filesystem UUID"] {
		t.Errorf("Result.UUID %s, image %s", res.UUID, want["Filesystem UUID"])
	}
	out, err := exec.Command("debugfs", "-R", "stat /usr/share/wide", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Flags: 0x([0-9a-f]+)`).FindSubmatch(out)
	if m == nil || !hasIndexFlag(string(m[1])) {
		t.Errorf("/usr/share/wide is not indexed: %s", m)
	}
	if os.Geteuid() == 0 {
		sameTree(t, src, img)
	}
}

func hasIndexFlag(hex string) bool {
	var v uint64
	fmt.Sscanf(hex, "%x", &v)
	return v&0x1000 != 0 // EXT4_INDEX_FL
}

// TestExplicitUUID checks --uuid wins over the seed.
func TestExplicitUUID(t *testing.T) {
	requireE2fsprogs(t)
	src := dataDir(t, 1)
	const u = "0123abcd-0000-4000-8000-00000000beef"
	res, img := buildDir(t, src, Options{UUID: strings.ToUpper(u)})
	if sb := dumpe2fs(t, img); sb["Filesystem UUID"] != u || res.UUID != u {
		t.Errorf("UUID %q (result %q), want %q", sb["Filesystem UUID"], res.UUID, u)
	}
}

// TestRootAttributes checks the root directory gets the tree's owner,
// mode, time and xattrs, which mkfs.ext4 -d does not all copy.
func TestRootAttributes(t *testing.T) {
	requireE2fsprogs(t)
	testenv.RequireRoot(t)
	f := newFixture(t)
	f.file("etc/hostname", []byte("vm\n"), 0o644)
	f.xattr(".", "user.root", []byte("yes"))
	if err := os.Chmod(f.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	f.chown(".", 1234, 5678)
	if err := os.Chtimes(f.dir, time.Unix(981173106, 0), time.Unix(981173106, 0)); err != nil {
		t.Fatal(err)
	}
	_, img := buildDir(t, f.dir, Options{})
	recs := readBack(t, img)
	root := recs[0]
	if root.Path != "." || root.Perm != 0o750 || root.UID != 1234 || root.GID != 5678 ||
		root.MTime.Unix() != 981173106 || root.Xattrs["user.root"] != "yes" {
		t.Errorf("root directory: %+v", root)
	}
	sameTree(t, f.dir, img)
}
