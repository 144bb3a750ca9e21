package cache

import (
	"errors"
	"fmt"
	"io"

	"github.com/ocifs/ocifs/cache/internal/tarindex"
)

// Limits bound what one image may cost. Layers come from the network and
// may be hostile: a few KiB of zstd can inflate to terabytes, a tar can
// hold millions of entries or megabyte names. A layer that exceeds a limit
// fails with a *LimitError naming the layer and the entry, before it can
// exhaust memory or fill the disk. A zero field means its default (see
// DefaultLimits); a negative one means no limit.
type Limits struct {
	// MaxEntries bounds a layer's tar entries.
	MaxEntries int
	// MaxName bounds the bytes of an entry's name or link target. Path
	// depth is bounded by it too (a component takes at least 2 bytes).
	// Components longer than 255 bytes (NAME_MAX) are always rejected:
	// Linux cannot look them up.
	MaxName int
	// MaxXattr bounds the bytes of one extended attribute value. Names
	// longer than 255 bytes (XATTR_NAME_MAX) are always rejected.
	MaxXattr int
	// MaxIndexMemory bounds the memory of layer indexes: of one layer
	// while it is scanned, and of all of an image's layers when they are
	// loaded together (Image.Indexes).
	MaxIndexMemory int64
	// MaxLayerSize bounds a layer's uncompressed tar stream, counted as
	// it is decompressed (and checked against sizes that headers
	// declare), so a decompression bomb stops at this many bytes of disk.
	MaxLayerSize int64
}

// DefaultLimits are the limits of a zero Limits: far above real images
// (the largest public layers hold a few hundred thousand entries), low
// enough that a hostile layer fails in seconds.
var DefaultLimits = Limits{
	MaxEntries:     4_000_000,
	MaxName:        4096,     // PATH_MAX
	MaxXattr:       64 << 10, // XATTR_SIZE_MAX
	MaxIndexMemory: 1 << 30,
	MaxLayerSize:   64 << 30,
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxEntries == 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxName == 0 {
		l.MaxName = d.MaxName
	}
	if l.MaxXattr == 0 {
		l.MaxXattr = d.MaxXattr
	}
	if l.MaxIndexMemory == 0 {
		l.MaxIndexMemory = d.MaxIndexMemory
	}
	if l.MaxLayerSize == 0 {
		l.MaxLayerSize = d.MaxLayerSize
	}
	return l
}

// scan returns the scanner's limits (negative, i.e. unlimited, fields
// become tarindex's 0).
func (l Limits) scan() tarindex.Limits {
	return tarindex.Limits{
		MaxEntries:     max(l.MaxEntries, 0),
		MaxName:        max(l.MaxName, 0),
		MaxXattr:       max(l.MaxXattr, 0),
		MaxIndexMemory: max(l.MaxIndexMemory, 0),
		MaxStream:      max(l.MaxLayerSize, 0),
	}
}

// Limit names, as LimitError.Limit reports them; they are also the names
// of ocifs's flags.
const (
	LimitEntries     = tarindex.LimitEntries
	LimitName        = tarindex.LimitName
	LimitXattr       = tarindex.LimitXattr
	LimitIndexMemory = tarindex.LimitIndexMemory
	LimitLayerSize   = tarindex.LimitLayerSize
)

// ErrLimit is wrapped by every *LimitError.
var ErrLimit = errors.New("limit exceeded")

// LimitError reports an image that exceeds one of the Limits. Its message
// names the layer and, where there is one, the entry.
type LimitError struct {
	Limit string // one of the Limit* names
	Max   int64
	err   error
}

func (e *LimitError) Error() string   { return e.err.Error() }
func (e *LimitError) Unwrap() []error { return []error{ErrLimit, ErrInvalidImage, e.err} }

// limitError returns the formatted error as a *LimitError if err wraps
// the scanner's limit error, else nil.
func limitError(err error, format string, args ...any) error {
	var le *tarindex.LimitError
	if !errors.As(err, &le) {
		return nil
	}
	return &LimitError{Limit: le.Limit, Max: le.Max, err: fmt.Errorf(format, args...)}
}

func limitErrorf(limit string, max int64, format string, args ...any) error {
	return &LimitError{Limit: limit, Max: max, err: fmt.Errorf(format, args...)}
}

// streamLimit fails the stream with a limit error once more than max bytes
// have passed (max < 0: no limit).
type streamLimit struct {
	r      io.Reader
	n, max int64
}

func (s *streamLimit) Read(p []byte) (int, error) {
	if s.max >= 0 && s.n > s.max {
		return 0, s.err()
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.max >= 0 && s.n > s.max {
		return n, s.err()
	}
	return n, err
}

func (s *streamLimit) err() error {
	return &tarindex.LimitError{Limit: LimitLayerSize, Max: s.max,
		What: "the uncompressed stream"}
}
