package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// Hostile images through the real binary and the real registry: each
// must end in one clear line naming the layer's digest and the entry
// (exit 3, with a hint naming the flag when a limit was hit), or be
// served within the limits; never a panic.

type hostileCase struct {
	name   string
	layers []v1.Layer
	args   []string // extra flags for pull
	// pullWant: pull must fail (exit 3) with these in stderr; empty: it
	// must succeed and inspectWant applies to `ocifs inspect REF`.
	pullWant    []string
	inspectWant []string
	// served: paths that `ocifs inspect REF PATH` must find.
	served []string
}

// gzLayer is a gzip layer of tar entries.
func gzLayer(t *testing.T, es ...ti.Entry) v1.Layer {
	l, err := ti.NewLayer(ti.Layer(es...), ti.Gzip, false)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// rawLayer is a layer blob taken as it is (digest and diffID of the blob
// itself): for streams no writer would produce.
func rawLayer(blob []byte, mt types.MediaType) v1.Layer { return static.NewLayer(blob, mt) }

func hostileCases(t *testing.T) []hostileCase {
	name4k := strings.Repeat(strings.Repeat("n", 254)+"/", 16) + strings.Repeat("m", 16)
	gz, _ := ti.CompressBlob(ti.Layer(ti.File("a", strings.Repeat("abcdefgh", 8192)), ti.File("b", "b")), ti.Gzip)
	many := make([]ti.Entry, 150)
	for i := range many {
		many[i] = ti.File(fmt.Sprintf("f%03d", i), "")
	}
	return []hostileCase{
		{name: "dotdot", layers: []v1.Layer{gzLayer(t, ti.File("../../../../../../tmp/ocifs-escape", "x"))},
			inspectWant: []string{`entry "../../../../../../tmp/ocifs-escape"`, "escapes the root"}},
		{name: "absolute", layers: []v1.Layer{gzLayer(t, ti.File("/etc/abs", "x"))}, served: []string{"/etc/abs"}},
		{name: "hardlink escapes", layers: []v1.Layer{gzLayer(t, ti.Hardlink("h", "../../etc/passwd"))},
			inspectWant: []string{`entry "h"`, "escapes the root"}},
		{name: "hardlink to a host file", layers: []v1.Layer{gzLayer(t, ti.Hardlink("h", "/etc/passwd"))},
			inspectWant: []string{`entry "h"`, "hardlink target does not exist"}},
		{name: "hardlink loop", layers: []v1.Layer{gzLayer(t, ti.Hardlink("a", "b"), ti.Hardlink("b", "a"))},
			inspectWant: []string{`entry "a"`, "hardlink target does not exist"}},
		{name: "hardlink to itself", layers: []v1.Layer{gzLayer(t, ti.Hardlink("a", "a"))},
			inspectWant: []string{`entry "a"`, "hardlink target does not exist"}},
		{name: "symlink chain up", layers: []v1.Layer{gzLayer(t, ti.Symlink("up", "../../../.."), ti.Symlink("up2", "up/../up"),
			ti.File("up2/etc/pwned", "x"), ti.Hardlink("up/etc/linked", "up2/etc/pwned"))},
			served: []string{"/etc/pwned", "/etc/linked", "/up", "/up2"}},
		{name: "symlink to a host dir", layers: []v1.Layer{gzLayer(t, ti.Symlink("hostetc", "/etc"), ti.File("hostetc/shadow", "x"))},
			served: []string{"/etc/shadow", "/hostetc"}},
		{name: "symlink loop", layers: []v1.Layer{gzLayer(t, ti.Symlink("a", "b"), ti.Symlink("b", "a"), ti.File("a/x", "x"))},
			inspectWant: []string{`entry "a/x"`, "too many levels of symbolic links"}},
		{name: "too many entries", layers: []v1.Layer{gzLayer(t, many...)}, args: []string{"--max-entries", "100"},
			pullWant: []string{`entry "f100"`, "entry number 101", "hint: ", "--max-entries"}},
		{name: "4 KiB name", layers: []v1.Layer{gzLayer(t, ti.File(name4k, "x"))}, served: []string{"/" + name4k}},
		{name: "name over 4 KiB", layers: []v1.Layer{gzLayer(t, ti.File(name4k+"x", "x"))},
			pullWant: []string{"name of 4097 bytes", "--max-name"}},
		{name: "deep path", layers: []v1.Layer{gzLayer(t, ti.File(strings.Repeat("d/", 65534)+"f", "x"))},
			pullWant: []string{"name of 131069 bytes", "--max-name"}},
		{name: "long component", layers: []v1.Layer{gzLayer(t, ti.File(strings.Repeat("c", 256), "x"))},
			pullWant: []string{"path component of 256 bytes is longer than Linux allows"}},
		{name: "big xattr", layers: []v1.Layer{gzLayer(t, ti.File("f", "", ti.Xattr("user.big", bytes.Repeat([]byte{7}, 65537))))},
			pullWant: []string{`entry "f"`, `xattr "user.big" of 65537 bytes`, "--max-xattr"}},
		{name: "giant PAX record", layers: []v1.Layer{gzRaw(t, giantPAX())}, pullWant: []string{"after entry \"before\"", "header field too long"}},
		{name: "size too big", layers: []v1.Layer{gzRaw(t, append(ustar('0', "liar", 1<<30), make([]byte, 4096)...))},
			pullWant: []string{`entry "liar"`, "stream ends at offset 4608, inside its data"}},
		{name: "truncated gzip", layers: []v1.Layer{rawLayer(gz[:len(gz)/2], types.OCILayer)},
			pullWant: []string{"decompressing gzip", "unexpected EOF"}},
		{name: "zstd bomb", layers: []v1.Layer{rawLayer(zstdZeroBlocks(ti.Layer(ti.File("a", "a")), 256<<30), types.OCILayerZStd)},
			args: []string{"--max-layer-size", "16M"}, pullWant: []string{"the uncompressed stream exceeds the limit of 16777216", "--max-layer-size (now 16M)"}},
	}
}

func TestHostileImages(t *testing.T) {
	reg := testregistry.Start(t)
	for i, c := range hostileCases(t) {
		t.Run(c.name, func(t *testing.T) {
			img := imageOfLayers(t, c.layers)
			ref := reg.Repo(fmt.Sprintf("hostile%d", i)) + ":v1"
			ti.Push(t, img, ref)
			last, _ := c.layers[len(c.layers)-1].Digest()
			_, stderr, code := runOcifs(t, nil, append(append([]string{"pull"}, c.args...), ref)...)
			if len(c.pullWant) > 0 {
				checkImageError(t, "pull", code, stderr, append(c.pullWant, last.String()))
				checkNoTempFiles(t)
				return
			}
			if code != 0 {
				t.Fatalf("pull: exit %d: %s", code, stderr)
			}
			_, stderr, code = runOcifs(t, nil, "inspect", ref, "/") // merges the layers
			if len(c.inspectWant) > 0 {
				checkImageError(t, "inspect", code, stderr, append(c.inspectWant, last.String()))
				return
			}
			if code != 0 {
				t.Fatalf("inspect: exit %d: %s", code, stderr)
			}
			for _, p := range c.served {
				if _, stderr, code := runOcifs(t, nil, "inspect", ref, p); code != 0 {
					t.Errorf("inspect %s: exit %d: %s", p, code, stderr)
				}
			}
		})
	}
}

// checkImageError wants exit 3, one "ocifs: " line (and a hint at most),
// no panic, and each of wants in stderr; the message stays short even for
// megabyte names.
func checkImageError(t *testing.T, what string, code int, stderr string, wants []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 3 || !strings.HasPrefix(stderr, "ocifs: ") || len(lines) > 2 || strings.Contains(stderr, "panic") {
		t.Fatalf("%s: exit %d, stderr:\n%.2000s\nwant exit 3 and one ocifs: line", what, code, stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr lacks %q:\n%.2000s", what, w, stderr)
		}
	}
	if len(stderr) > 2000 {
		t.Errorf("%s: %d bytes of error message", what, len(stderr))
	}
	t.Logf("%s: %s", what, stderr)
}

// imageOfLayers is a linux/amd64 OCI image of the layers as they are.
func imageOfLayers(t *testing.T, layers []v1.Layer) v1.Image {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// gzRaw is a gzip layer of raw tar bytes, with the right diffID.
func gzRaw(t *testing.T, tarb []byte) v1.Layer {
	l, err := ti.NewLayer(tarb, ti.Gzip, false)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ustar is a header block written by hand, so that its size may lie
// (octal: below 8 GiB).
func ustar(typ byte, name string, size int64) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// giantPAX is an entry "before", then a PAX header of 2 MiB (archive/tar
// refuses over 1 MiB; its writer would not write it), then its file.
func giantPAX() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "before", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Flush()
	rec := "user.comment=" + strings.Repeat("p", 2<<20)
	n := len(rec) + 2
	for l := len(fmt.Sprint(n)) + len(rec) + 2; l != n; l = len(fmt.Sprint(n)) + len(rec) + 2 {
		n = l
	}
	data := fmt.Sprintf("%d %s\n", n, rec)
	buf.Write(ustar('x', "PaxHeaders/f", int64(len(data))))
	buf.WriteString(data)
	buf.Write(make([]byte, (512-len(data)%512)%512))
	buf.Write(ustar('0', "f", 0))
	buf.Write(make([]byte, 1024))
	return buf.Bytes()
}

// zstdZeroBlocks is a zstd frame of prefix (raw blocks) then n zero bytes
// as 128 KiB RLE blocks: 32 MiB of blob per TiB.
func zstdZeroBlocks(prefix []byte, n int64) []byte {
	const block = 128 << 10
	var b bytes.Buffer
	b.Write([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3})
	hdr := func(last bool, typ, size int) {
		v := uint32(size)<<3 | uint32(typ)<<1
		if last {
			v |= 1
		}
		b.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16)})
	}
	for len(prefix) > 0 {
		k := min(len(prefix), block)
		hdr(false, 0, k)
		b.Write(prefix[:k])
		prefix = prefix[k:]
	}
	for n > 0 {
		k := min(n, block)
		n -= k
		hdr(n == 0, 1, int(k))
		b.WriteByte(0)
	}
	return b.Bytes()
}

