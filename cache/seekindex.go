package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/ocifs/ocifs/internal/zran"
)

// A seek index says where decoding a compressed blob can start: the
// checkpoints of a gzip blob (internal/zran) or the frame boundaries of a
// zstd blob. It is recorded by the layer pass for every compressed layer
// and is what compact mode serves reads through. It depends on the
// compressed bytes, so it is keyed by the blob digest (two blobs of one
// diffID have different seek indexes), under ocifs/seek/sha256/<digest>:
//
//	header (seekHeaderSize bytes, big-endian fixed fields):
//	  magic "OCIFSSK\0", version, kind (1 gzip, 2 zstd),
//	  blob digest, diffID, tar size, payload length
//	payload: the zran.Index encoding (which has its own version and
//	  CRC), or the zstd frame table (zstdIndex.marshal)
//	sha256 of header and payload (32 bytes)
//
// Any change bumps seekVersion; a file of another version, or one that
// fails a check, is rebuilt from the blob, offline.
const (
	seekDir        = "ocifs/seek"
	seekMagic      = "OCIFSSK\x00"
	seekVersion    = 1
	seekHeaderSize = 8 + 4 + 4 + 32 + 32 + 8 + 8
)

var errBadSeek = errors.New("bad seek index")

// seekIndex is a decoded seek file: exactly one of gz and zs is set.
type seekIndex struct {
	digest, diffID v1.Hash
	tarSize        int64
	gz             *zran.Index
	zs             *zstdIndex
}

func (s *Store) seekPath(digest v1.Hash) string {
	return filepath.Join(s.dir, seekDir, digest.Algorithm, digest.Hex)
}

func (x *seekIndex) kind() compression {
	if x.gz != nil {
		return gzipped
	}
	return zstded
}

// contentKind is how a layer read through x is served.
func (x *seekIndex) contentKind() ContentKind {
	if x.gz != nil {
		return ContentGzip
	}
	return ContentZstd
}

// servable says whether reads may go through the index: always for gzip;
// for zstd only when no span is too long (see zstdMaxSpan).
func (x *seekIndex) servable() bool { return x.gz != nil || x.zs.seekable() }

func (x *seekIndex) encode() ([]byte, error) {
	d, err1 := hex.DecodeString(x.digest.Hex)
	f, err2 := hex.DecodeString(x.diffID.Hex)
	if errors.Join(err1, err2) != nil || len(d) != 32 || len(f) != 32 {
		return nil, fmt.Errorf("encoding seek index of %s: bad digest", x.digest)
	}
	var p []byte
	if x.gz != nil {
		if p, err1 = x.gz.MarshalBinary(); err1 != nil {
			return nil, err1
		}
	} else {
		p = x.zs.marshal()
	}
	b := make([]byte, 0, seekHeaderSize+len(p)+sha256.Size)
	b = append(b, seekMagic...)
	b = binary.BigEndian.AppendUint32(b, seekVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(x.kind()))
	b = append(b, d...)
	b = append(b, f...)
	b = binary.BigEndian.AppendUint64(b, uint64(x.tarSize))
	b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	b = append(b, p...)
	return seal(b), nil
}

// decodeSeek checks a whole seek file (header, names, checksum, payload
// invariants) and decodes it. diffID may be zero when not known (Verify).
func decodeSeek(b []byte, digest, diffID v1.Hash) (*seekIndex, error) {
	if len(b) < seekHeaderSize+sha256.Size || string(b[:8]) != seekMagic {
		return nil, fmt.Errorf("%w: not an ocifs seek index", errBadSeek)
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != seekVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errBadSeek, v, seekVersion)
	}
	x := &seekIndex{
		digest:  v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(b[16:48])},
		diffID:  v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(b[48:80])},
		tarSize: int64(binary.BigEndian.Uint64(b[80:])),
	}
	plen := binary.BigEndian.Uint64(b[88:])
	switch {
	case x.digest != digest:
		return nil, fmt.Errorf("%w: indexes blob %s, want %s", errBadSeek, x.digest, digest)
	case diffID != (v1.Hash{}) && x.diffID != diffID:
		return nil, fmt.Errorf("%w: diffID %s, want %s", errBadSeek, x.diffID, diffID)
	case x.tarSize < 0 || plen != uint64(len(b)-seekHeaderSize-sha256.Size):
		return nil, fmt.Errorf("%w: file has %d bytes, header says %d", errBadSeek, len(b), seekHeaderSize+plen+sha256.Size)
	}
	body, ok := unseal(b)
	if !ok {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadSeek)
	}
	if err := x.decodePayload(compression(binary.BigEndian.Uint32(b[12:])), body[seekHeaderSize:]); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadSeek, err)
	}
	return x, nil
}

