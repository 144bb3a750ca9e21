package fusefs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

// cpuTime returns the user+system time this process has used.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wideImage has nDirs directories of perDir small files each.
func wideImage(nDirs, perDir int) *memImage {
	es := make([]fentry, 0, nDirs*(perDir+1))
	for d := 0; d < nDirs; d++ {
		dn := fmt.Sprintf("usr/share/doc/pkg%04d", d)
		es = append(es, dir(dn))
		for f := 0; f < perDir; f++ {
			es = append(es, file(fmt.Sprintf("%s/file%03d", dn, f), "x"))
		}
	}
	return new(memImage).addLayer(es...)
}

// BenchmarkMountFirstStat measures Mount of a 100,000-entry tree up to the
// first answered lstat of a file four levels down (the tree is built
// before the timer: that is the index load and merge, measured in
// overlay's benchmarks).
func BenchmarkMountFirstStat(b *testing.B) {
	m := wideImage(1000, 100)
	tree := m.merge(b)
	b.ReportMetric(float64(tree.Len()), "entries")
	base := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(base, fmt.Sprint(i))
		os.Mkdir(dir, 0o755)
		srv, err := Mount(dir, tree, m, Options{SelfAccess: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "usr/share/doc/pkg0500/file050")); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		srv.Unmount()
		b.StartTimer()
	}
}

// dropDentries makes the kernel forget cached names and attributes, so
// the next lookups go to the server (root only).
func dropDentries(b *testing.B) {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		b.Skipf("cannot drop the dentry cache: %v", err)
	}
}

// BenchmarkLookup measures one uncached lstat: a LOOKUP round trip.
func BenchmarkLookup(b *testing.B) {
	m := wideImage(100, 1000)
	srv, mnt := mountTree(b, m.merge(b), m, Options{})
	paths := make([]string, 0, 100*1000)
	for d := 0; d < 100; d++ {
		for f := 0; f < 1000; f++ {
			paths = append(paths, filepath.Join(mnt, fmt.Sprintf("usr/share/doc/pkg%04d/file%03d", d, f)))
		}
	}
	for _, d := range []string{"usr", "usr/share", "usr/share/doc"} {
		os.Lstat(filepath.Join(mnt, d))
	}
	var st unix.Stat_t
	dropDentries(b)
	before := srv.Stats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(paths) == 0 && i > 0 {
			b.StopTimer()
			dropDentries(b)
			b.StartTimer()
		}
		if err := unix.Lstat(paths[i%len(paths)], &st); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s := srv.Stats().Sub(before)
	b.ReportMetric(float64(s.Lookup)/float64(b.N), "lookups/op")
}

// BenchmarkReadDirPlus measures listing a 1,000-entry directory with its
// attributes, uncached (READDIRPLUS round trips).
func BenchmarkReadDirPlus(b *testing.B) {
	m := wideImage(200, 1000)
	srv, mnt := mountTree(b, m.merge(b), m, Options{})
	before := srv.Stats()
	for i := 0; b.Loop(); i++ {
		d := filepath.Join(mnt, fmt.Sprintf("usr/share/doc/pkg%04d", i%200))
		if i%200 == 0 {
			b.StopTimer()
			dropDentries(b)
			b.StartTimer()
		}
		if _, err := readdirnames(d, 1<<16); err != nil {
			b.Fatal(err)
		}
	}
	s := srv.Stats().Sub(before)
	b.ReportMetric(float64(s.ReadDirPlus)/float64(b.N), "readdirplus/op")
}

// layerFile serves layers from files; with splice, it also offers them
// to the server (LayerFiler).
type layerFile struct{ files []*os.File }

func (l *layerFile) ReadLayerAt(i int, p []byte, off int64) (int, error) {
	return l.files[i].ReadAt(p, off)
}

type splicingLayerFile struct{ layerFile }

func (l *splicingLayerFile) LayerFile(i int) (*os.File, bool) { return l.files[i], true }

// fileBacked writes m's layer streams to files.
func fileBacked(b testing.TB, m *memImage) *layerFile {
	lf := &layerFile{}
	for i, blob := range m.blobs {
		p := filepath.Join(b.TempDir(), fmt.Sprint(i))
		if err := os.WriteFile(p, blob, 0o644); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		lf.files = append(lf.files, f)
	}
	return lf
}

