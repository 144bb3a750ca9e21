package cache

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ocifs/ocifs/cache/internal/tarindex"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

// rootfsLikeTar is a tar of n entries shaped like a distribution's root
// filesystem: a directory per 20 entries, files of 0 to 16 KiB, a
// symlink every tenth entry.
func rootfsLikeTar(n int) []byte {
	es := make([]ti.Entry, 0, n)
	body := bytes.Repeat([]byte("usr/share/doc text line\n"), 700)
	for i := 0; len(es) < n; i++ {
		d := fmt.Sprintf("usr/share/pkg%04d", i/20)
		switch {
		case i%20 == 0:
			es = append(es, ti.Dir(d))
		case i%10 == 5:
			es = append(es, ti.Symlink(fmt.Sprintf("%s/link%d", d, i), "../../lib/target"))
		default:
			es = append(es, ti.File(fmt.Sprintf("%s/file%d", d, i), string(body[:i*997%len(body)])))
		}
	}
	return ti.Layer(es...)
}

// BenchmarkScanTar measures the tar scan alone (no decompression, no
// hashing, no copy): the indexer's own share of a layer pass.
func BenchmarkScanTar(b *testing.B) {
	const n = 20_000
	tarBytes := rootfsLikeTar(n)
	b.SetBytes(int64(len(tarBytes)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := tarindex.Scan(bytes.NewReader(tarBytes))
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Layer.Entries) != n {
			b.Fatalf("scanned %d entries, want %d", len(res.Layer.Entries), n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkIndexLoad measures decoding a stored layer index (checksum
// and entries), what a mount pays per layer when no merged tree is saved.
func BenchmarkIndexLoad(b *testing.B) {
	const n = 20_000
	tarBytes := rootfsLikeTar(n)
	res, err := tarindex.Scan(bytes.NewReader(tarBytes))
	if err != nil {
		b.Fatal(err)
	}
	diffID := sha256Hash(tarBytes)
	data, err := encodeIndex(diffID, int64(len(tarBytes)), res)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeIndex(data, diffID); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(len(data))/n, "file-B/entry")
}
