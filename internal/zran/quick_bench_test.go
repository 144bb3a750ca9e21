package zran

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"
)

func benchFile(b *testing.B, name string, ours bool) {
	gz, err := os.ReadFile(name)
	if err != nil { b.Skip(err) }
	b.SetBytes(64000000)
	for i := 0; i < b.N; i++ {
		var r io.Reader
		if ours {
			r = NewReader(bytes.NewReader(gz), 0)
		} else {
			zr, _ := gzip.NewReader(bytes.NewReader(gz))
			zr.Multistream(true)
			r = zr
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != 64000000 { b.Fatal(n, err) }
	}
}
func BenchmarkQLibOurs(b *testing.B) { benchFile(b, "/tmp/zdata/lib.tar.gz", true) }
func BenchmarkQLibStd(b *testing.B) { benchFile(b, "/tmp/zdata/lib.tar.gz", false) }
func BenchmarkQShareOurs(b *testing.B) { benchFile(b, "/tmp/zdata/share.tar.gz", true) }
func BenchmarkQShareStd(b *testing.B) { benchFile(b, "/tmp/zdata/share.tar.gz", false) }
