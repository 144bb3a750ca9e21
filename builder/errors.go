package builder

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMissingTool reports that mkfs.ext4, e2fsck or debugfs is missing, or
// that mkfs.ext4 is too old to populate a filesystem (-d came with
// e2fsprogs 1.43). The CLI maps it to exit code 4.
var ErrMissingTool = errors.New("missing e2fsprogs tool")

// ErrNoSpace reports that the disk holding the output ran out of space.
var ErrNoSpace = errors.New("no space left on the output's disk")

// TooSmallError reports that the image cannot hold the tree: a fixed
// size (Options.Size) or inode count (Options.Inodes) that is too small.
type TooSmallError struct {
	Inodes bool  // the inode count, not the size, is too small
	Have   int64 // bytes (or inodes) allowed
	Need   int64 // bytes (or inodes) the tree needs, as estimated
}

func (e *TooSmallError) Error() string {
	if e.Inodes {
		return fmt.Sprintf("image does not fit in %d inodes: needs %d", e.Have, e.Need)
	}
	return fmt.Sprintf("image does not fit in %s: needs about %s", FormatSize(e.Have), FormatSize(e.Need))
}

// ContentError reports something in the tree that ext4 cannot store
// (an xattr set larger than a block, a /lost+found that is not a
// directory). It is a property of the image, not of the host.
type ContentError struct {
	Path string
	Msg  string
}

func (e *ContentError) Error() string {
	return fmt.Sprintf("/%s: %s", e.Path, e.Msg)
}

// CheckError reports that e2fsck found problems in the built image.
type CheckError struct {
	Stage   string // "after mkfs" or "after indexing"
	Code    int    // e2fsck's exit code
	Summary string // e2fsck's report, trimmed to its problem lines
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("e2fsck found problems %s (exit %d): %s", e.Stage, e.Code, e.Summary)
}

// ToolError reports a failed run of an e2fsprogs tool, with its stderr
// trimmed to the lines that say what went wrong.
type ToolError struct {
	Tool   string
	Code   int
	Stderr string
}

func (e *ToolError) Error() string {
	msg := e.Stderr
	if msg == "" {
		msg = "no message"
	}
	return fmt.Sprintf("%s exited with code %d: %s", e.Tool, e.Code, msg)
}

// summarize keeps the informative lines of a tool's output: no blank
// lines, no version banner, no pass headers; at most max lines.
func summarize(out string, max int) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "",
			strings.HasPrefix(l, "Pass "),
			strings.HasPrefix(l, "e2fsck 1."),
			strings.HasPrefix(l, "mke2fs 1."),
			strings.HasPrefix(l, "debugfs 1."):
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > max {
		keep = append(keep[:max], fmt.Sprintf("(%d more lines)", len(keep)-max))
	}
	return strings.Join(keep, "; ")
}

// FormatSize prints a byte count in binary units, one decimal.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
