package tarindex

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/overlay"
)

func scanBytes(t *testing.T, b []byte) *Result {
	t.Helper()
	res, err := Scan(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("scanTar: %v", err)
	}
	return res
}

// checkContents reads every regular entry's bytes at its Offset (and
// extents) from the raw stream and compares them with want.
func checkContents(t *testing.T, stream []byte, res *Result, want map[string][]byte) {
	t.Helper()
	for _, e := range res.Layer.Entries {
		w, ok := want[e.Name]
		if !ok || e.Type != overlay.TypeRegular {
			continue
		}
		if got := contentOf(t, stream, e); !bytes.Equal(got, w) {
			t.Errorf("%s: content read via index differs (len %d, want %d)", e.Name, len(got), len(w))
		}
	}
}

func contentOf(t *testing.T, stream []byte, e overlay.Entry) []byte {
	t.Helper()
	if len(e.Sparse) == 0 {
		if e.Offset+e.Size > int64(len(stream)) {
			t.Fatalf("%s: offset %d+%d beyond stream %d", e.Name, e.Offset, e.Size, len(stream))
		}
		return stream[e.Offset : e.Offset+e.Size]
	}
	out := make([]byte, e.Size)
	for _, x := range e.Sparse {
		copy(out[x.Off:x.Off+x.Len], stream[x.TarOff:x.TarOff+x.Len])
	}
	return out
}

func TestScanEntryTypesAndMetadata(t *testing.T) {
	binCap := "\x01\x00\x00\x02\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	stream := tarOf(t,
		dir("etc/", withOwner(0, 0)),
		file("etc/passwd", "root:x:0:0\n", withMode(0o4755), withOwner(4294967295, 7), withXattr("user.b", "2"), withXattr("security.capability", binCap)),
		symlink("etc/link", "../weird\x01target"),
		hardlink("etc/hard", "etc/passwd"),
		device(tar.TypeChar, "dev/null", 1, 3),
		device(tar.TypeBlock, "dev/sda", 8, 0, withMode(0o660)),
		fifo("run/fifo", withMode(0o1777)),
		whiteout("etc/.wh.old"),
		whiteout("etc/.wh..wh..opq"),
		file("big", strings.Repeat("x", 5000), withMTime(time.Unix(-5, 999))),
	)
	res := scanBytes(t, stream)
	got := res.Layer.Entries
	want := []overlay.Entry{
		{Name: "etc/", Type: overlay.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Type: overlay.TypeRegular, Mode: 0o4755, UID: 4294967295, GID: 7, Size: 11,
			Xattrs: []overlay.Xattr{{Name: "security.capability", Value: binCap}, {Name: "user.b", Value: "2"}}},
		{Name: "etc/link", Type: overlay.TypeSymlink, Mode: 0o644, Linkname: "../weird\x01target"},
		{Name: "etc/hard", Type: overlay.TypeHardlink, Mode: 0o644, Linkname: "etc/passwd"},
		{Name: "dev/null", Type: overlay.TypeChar, Mode: 0o644, Devmajor: 1, Devminor: 3},
		{Name: "dev/sda", Type: overlay.TypeBlock, Mode: 0o660, Devmajor: 8},
		{Name: "run/fifo", Type: overlay.TypeFifo, Mode: 0o1777},
		{Name: "etc/.wh.old", Type: overlay.TypeRegular, Mode: 0o644},
		{Name: "etc/.wh..wh..opq", Type: overlay.TypeRegular, Mode: 0o644},
		{Name: "big", Type: overlay.TypeRegular, Mode: 0o644, Size: 5000, MTime: -5, MTimeNsec: 999},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if want[i].MTime == 0 {
			want[i].MTime, want[i].MTimeNsec = fixtureTime.Unix(), uint32(fixtureTime.Nanosecond())
		}
		g.Offset = 0
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
	if res.Whiteouts != 2 {
		t.Errorf("whiteouts = %d, want 2", res.Whiteouts)
	}
	checkContents(t, stream, res, map[string][]byte{
		"etc/passwd": []byte("root:x:0:0\n"), "big": bytes.Repeat([]byte("x"), 5000), "etc/.wh.old": nil,
	})
}

