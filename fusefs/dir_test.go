package fusefs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

// TestBigDirectory lists a 20,000-entry directory (many READDIRPLUS
// buffers) and looks names up, present and absent.
func TestBigDirectory(t *testing.T) {
	const n = 20000
	es := []fentry{dir("big")}
	var names []string
	for i := 0; i < n; i++ {
		// Names of varying length, so entries straddle buffer ends.
		name := fmt.Sprintf("entry-%05d%s", i, "-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[:i%40])
		names = append(names, name)
		if i%3 == 0 {
			es = append(es, dir("big/"+name))
		} else {
			es = append(es, file("big/"+name, name))
		}
	}
	slices.Sort(names)
	m := new(memImage).addLayer(es...)
	tree := m.merge(t)
	_, mnt := mountTree(t, tree, m, Options{})

	// Read the listing with small getdents buffers too.
	for _, bufSize := range []int{512, 4096, 1 << 16} {
		got, err := readdirnames(filepath.Join(mnt, "big"), bufSize)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, names) {
			t.Fatalf("listing with %d-byte buffers: %d names, want %d (equal %v)", bufSize, len(got), len(names), slices.Equal(got, names))
		}
	}
	r := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 500; i++ {
		name := names[r.IntN(len(names))]
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, "big", name), &st); err != nil {
			t.Fatalf("lstat %s: %v", name, err)
		}
		if want := tree.Get("big/" + name).StIno(); st.Ino != want {
			t.Fatalf("%s: ino %d, want %d", name, st.Ino, want)
		}
		if _, err := os.Lstat(filepath.Join(mnt, "big", name+"-missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("lstat of a missing name: %v", err)
		}
	}
}

// readdirnames lists dir with getdents64 and a buffer of the given size,
// leaving out "." and "..".
func readdirnames(dir string, bufSize int) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, bufSize)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	return names, nil
}

// TestDirentInodes checks that every listing's d_ino, "." and ".."
// included, is the st_ino of the node it names (StIno, not the kernel's
// node id).
func TestDirentInodes(t *testing.T) {
	m := attrImage()
	tree := m.merge(t)
	_, mnt := mountTree(t, tree, m, Options{})
	differ := false
	err := tree.Walk(func(p string, n *overlay.Node) error {
		differ = differ || n.StIno() != n.Ino()
		if n.Type() != overlay.TypeDir {
			return nil
		}
		inos, err := direntInos(filepath.Join(mnt, p))
		if err != nil {
			return err
		}
		want := map[string]uint64{".": n.StIno(), "..": tree.Node(n.Parent()).StIno()}
		for _, d := range tree.Children(n) {
			want[d.Name] = tree.Node(d.Ino).StIno()
		}
		if !maps.Equal(inos, want) {
			t.Errorf("/%s: d_ino %v, want %v", p, inos, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !differ {
		t.Fatal("the image's st_ino are its node ids: the test proves nothing")
	}
}

// direntInos lists dir and returns each name's d_ino.
func direntInos(dir string) (map[string]uint64, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	inos := map[string]uint64{}
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return inos, nil
		}
		for b := buf[:n]; len(b) > 0; { // struct linux_dirent64
			reclen := binary.NativeEndian.Uint16(b[16:18])
			inos[unix.ByteSliceToString(b[19:reclen])] = binary.NativeEndian.Uint64(b[:8])
			b = b[reclen:]
		}
	}
}
