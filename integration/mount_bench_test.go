package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

// bigLayout writes an OCI layout of one image with dirs×files regular
// files (plus the directories) and returns its oci: reference.
func bigLayout(b *testing.B, dirs, files int) string {
	b.Helper()
	es := make([]ti.Entry, 0, dirs*(files+1))
	for d := 0; d < dirs; d++ {
		dn := fmt.Sprintf("usr/share/doc/pkg%04d", d)
		es = append(es, ti.Dir(dn))
		for f := 0; f < files; f++ {
			es = append(es, ti.File(fmt.Sprintf("%s/file%03d", dn, f), fmt.Sprintf("content of %d/%d\n", d, f)))
		}
	}
	dir := filepath.Join(b.TempDir(), "layout")
	ti.WriteLayout(b, dir, "big", ti.Image(b, [][]byte{ti.Layer(es...)}))
	return "oci:" + dir + ":big"
}

// BenchmarkMountFirstStatCLI measures the warm `ocifs mount` of a
// 100,000-entry image (cached and indexed) until the first lstat inside
// answers, as a user sees it: the binary, the background server, index
// load and merge included. After the loop it walks and reads the whole
// mount once and reports the server's peak RSS against the target of
// 64 MiB + 200 bytes per entry.
func BenchmarkMountFirstStatCLI(b *testing.B) {
	requireFUSEMount(b)
	ref := bigLayout(b, 1000, 100)
	mustOcifs(b, nil, "pull", ref)
	base := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(base, strconv.Itoa(i))
		os.Mkdir(dir, 0o755)
		mustOcifs(b, nil, "mount", ref, dir)
		if _, err := os.Lstat(filepath.Join(dir, "usr/share/doc/pkg0500/file050")); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		mustOcifs(b, nil, "umount", dir)
		b.StartTimer()
	}
	b.StopTimer()
	dir := filepath.Join(base, "rss")
	os.Mkdir(dir, 0o755)
	mustOcifs(b, nil, "mount", ref, dir)
	defer mustOcifs(b, nil, "umount", dir)
	start := time.Now()
	if out, err := exec.Command("sh", "-c", "tar -C "+dir+" -cf - . | wc -c").CombinedOutput(); err != nil {
		b.Fatalf("reading the whole mount: %v\n%s", err, out)
	}
	b.ReportMetric(time.Since(start).Seconds(), "s/full-read")
	hwm := statusKiB(b, serverPid(b, dir), "VmHWM")
	const entries = 1000*101 + 4
	b.ReportMetric(float64(hwm)/1024, "MiB-peak-RSS")
	b.ReportMetric(float64(64<<20+200*entries)/(1<<20), "MiB-target")
}

// statusKiB reads a "Name:   N kB" line of /proc/PID/status.
func statusKiB(b testing.TB, pid int, name string) int {
	b.Helper()
	n, err := testenv.StatusKiB(pid, name)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