func TestScanLibarchiveXattrs(t *testing.T) {
	stream := tarOf(t, file("f", "x",
		withPAX("LIBARCHIVE.xattr.user.a%3Db", "aGVsbG8"), // "hello", unpadded as libarchive writes it
		withPAX("LIBARCHIVE.xattr.user.both", "bGli"),
		withXattr("user.both", "schily"),
		withPAX("GNU.other", "ignored")))
	got := scanBytes(t, stream).Layer.Entries[0].Xattrs
	want := []overlay.Xattr{{Name: "user.a=b", Value: "hello"}, {Name: "user.both", Value: "schily"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("xattrs = %q, want %q", got, want)
	}
}

func TestScanGNULongNamesAndGlobalHeaders(t *testing.T) {
	long := strings.Repeat("d/", 80) + "file"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"comment": "hi"}}))
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: long, Size: 3, Mode: 0o600, Format: tar.FormatGNU}))
	tw.Write([]byte("abc"))
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: long, Format: tar.FormatGNU}))
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "after", Size: 2, Format: tar.FormatUSTAR}))
	tw.Write([]byte("zz"))
	must(t, tw.Close())
	res := scanBytes(t, buf.Bytes())
	if n := len(res.Layer.Entries); n != 3 {
		t.Fatalf("got %d entries, want 3 (global header skipped)", n)
	}
	if e := res.Layer.Entries[1]; e.Linkname != long {
		t.Errorf("symlink target = %q", e.Linkname)
	}
	checkContents(t, buf.Bytes(), res, map[string][]byte{long: []byte("abc"), "after": []byte("zz")})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestScanRejectsNonsense(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"uid too large", tarOf(t, file("f", "x", withOwner(1<<32, 0))), `entry "f": uid 4294967296 out of range`},
		{"unknown type", rawTar(t, 'V', "vol"), `entry "vol": unsupported entry type 'V'`},
		{"not a tar", bytes.Repeat([]byte("garbage!"), 128), "reading tar header at offset 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(bytes.NewReader(tc.stream))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// rawTar writes a one-entry tar whose header has type flag typ, which
// archive/tar's writer would refuse.
func rawTar(t testing.TB, typ byte, name string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Format: tar.FormatUSTAR}))
	must(t, tw.Close())
	b := buf.Bytes()
	b[156] = typ
	var sum int64
	copy(b[148:156], "        ")
	for _, c := range b[:512] {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// makeSparseFile creates a file of size bytes with data at the given
// offsets (everything else a hole) and returns its content.
func makeSparseFile(t *testing.T, path string, size int64, data map[int64]string) []byte {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	must(t, f.Truncate(size))
	want := make([]byte, size)
	for off, s := range data {
		_, err := f.WriteAt([]byte(s), off)
		must(t, err)
		copy(want[off:], s)
	}
	return want
}

// TestScanGNUSparse checks the sparse maps of archives written by GNU tar
// itself, in every format it writes sparse files in, against the file they
// were made from and against archive/tar's own expansion.
func TestScanGNUSparse(t *testing.T) {
	tarBin := testenv.RequireTool(t, "tar", "apt-get install -y tar")
	if out, _ := exec.Command(tarBin, "--version").Output(); !bytes.Contains(out, []byte("GNU tar")) {
		testenv.Missing(t, "tar is not GNU tar", "apt-get install -y tar")
	}
	dir := t.TempDir()
	many := map[int64]string{}
	for i := int64(0); i < 30; i++ { // > 4 + 21 fragments: old GNU needs two extension blocks
		many[i*65536+100] = fmt.Sprintf("fragment %d", i)
	}
	files := map[string][]byte{
		"sparse1":   makeSparseFile(t, filepath.Join(dir, "sparse1"), 10<<20, map[int64]string{1 << 20: "hello", 10<<20 - 4: "tail"}),
		"many":      makeSparseFile(t, filepath.Join(dir, "many"), 30*65536+8192, many),
		"allholes":  makeSparseFile(t, filepath.Join(dir, "allholes"), 1<<20, nil),
		"plain.txt": []byte("plain after sparse\n"),
	}
	must(t, os.WriteFile(filepath.Join(dir, "plain.txt"), files["plain.txt"], 0o644))
	for _, format := range [][]string{
		{"--format=gnu"},
		{"--format=posix", "--sparse-version=0.0"},
		{"--format=posix", "--sparse-version=0.1"},
		{"--format=posix", "--sparse-version=1.0"},
	} {
		t.Run(strings.Join(format, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "s.tar")
			args := append([]string{"--sparse", "-C", dir, "-cf", out}, format...)
			args = append(args, "sparse1", "many", "allholes", "plain.txt")
			if b, err := exec.Command(tarBin, args...).CombinedOutput(); err != nil {
				t.Fatalf("tar %v: %v\n%s", args, err, b)
			}
			stream, err := os.ReadFile(out)
			must(t, err)
			res := scanBytes(t, stream)
			if len(res.Layer.Entries) != 4 {
				t.Fatalf("got %d entries, want 4: %+v", len(res.Layer.Entries), res.Layer.Entries)
			}
			for _, e := range res.Layer.Entries {
				if e.Size != int64(len(files[e.Name])) {
					t.Errorf("%s: size %d, want %d", e.Name, e.Size, len(files[e.Name]))
				}
				if e.Name != "plain.txt" && len(e.Sparse) == 0 {
					t.Errorf("%s: no sparse extents", e.Name)
				}
			}
			if n := len(res.Layer.Entries[1].Sparse); n != 30 {
				t.Errorf("many: %d extents, want 30", n)
			}
			checkContents(t, stream, res, files)
			checkAgainstArchiveTar(t, stream, files)
		})
	}
}

