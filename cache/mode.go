package cache

import (
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Mode says which compressed layers keep a decompressed copy on disk.
type Mode string

const (
	// ModeCompact keeps no copy of a layer that can be read at random
	// from its blob (every gzip layer, and zstd layers whose frames are at
	// most 4 MiB of output): reads decode spans of the blob through its
	// seek index, with a shared cache of decoded spans. The cache then
	// holds little beyond the blobs. Single-frame zstd layers above 4 MiB
	// keep their copy.
	ModeCompact Mode = "compact"
	// ModeUnpacked keeps a decompressed copy of every compressed layer
	// and reads it with pread. Reads cost no decoding; the
	// cache holds the blobs plus every layer's tar stream.
	ModeUnpacked Mode = "unpacked"
)

// DefaultMode is the mode of a Store whose Options.Mode is empty:
// unpacked, by measurement (docs/BENCHMARKS.md, "Cache modes"). On the
// benchmark image compact mode stores 3.2 times less, but a warm ocifs
// build takes about 1.26 times as long (decoding costs 0.2-0.25 s of CPU
// per 120 MiB read, which on a busy 2-CPU machine lands on mkfs's
// critical path), random reads have a 4.6 ms p99 instead of 0.16 ms, and
// a mount server holds 38 MiB instead of 20 after a full read. Building
// and mounting are what ocifs is for; disk is what compact mode is for.
const DefaultMode = ModeUnpacked

// ParseMode reads a mode name ("compact" or "unpacked").
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeCompact, ModeUnpacked:
		return m, nil
	}
	return "", fmt.Errorf("unknown cache mode %q (want compact or unpacked)", s)
}

// Mode returns the store's mode.
func (s *Store) Mode() Mode { return s.mode }

// keepsCopy says whether the layer pass commits the unpacked copy of a
// blob of compression c whose seek index is x (nil: none).
func (s *Store) keepsCopy(c compression, x *seekIndex) bool {
	if c == uncompressed {
		return false
	}
	return s.mode == ModeUnpacked || x == nil || !x.servable()
}

// writesCopy says whether the layer pass writes an unpacked copy while it
// streams: always in unpacked mode; in compact mode only for zstd, whose
// frames are known only at the end (a seekable stream's copy is then
// dropped).
func (s *Store) writesCopy(c compression) bool {
	return c != uncompressed && (s.mode == ModeUnpacked || c == zstded)
}

// checkContent says whether a layer's content is there for mode: an
// uncompressed blob, or an unpacked copy of the right size, or (compact
// mode only) a valid seek index that reads may go through.
func (s *Store) checkContent(mode Mode, digest, diffID v1.Hash, tarSize int64) error {
	if digest == diffID {
		return checkSize(s.blobPath(digest), tarSize, digest)
	}
	copyErr := checkSize(s.unpackedPath(diffID), tarSize, digest)
	if copyErr == nil || mode == ModeUnpacked {
		return copyErr
	}
	_, err := s.servingSeek(digest, diffID, tarSize, copyErr)
	return err
}

// servingSeek loads the seek index of a compressed layer whose unpacked
// copy is unusable (copyErr says why) and checks that reads may go
// through it: it covers tarSize bytes and, for zstd, no span is too long.
// Errors do not name the layer: callers do.
func (s *Store) servingSeek(digest, diffID v1.Hash, tarSize int64, copyErr error) (*seekIndex, error) {
	x, err := s.loadSeek(digest, diffID)
	switch {
	case err != nil:
		return nil, fmt.Errorf("neither an unpacked copy (%v) nor a seek index: %w", copyErr, err)
	case x.tarSize != tarSize:
		return nil, fmt.Errorf("seek index covers %d bytes, the layer index says %d", x.tarSize, tarSize)
	case !x.servable():
		return nil, fmt.Errorf("an unpacked copy is needed, since a zstd frame holds %d bytes: %w", x.zs.maxSpan, copyErr)
	}
	return x, nil
}

func checkSize(path string, size int64, digest v1.Hash) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("content of layer %s: %w", digest, err)
	}
	if fi.Size() != size {
		return fmt.Errorf("content of layer %s has %d bytes, its index says %d", digest, fi.Size(), size)
	}
	return nil
}
