package cache

import (
	"testing"

	"github.com/ocifs/ocifs/overlay"
)

// FuzzLazyIndex feeds TOC JSON (pinned by a manifest digest, but written
// by whoever made the image) to buildLazyIndex: it must fail cleanly or
// give an index whose chunks and pieces a lazy layer can serve without
// going out of range, within the memory a read may take, and whose layer
// Merge accepts or rejects without panicking.
func FuzzLazyIndex(f *testing.F) {
	const dig = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f.Add([]byte(`{"version":1,"entries":[
		{"name":"etc/","type":"dir","mode":493},
		{"name":"etc/motd","type":"reg","size":6,"offset":100,"chunkDigest":"`+dig+`","digest":"`+dig+`"},
		{"name":"etc/big","type":"reg","size":10,"offset":200,"chunkSize":4,"chunkDigest":"`+dig+`"},
		{"name":"etc/big","type":"chunk","offset":300,"chunkOffset":4,"chunkSize":6,"chunkDigest":"`+dig+`"},
		{"name":"lib","type":"symlink","linkName":"usr/lib"},
		{"name":"etc/motd.link","type":"hardlink","linkName":"etc/motd"},
		{"name":".wh.gone","type":"reg"}]}`), int64(400), int64(500))
	f.Add([]byte(`{"version":1,"entries":[{"name":"a","type":"reg","size":9223372036854775807,"offset":1,"chunkDigest":"`+dig+`"}]}`), int64(10), int64(20))
	f.Fuzz(func(t *testing.T, raw []byte, tocOff, blobSize int64) {
		if tocOff < 0 || blobSize < tocOff || blobSize > 1<<40 {
			return // fetchTOC gives only such offsets
		}
		toc, err := parseTOCJSON(raw)
		if err != nil {
			return
		}
		for _, lim := range []Limits{DefaultLimits, {MaxEntries: -1, MaxName: -1, MaxXattr: -1, MaxIndexMemory: -1, MaxLayerSize: -1}} {
			x, err := buildLazyIndex(toc, tocOff, blobSize, estargzArtifact, lim)
			if err != nil {
				continue
			}
			checkLazyIndex(t, x)
			overlay.Merge([]*overlay.Layer{&x.layer})
		}
	})
}

func checkLazyIndex(t *testing.T, x *lazyIndex) {
	var end int64
	for i, p := range x.pieces {
		if p.start != end || p.end <= p.start {
			t.Fatalf("piece %d is %d-%d after %d", i, p.start, p.end, end)
		}
		end = p.end
		if p.start < x.tocOffset && p.end-p.start > maxLazyPiece {
			t.Fatalf("piece %d of %d bytes", i, p.end-p.start)
		}
	}
	var v int64
	for i, c := range x.chunks {
		if c.vOff < v || c.size <= 0 || c.size > maxLazyChunk || c.vOff+c.size > x.size || c.inner < 0 {
			t.Fatalf("chunk %d: %+v (virtual stream %d bytes, previous end %d)", i, c, x.size, v)
		}
		if c.piece < 0 || c.piece >= len(x.pieces) || x.pieces[c.piece].start >= x.tocOffset {
			t.Fatalf("chunk %d in piece %d of %d", i, c.piece, len(x.pieces))
		}
		v = c.vOff + c.size
	}
	for _, e := range x.layer.Entries {
		if e.Type == overlay.TypeRegular && (e.Offset < 0 || e.Size < 0 || e.Offset+e.Size > x.size) {
			t.Fatalf("entry %q at %d+%d outside the %d-byte stream", e.Name, e.Offset, e.Size, x.size)
		}
	}
}