// checkAgainstArchiveTar makes sure archive/tar expands the same archive
// to the same content: an oracle that is not our sparse parser.
func checkAgainstArchiveTar(t *testing.T, stream []byte, files map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(stream))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(tr); err != nil {
			t.Fatalf("archive/tar reading %s: %v", h.Name, err)
		}
		if !bytes.Equal(b.Bytes(), files[h.Name]) {
			t.Errorf("archive/tar expands %s differently from the source file", h.Name)
		}
	}
}

// TestScanHugeSparse: a 20 GiB sparse file needs base-256 size fields
// (GNU) or PAX size records; the extents must still land on its data.
func TestScanHugeSparse(t *testing.T) {
	tarBin := testenv.RequireTool(t, "tar", "apt-get install -y tar")
	dir := t.TempDir()
	const size = 20 << 30
	data := map[int64]string{4096: "near the start", size - 5: "end!!", 12 << 30: "middle"}
	f, err := os.Create(filepath.Join(dir, "huge"))
	must(t, err)
	must(t, f.Truncate(size))
	for off, s := range data {
		_, err := f.WriteAt([]byte(s), off)
		must(t, err)
	}
	f.Close()
	for _, format := range []string{"--format=gnu", "--format=posix"} {
		out := filepath.Join(t.TempDir(), "h.tar")
		if b, err := exec.Command(tarBin, "--sparse", format, "-C", dir, "-cf", out, "huge").CombinedOutput(); err != nil {
			t.Fatalf("tar %s: %v\n%s", format, err, b)
		}
		stream, err := os.ReadFile(out)
		must(t, err)
		e := scanBytes(t, stream).Layer.Entries[0]
		if e.Size != size || len(e.Sparse) == 0 {
			t.Fatalf("%s: size %d, %d extents", format, e.Size, len(e.Sparse))
		}
		for off, s := range data {
			if got := readSparse(stream, e.Sparse, off, len(s)); got != s {
				t.Errorf("%s: at %d read %q, want %q", format, off, got, s)
			}
		}
	}
}

// readSparse reads n logical bytes at off through the extents.
func readSparse(stream []byte, exts []overlay.Extent, off int64, n int) string {
	out := make([]byte, n)
	for i := range out {
		p := off + int64(i)
		for _, x := range exts {
			if p >= x.Off && p < x.Off+x.Len {
				out[i] = stream[x.TarOff+p-x.Off]
			}
		}
	}
	return string(out)
}