// TestHostileWritesNothingOutsideCache runs ocifs on images whose names
// aim at a directory of the host (by "..", by absolute names, through a
// symlink to it, by hardlinks to a file in it) under strace, and checks
// that every file system change ocifs made was inside its cache, and that
// the directory is untouched. ocifs never extracts; this proves it.
func TestHostileWritesNothingOutsideCache(t *testing.T) {
	strace := testenv.RequireTool(t, "strace", "apt-get install -y strace")
	reg := testregistry.Start(t)
	sandbox := t.TempDir()
	victim := filepath.Join(sandbox, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, sandbox)
	up := strings.Repeat("../", 40) + strings.TrimPrefix(sandbox, "/")
	images := [][]v1.Layer{
		{gzLayer(t, ti.File(up+"/pwned-dotdot", "x"))},
		{gzLayer(t, ti.Hardlink("hl", victim))},
		{gzLayer(t, ti.Dir("etc"), ti.File(sandbox+"/pwned-abs", "x"), ti.Symlink("sbx", sandbox),
			ti.File("sbx/pwned-via-symlink", "x", ti.Mode(0o4755), ti.Xattr("security.capability", ti.CapNetBindService())),
			ti.Hardlink("sbx/hl", "sbx/pwned-via-symlink"), ti.Symlink("victimlink", victim),
			ti.CharDev("sbx/dev", 1, 3), ti.Fifo("sbx/fifo")),
			gzLayer(t, ti.Whiteout("sbx/victim"), ti.Opaque("sbx"))},
	}
	traces := filepath.Join(t.TempDir(), "trace")
	changes := 0
	for i, layers := range images {
		ref := reg.Repo(fmt.Sprintf("aim%d", i)) + ":v1"
		ti.Push(t, imageOfLayers(t, layers), ref)
		for j, args := range [][]string{{"pull", ref}, {"inspect", ref, "/"}, {"inspect", ref, sandbox + "/pwned-via-symlink"}, {"cache", "verify"}} {
			out := fmt.Sprintf("%s.%d.%d", traces, i, j)
			code := runTraced(t, strace, out, args...)
			t.Logf("ocifs %s: exit %d", strings.Join(args, " "), code)
			for _, w := range tracedWrites(t, out) {
				changes++
				if !strings.HasPrefix(w, cacheDir(t)+"/") {
					t.Errorf("ocifs %s changed %s, outside its cache", strings.Join(args, " "), w)
				}
			}
		}
	}
	if changes < 10 {
		t.Errorf("only %d file system changes traced: is strace working?", changes)
	}
	if after := snapshot(t, sandbox); after != before {
		t.Errorf("the host directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// runTraced runs ocifs under strace -f, recording the calls that change
// the file system, and returns the exit code.
func runTraced(t *testing.T, strace, out string, args ...string) int {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	cmd := ocifsCommand(ctx, t, nil, args...)
	calls := "open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir," +
		"link,linkat,symlink,symlinkat,chmod,fchmodat,chown,fchownat,lchown,truncate,utimensat,utimes," +
		"setxattr,lsetxattr,removexattr,lremovexattr,mknod,mknodat"
	cmd.Args = append([]string{strace, "-f", "-qq", "-y", "-s", "4096", "-e", "trace=" + calls, "-o", out, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = strace
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("strace ocifs %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode()
}

// tracedWrites returns the paths that the traced calls changed: every
// path argument of a changing call, and of open calls that write or
// create. Relative paths are resolved against the directory strace -y
// shows for the dirfd, else the working directory.
func tracedWrites(t *testing.T, out string) []string {
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	var paths []string
	for _, line := range strings.Split(string(b), "\n") {
		m := traceCall.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "= -1 ") {
			continue
		}
		call, args := m[1], m[2]
		if strings.HasPrefix(call, "open") && !traceWriteFlags.MatchString(args) {
			continue
		}
		if strings.HasPrefix(call, "symlink") { // the first argument is the link's text
			args = args[strings.Index(args, ",")+1:]
		}
		dir := wd
		for _, a := range traceArg.FindAllStringSubmatch(args, -1) {
			switch {
			case a[1] != "":
				dir = a[1]
			case a[2] != "":
				p := unquoteTrace(a[2])
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				paths = append(paths, filepath.Clean(p))
			}
		}
	}
	return paths
}

var (
	traceCall       = regexp.MustCompile(`^\d+\s+(\w+)\((.*)\)\s+=`)
	traceWriteFlags = regexp.MustCompile(`O_WRONLY|O_RDWR|O_CREAT|O_TRUNC`)
	// a dirfd shown by -y ("3</some/dir>", "AT_FDCWD</wd>") or a quoted path
	traceArg = regexp.MustCompile(`(?:\d+|AT_FDCWD)<([^>]*)>|"((?:[^"\\]|\\.)*)"`)
)

func unquoteTrace(s string) string {
	if u, err := strconv.Unquote(`"` + s + `"`); err == nil {
		return u
	}
	return s
}

// snapshot describes every file under dir: path, mode, size, content.
func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		content := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			content = sha256Of(data)
		}
		fmt.Fprintf(&b, "%s %v %d %s %v\n", p, fi.Mode(), fi.Size(), content, fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// sha256Of names a file's content in snapshots.
func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
