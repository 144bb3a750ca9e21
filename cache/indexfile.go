package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	"github.com/ocifs/ocifs/overlay"
)

// A layer index file is
//
//	header (indexHeaderSize bytes, big-endian fixed fields)
//	payload (the entries, varint-encoded, in stream order)
//	sha256 of header and payload (32 bytes)
//
// The header names the layer's diffID, so a file under the wrong name is
// caught. Any change to the encoding, or to which entries of a stream the
// index holds, bumps indexVersion: an index of another version is
// rebuilt, never interpreted, and saved trees of another version are not
// found (treeName) and pruned. Version 2: the estargz package's
// zstd:chunked prefetch landmarks are hidden.
const (
	indexMagic      = "OCIFSIX\x00"
	indexVersion    = 2
	indexHeaderSize = 80
)

var errBadIndex = errors.New("bad layer index")

// indexHeader is the fixed part of an index file.
type indexHeader struct {
	DiffID     v1.Hash
	TarSize    int64 // length of the uncompressed tar stream
	Entries    int
	Whiteouts  int
	payloadLen int64
}

func encodeIndex(diffID v1.Hash, tarSize int64, res *tarindex.Result) ([]byte, error) {
	raw, err := hex.DecodeString(diffID.Hex)
	if err != nil || len(raw) != sha256.Size || diffID.Algorithm != "sha256" {
		return nil, fmt.Errorf("encoding index: bad diffID %s", diffID)
	}
	var p []byte
	for i := range res.Layer.Entries {
		p = appendEntry(p, &res.Layer.Entries[i])
	}
	b := make([]byte, 0, indexHeaderSize+len(p)+sha256.Size)
	b = append(b, indexMagic...)
	b = binary.BigEndian.AppendUint32(b, indexVersion)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = append(b, raw...)
	b = binary.BigEndian.AppendUint64(b, uint64(tarSize))
	b = binary.BigEndian.AppendUint64(b, uint64(len(res.Layer.Entries)))
	b = binary.BigEndian.AppendUint64(b, uint64(res.Whiteouts))
	b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	b = append(b, p...)
	return seal(b), nil
}

// seal appends the sha256 of b, the trailer of index and seek files.
func seal(b []byte) []byte {
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// unseal checks the sha256 trailer of a sealed file b (at least
// sha256.Size bytes) and returns what precedes it.
func unseal(b []byte) ([]byte, bool) {
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	got := sha256.Sum256(body)
	return body, bytes.Equal(got[:], sum)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendEntry(b []byte, e *overlay.Entry) []byte {
	b = appendString(b, e.Name)
	b = append(b, byte(e.Type))
	for _, v := range []uint32{e.Mode, e.UID, e.GID} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.MTime)
	b = binary.AppendUvarint(b, uint64(e.MTimeNsec))
	b = appendString(b, e.Linkname)
	b = binary.AppendUvarint(b, uint64(e.Devmajor))
	b = binary.AppendUvarint(b, uint64(e.Devminor))
	b = binary.AppendUvarint(b, uint64(len(e.Xattrs)))
	for _, x := range e.Xattrs {
		b = appendString(b, x.Name)
		b = appendString(b, x.Value)
	}
	b = binary.AppendVarint(b, e.Offset)
	b = binary.AppendUvarint(b, uint64(len(e.Sparse)))
	for _, x := range e.Sparse {
		b = binary.AppendVarint(b, x.Off)
		b = binary.AppendVarint(b, x.Len)
		b = binary.AppendVarint(b, x.TarOff)
	}
	return b
}

// parseIndexHeader checks the magic, version and diffID of an index file's
// first bytes; fileSize (if >= 0) must match what the header announces.
func parseIndexHeader(b []byte, diffID v1.Hash, fileSize int64) (indexHeader, error) {
	if len(b) < indexHeaderSize || string(b[:8]) != indexMagic {
		return indexHeader{}, fmt.Errorf("%w: not an ocifs index", errBadIndex)
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != indexVersion {
		return indexHeader{}, fmt.Errorf("%w: version %d, want %d", errBadIndex, v, indexVersion)
	}
	h := indexHeader{DiffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(b[16:48])}}
	if h.DiffID != diffID {
		return indexHeader{}, fmt.Errorf("%w: indexes %s, want %s", errBadIndex, h.DiffID, diffID)
	}
	h.TarSize = int64(binary.BigEndian.Uint64(b[48:]))
	entries, whiteouts := binary.BigEndian.Uint64(b[56:]), binary.BigEndian.Uint64(b[64:])
	h.payloadLen = int64(binary.BigEndian.Uint64(b[72:]))
	if h.TarSize < 0 || h.payloadLen < 0 || entries > uint64(h.payloadLen) || whiteouts > entries {
		return indexHeader{}, fmt.Errorf("%w: implausible header", errBadIndex)
	}
	h.Entries, h.Whiteouts = int(entries), int(whiteouts)
	if fileSize >= 0 && fileSize != indexHeaderSize+h.payloadLen+sha256.Size {
		return indexHeader{}, fmt.Errorf("%w: file has %d bytes, header says %d", errBadIndex, fileSize, indexHeaderSize+h.payloadLen+sha256.Size)
	}
	return h, nil
}

// statIndex reads and checks only the header of the index at path.
func statIndex(path string, diffID v1.Hash) (indexHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return indexHeader{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return indexHeader{}, err
	}
	b := make([]byte, indexHeaderSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return indexHeader{}, fmt.Errorf("%w: %v", errBadIndex, err)
	}
	return parseIndexHeader(b, diffID, fi.Size())
}

// decodeIndex verifies the whole file b (header, checksum) and decodes it.
func decodeIndex(b []byte, diffID v1.Hash) (*overlay.Layer, indexHeader, error) {
	h, err := parseIndexHeader(b, diffID, int64(len(b)))
	if err != nil {
		return nil, h, err
	}
	body, ok := unseal(b)
	if !ok {
		return nil, h, fmt.Errorf("%w: checksum mismatch", errBadIndex)
	}
	d := &indexDecoder{s: string(body[indexHeaderSize:])}
	layer := &overlay.Layer{Entries: make([]overlay.Entry, h.Entries)}
	for i := range layer.Entries {
		if err := d.entry(&layer.Entries[i]); err != nil {
			return nil, h, fmt.Errorf("%w: entry %d: %v", errBadIndex, i, err)
		}
	}
	if d.off != len(d.s) {
		return nil, h, fmt.Errorf("%w: %d bytes after the last entry", errBadIndex, len(d.s)-d.off)
	}
	return layer, h, nil
}
