package cache

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"testing"
)

// Decompression bombs, written block by block so that the test never
// holds or compresses the stream they inflate to.

// zstdZeros is one zstd frame: prefix as raw blocks, then n zero bytes as
// RLE blocks of 128 KiB (4 bytes each: 32 MiB of blob per TiB).
func zstdZeros(t *testing.T, prefix []byte, n int64) []byte {
	t.Helper()
	const block = 128 << 10
	var b bytes.Buffer
	b.Write([]byte{0x28, 0xb5, 0x2f, 0xfd}) // magic
	b.WriteByte(0x00)                       // no content size, no checksum, a window descriptor follows
	b.WriteByte(7 << 3)                     // window 1<<(10+7) = 128 KiB
	blockHeader := func(last bool, typ, size int) {
		v := uint32(size)<<3 | uint32(typ)<<1
		if last {
			v |= 1
		}
		b.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16)})
	}
	for len(prefix) > 0 {
		k := min(len(prefix), block)
		blockHeader(false, 0, k)
		b.Write(prefix[:k])
		prefix = prefix[k:]
	}
	for n > 0 {
		k := min(n, block)
		n -= k
		blockHeader(n == 0, 1, int(k))
		b.WriteByte(0)
	}
	return b.Bytes()
}

// gzipZeros is a gzip member: prefix, then n zero bytes made of one
// deflate chunk of 1 MiB of zeros repeated (the chunk ends in a sync
// flush, so copies of it decode one after the other; zeros back-reference
// zeros). The trailer's CRC is not that of the content: the stream is
// meant to be stopped long before it.
func gzipZeros(t *testing.T, prefix []byte, n int64) []byte {
	t.Helper()
	const chunk = 1 << 20
	var out bytes.Buffer
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	fw, err := flate.NewWriter(&out, flate.BestCompression)
	must(t, err)
	fw.Write(prefix)
	fw.Write(make([]byte, 1024)) // so that every later chunk's distances are valid
	must(t, fw.Flush())
	var c bytes.Buffer
	cw, err := flate.NewWriter(&c, flate.BestCompression)
	must(t, err)
	cw.Write(make([]byte, chunk))
	must(t, cw.Flush())
	for i := int64(0); i < n/chunk; i++ {
		out.Write(c.Bytes())
	}
	must(t, fw.Close()) // a final empty block
	out.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 0), uint32(n)))
	return out.Bytes()
}
