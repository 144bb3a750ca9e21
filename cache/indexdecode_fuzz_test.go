package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	ti "github.com/ocifs/ocifs/internal/testimage"
)

var fuzzDiffID = v1.Hash{Algorithm: "sha256", Hex: "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"}

// FuzzDecodeIndex checks the index decoder on arbitrary input, two ways:
// as a whole file (header, size and checksum checks come first), and as a
// payload wrapped in a valid header and checksum, which reaches the entry
// decoder. It must not panic, and whatever it accepts must be valid and
// encode back to an index that decodes to the same entries.
func FuzzDecodeIndex(f *testing.F) {
	for _, tarb := range [][]byte{
		ti.Layer(ti.File("a", "x"), ti.Dir("d"), ti.Symlink("l", "a"), ti.Hardlink("h", "a"), ti.Whiteout("w")),
		ti.Layer(ti.File("f", "", ti.Xattr("user.k", []byte("v")), ti.Mode(0o4755), ti.Owner(7, 8)), ti.CharDev("c", 1, 3), ti.Fifo("p")),
	} {
		res, err := tarindex.Scan(bytes.NewReader(tarb))
		must(f, err)
		b, err := encodeIndex(fuzzDiffID, int64(len(tarb)), res)
		must(f, err)
		f.Add(b, uint16(len(res.Layer.Entries)), false)
		f.Add(b[indexHeaderSize:len(b)-sha256.Size], uint16(len(res.Layer.Entries)), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, entries uint16, wrap bool) {
		if wrap {
			data = wrapPayload(data, int(entries))
		}
		layer, h, err := decodeIndex(data, fuzzDiffID)
		if err != nil {
			return
		}
		for i, e := range layer.Entries {
			if !e.Type.Valid() || e.Mode&^0o7777 != 0 || e.Size < 0 || e.Offset < 0 || e.MTimeNsec >= 1e9 {
				t.Fatalf("entry %d accepted but invalid: %+v", i, e)
			}
		}
		again, err := encodeIndex(fuzzDiffID, h.TarSize, &tarindex.Result{Layer: *layer, Whiteouts: h.Whiteouts})
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		layer2, h2, err := decodeIndex(again, fuzzDiffID)
		if err != nil || !reflect.DeepEqual(layer, layer2) || h2.TarSize != h.TarSize || h2.Entries != h.Entries {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// wrapPayload makes an index file of payload p claiming n entries: a
// valid header (version, diffID, sizes) and checksum.
func wrapPayload(p []byte, n int) []byte {
	raw, _ := hex.DecodeString(fuzzDiffID.Hex)
	b := append([]byte(indexMagic), 0, 0, 0, indexVersion, 0, 0, 0, 0)
	b = append(b, raw...)
	b = binary.BigEndian.AppendUint64(b, 1<<20)
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	b = append(b, p...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}
