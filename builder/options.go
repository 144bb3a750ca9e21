package builder

import (
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// DefaultHeadroom is the free space the CLI asks for by default, as a
// percentage of the space the content needs.
const DefaultHeadroom = 10

// Phase names a step of Build, reported through Options.Progress.
type Phase string

// The phases of Build, in order.
const (
	PhaseMkfs  Phase = "mkfs"  // mkfs.ext4 -d copies the source tree
	PhaseIndex Phase = "index" // e2fsck -fyD indexes directories
	PhaseCheck Phase = "fsck"  // e2fsck -fn verifies the result
)

// Options control Plan and Build. The zero value sizes the image from the
// tree with no headroom, a journal, and a UUID derived from an empty Seed.
type Options struct {
	// Size fixes the image size in bytes (rounded down to whole 4 KiB
	// blocks); 0 sizes the image from the tree.
	Size int64
	// Free asks for at least this many free bytes in the image; when set
	// it replaces Headroom.
	Free int64
	// Headroom is the free space to leave, in percent of the space the
	// content needs (the CLI passes DefaultHeadroom unless told otherwise).
	Headroom float64
	// Inodes fixes the inode count; 0 means what the tree needs plus a
	// share for files the guest will create.
	Inodes uint64
	// NoJournal builds the image without a journal.
	NoJournal bool

	// Label is the volume label (at most 16 bytes).
	Label string
	// UUID is the filesystem UUID; empty means derived from Seed.
	UUID string
	// Seed makes the UUID and the directory hash seed reproducible: pass
	// the image's manifest digest.
	Seed string
	// Time is the timestamp e2fsprogs writes where the tree gives none
	// (superblock times, inode creation times, lost+found). Zero means
	// the newest modification time in the tree.
	Time time.Time

	// Tools are the e2fsprogs programs; zero fields are found on PATH
	// (and in /usr/sbin and /sbin, which an ordinary user's PATH often
	// lacks).
	Tools Tools
	// Logger receives debug detail (commands run, their output);
	// nil discards it.
	Logger *slog.Logger
	// Progress, when set, is called as each phase starts. Once it was
	// called with PhaseIndex, the source directory is not read again
	// (the caller may unmount it while e2fsck runs).
	Progress func(Phase)
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate checks the options that do not depend on the tree; Plan and
// Build call it too.
func (o *Options) Validate() error {
	switch {
	case o.Size < 0:
		return fmt.Errorf("size %d is negative", o.Size)
	case o.Free < 0:
		return fmt.Errorf("free space %d is negative", o.Free)
	case o.Headroom < 0 || o.Headroom > 1000:
		return fmt.Errorf("headroom %g%% is out of range (0 to 1000)", o.Headroom)
	case len(o.Label) > 16:
		return fmt.Errorf("label %q is longer than 16 bytes", o.Label)
	case o.UUID != "" && !uuidRE.MatchString(o.UUID):
		return fmt.Errorf("UUID %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", o.UUID)
	case o.Size > 0 && o.Free > 0:
		return fmt.Errorf("size and free space cannot both be set")
	}
	return nil
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o *Options) progress(p Phase) {
	if o.Progress != nil {
		o.Progress(p)
	}
}