// BenchmarkRead reads a 64 MiB file sequentially through the mount with
// its page cache dropped each time, from memory, from a file with pread,
// and from a file with splice.
func BenchmarkRead(b *testing.B) {
	const size = 64 << 20
	m := new(memImage).addLayer(fileBytes("big", randomBytes(1, size)))
	tree := m.merge(b)
	spliced := fastTuning
	spliced.splice = true // not what Mount does: see file.go
	for _, c := range []struct {
		name    string
		content func() overlay.LayerReader
		tune    tuning
	}{
		{"memory", func() overlay.LayerReader { return m }, fastTuning},
		{"pread", func() overlay.LayerReader { return fileBacked(b, m) }, fastTuning},
		{"splice", func() overlay.LayerReader { return &splicingLayerFile{*fileBacked(b, m)} }, spliced},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv, mnt := mountTuned(b, tree, c.content(), Options{}, c.tune)
			f, err := os.Open(filepath.Join(mnt, "big"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			before := srv.Stats()
			cpu0 := cpuTime()
			for b.Loop() {
				dropCache(b, f)
				if _, err := io.CopyBuffer(io.Discard, io.NewSectionReader(f, 0, size), buf); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			s := srv.Stats().Sub(before)
			b.ReportMetric(float64(s.ReadBytes)/float64(s.Read)/1024, "KiB/read")
			// CPU time of the whole process (reader and server) per MiB:
			// steadier than throughput on a shared machine.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*(size>>20)), "cpu-µs/MiB")
		})
	}
}

// BenchmarkSmallFileRead opens, reads and closes distinct small files,
// uncached: the per-file cost of a full read such as tar or mkfs.
func BenchmarkSmallFileRead(b *testing.B) {
	m := wideImage(100, 1000)
	srv, mnt := mountTree(b, m.merge(b), m, Options{})
	paths := make([]string, 0, 100*1000)
	for d := 0; d < 100; d++ {
		dn := filepath.Join(mnt, fmt.Sprintf("usr/share/doc/pkg%04d", d))
		if _, err := readdirnames(dn, 1<<16); err != nil { // as tar and mkfs list first
			b.Fatal(err)
		}
		for f := 0; f < 1000; f++ {
			paths = append(paths, filepath.Join(dn, fmt.Sprintf("file%03d", f)))
		}
	}
	buf := make([]byte, 4096)
	before := srv.Stats()
	for i := 0; b.Loop(); i++ {
		if i%len(paths) == 0 && i > 0 {
			b.StopTimer()
			dropDentries(b) // the kernel forgets the inodes, and their pages
			for d := 0; d < 100; d++ {
				readdirnames(filepath.Join(mnt, fmt.Sprintf("usr/share/doc/pkg%04d", d)), 1<<16)
			}
			b.StartTimer()
		}
		fd, err := unix.Open(paths[i%len(paths)], unix.O_RDONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Read(fd, buf); err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
	s := srv.Stats().Sub(before)
	b.ReportMetric(float64(s.Total())/float64(b.N), "requests/op")
}

// BenchmarkFileRead reads whole files of a few sizes through the mount,
// uncached, from a file-backed layer: copied (pread into the request
// buffer, as Mount does), and spliced (go-fuse's splice path, which Mount
// does not use: see file.go).
// One op is one file: open, read to EOF, close.
func BenchmarkFileRead(b *testing.B) {
	const files = 512
	for _, size := range []int{4 << 10, 32 << 10, 64 << 10, 128 << 10, 1 << 20} {
		es := make([]fentry, 0, files)
		for i := 0; i < files; i++ {
			es = append(es, fileBytes(fmt.Sprintf("f%04d", i), randomBytes(uint64(i), size)))
		}
		m := new(memImage).addLayer(es...)
		tree := m.merge(b)
		for _, c := range []struct {
			name   string
			splice bool
		}{{"copy", false}, {"splice", true}} {
			b.Run(fmt.Sprintf("%dK/%s", size>>10, c.name), func(b *testing.B) {
				tune := fastTuning
				tune.splice = c.splice
				srv, mnt := mountTuned(b, tree, &splicingLayerFile{*fileBacked(b, m)}, Options{}, tune)
				benchReadFiles(b, srv, mnt, files, size)
			})
		}
	}
}

func benchReadFiles(b *testing.B, srv *Server, mnt string, files, size int) {
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(size))
	before := srv.Stats()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		f, err := os.Open(filepath.Join(mnt, fmt.Sprintf("f%04d", i%files)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, f, buf); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dropCache(b, f)
		f.Close()
		b.StartTimer()
	}
	cpu := cpuTime() - cpu0
	s := srv.Stats().Sub(before)
	b.ReportMetric(float64(s.Read)/float64(b.N), "reads/op")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkGetAttr measures one GETATTR round trip: statx with
// AT_STATX_FORCE_SYNC makes the kernel ask although its attributes are
// valid forever.
func BenchmarkGetAttr(b *testing.B) {
	m := wideImage(1, 10)
	srv, mnt := mountTree(b, m.merge(b), m, Options{})
	p := filepath.Join(mnt, "usr/share/doc/pkg0000/file005")
	var stx unix.Statx_t
	before := srv.Stats()
	for b.Loop() {
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &stx); err != nil {
			b.Fatal(err)
		}
	}
	s := srv.Stats().Sub(before)
	b.ReportMetric(float64(s.GetAttr)/float64(b.N), "getattrs/op")
}
