package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// TestReadOnly tries every kind of change and expects EROFS.
func TestReadOnly(t *testing.T) {
	_, mnt := mountImage(t, new(memImage).addLayer(
		dir("d"),
		file("d/f", "content"),
		symlink("d/l", "f"),
	))
	p := func(s string) string { return filepath.Join(mnt, s) }
	ops := []struct {
		name string
		fn   func() error
	}{
		{"create", func() error { return closeErr(os.Create(p("d/new"))) }},
		{"open for writing", func() error { return closeErr(os.OpenFile(p("d/f"), os.O_WRONLY, 0)) }},
		{"open for appending", func() error { return closeErr(os.OpenFile(p("d/f"), os.O_RDWR|os.O_APPEND, 0)) }},
		{"truncate", func() error { return os.Truncate(p("d/f"), 0) }},
		{"unlink", func() error { return os.Remove(p("d/f")) }},
		{"rmdir", func() error { return unix.Rmdir(p("d")) }},
		{"rename", func() error { return os.Rename(p("d/f"), p("d/g")) }},
		{"mkdir", func() error { return os.Mkdir(p("d/sub"), 0o755) }},
		{"symlink", func() error { return os.Symlink("f", p("d/l2")) }},
		{"link", func() error { return os.Link(p("d/f"), p("d/f2")) }},
		{"mknod", func() error { return unix.Mknod(p("d/fifo"), unix.S_IFIFO|0o644, 0) }},
		{"chmod", func() error { return os.Chmod(p("d/f"), 0o600) }},
		{"chown", func() error { return os.Lchown(p("d/f"), 1, 1) }},
		{"utimes", func() error { return os.Chtimes(p("d/f"), time.Now(), time.Now()) }},
		{"setxattr", func() error { return unix.Lsetxattr(p("d/f"), "user.x", []byte("1"), 0) }},
		{"removexattr", func() error { return unix.Lremovexattr(p("d/f"), "user.x") }},
	}
	for _, op := range ops {
		if err := op.fn(); !errors.Is(err, unix.EROFS) {
			t.Errorf("%s: %v, want EROFS", op.name, err)
		}
	}
	b, err := os.ReadFile(p("d/f"))
	if err != nil || string(b) != "content" {
		t.Errorf("after the attempts, d/f = %q, %v", b, err)
	}
}

func closeErr(f *os.File, err error) error {
	if err == nil {
		f.Close()
	}
	return err
}

// TestReadOnlyHandlers calls the write handlers directly: the mount is
// read-only, so the kernel refuses before they run, but they are the
// second line and must answer EROFS too.
func TestReadOnlyHandlers(t *testing.T) {
	m := new(memImage).addLayer(file("f", "x"))
	f := newRawFS(m.merge(t), m, discardLogger(), fastTuning)
	for name, st := range map[string]fuse.Status{
		"SetAttr": f.SetAttr(nil, nil, nil), "Mknod": f.Mknod(nil, nil, "", nil),
		"Mkdir": f.Mkdir(nil, nil, "", nil), "Unlink": f.Unlink(nil, nil, ""),
		"Rmdir": f.Rmdir(nil, nil, ""), "Rename": f.Rename(nil, nil, "", ""),
		"Link": f.Link(nil, nil, "", nil), "Symlink": f.Symlink(nil, nil, "", "", nil),
		"SetXAttr": f.SetXAttr(nil, nil, "", nil), "RemoveXAttr": f.RemoveXAttr(nil, nil, ""),
		"Create": f.Create(nil, nil, "", nil), "Tmpfile": f.Tmpfile(nil, nil, nil),
		"Fallocate": f.Fallocate(nil, nil),
	} {
		if st != fuse.EROFS {
			t.Errorf("%s = %d, want EROFS", name, st)
		}
	}
	if _, st := f.Write(nil, nil, nil); st != fuse.EROFS {
		t.Errorf("Write = %v, want EROFS", st)
	}
}