func (x *seekIndex) decodePayload(kind compression, p []byte) error {
	switch kind {
	case gzipped:
		x.gz = new(zran.Index)
		if err := x.gz.UnmarshalBinary(p); err != nil {
			return err
		}
		if x.gz.Size() != x.tarSize {
			return fmt.Errorf("zran index covers %d bytes, header says %d", x.gz.Size(), x.tarSize)
		}
		return nil
	case zstded:
		zs, err := unmarshalZstdIndex(p, x.tarSize)
		x.zs = zs
		return err
	}
	return fmt.Errorf("unknown kind %d", kind)
}

// loadSeek reads and decodes the seek file of a blob.
func (s *Store) loadSeek(digest, diffID v1.Hash) (*seekIndex, error) {
	b, err := os.ReadFile(s.seekPath(digest))
	if err != nil {
		return nil, err
	}
	return decodeSeek(b, digest, diffID)
}

// spans returns the span source of the blob x indexes.
func (x *seekIndex) spans(blob io.ReaderAt) spanSource {
	if x.gz != nil {
		return newGzipSpans(blob, x.gz)
	}
	return &zstdSpans{x: x.zs, blob: blob}
}

// verifySeek checks a seek file: it decodes, and decoding the blob span
// by span through it gives the diffID it names. It returns the bytes it
// decoded. A seek file whose blob is gone is not checked further (Prune
// removes it).
func (s *Store) verifySeek(path string, digest v1.Hash) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	x, err := decodeSeek(b, digest, v1.Hash{})
	if err != nil {
		return int64(len(b)), err
	}
	blob, err := os.Open(s.blobPath(digest))
	if err != nil {
		return int64(len(b)), nil
	}
	defer blob.Close()
	n, err := decodeThrough(x, blob)
	if err != nil && blobIsBad(s.blobPath(digest), digest) {
		return int64(len(b)) + n, nil // the blob's problem, reported as such
	}
	return int64(len(b)) + n, err
}

// decodeThrough decodes the blob span by span through x and checks the
// result against x's diffID; it returns the bytes decoded. zstd spans are
// streamed: the span of a layer that keeps its copy (one long frame) may
// be far larger than the random-access decoder allows.
func decodeThrough(x *seekIndex, blob io.ReaderAt) (int64, error) {
	src, h := x.spans(blob), sha256.New()
	var buf []byte
	for i := range src.numSpans() {
		start, end := src.spanBounds(i)
		var err error
		if x.zs != nil {
			err = streamZstdSpan(x.zs, blob, i, end-start, h)
		} else {
			if n := src.bufSize(i); cap(buf) < n {
				buf = make([]byte, n)
			}
			var b []byte
			if b, err = src.decode(i, buf[:src.bufSize(i)]); err == nil {
				h.Write(b)
			}
		}
		if err != nil {
			return start, fmt.Errorf("decoding span %d: %w", i, err)
		}
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}); got != x.diffID {
		return x.tarSize, fmt.Errorf("the blob decodes through it to %s, want diffID %s", got, x.diffID)
	}
	return x.tarSize, nil
}

// streamZstdSpan decodes span i of a zstd blob into w with a streaming
// decoder, checking that it holds exactly n bytes.
func streamZstdSpan(x *zstdIndex, blob io.ReaderAt, i int, n int64, w io.Writer) error {
	from, to := x.compressedRange(i)
	dec, err := zstd.NewReader(io.NewSectionReader(blob, from, to-from), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer dec.Close()
	got, err := io.Copy(w, io.LimitReader(dec, n+1))
	if err == nil && got != n {
		err = fmt.Errorf("%d bytes, the seek index says %d", got, n)
	}
	return err
}

func blobIsBad(path string, digest v1.Hash) bool {
	got, _, err := hashFile(path)
	return err != nil || got != digest
}
