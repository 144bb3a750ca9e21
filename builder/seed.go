package builder

import (
	"crypto/sha256"
	"fmt"
	"math"

	"github.com/ocifs/ocifs/overlay"
)

// deriveUUID makes a UUID from seed for one purpose ("uuid", "hash_seed"),
// so that the same image gives the same filesystem identity on every
// build. It is marked as an RFC 9562 version 8 (custom) UUID.
func deriveUUID(seed, purpose string) string {
	h := sha256.Sum256([]byte("ocifs/builder/" + purpose + "\x00" + seed))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// buildTime is the timestamp handed to e2fsprogs: Options.Time, else the
// newest modification time in the tree, never below 1 (libext2fs treats a
// fake time of 0 as "use the clock") nor above what 32-bit superblock
// fields hold.
func buildTime(t *overlay.Tree, opts Options) int64 {
	s := opts.Time.Unix()
	if opts.Time.IsZero() {
		s = newestMTime(t)
	}
	return min(max(s, 1), math.MaxUint32)
}

func newestMTime(t *overlay.Tree) int64 {
	var newest int64
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno+t.Len()); ino++ {
		if s, _ := t.Node(ino).MTimeUnix(); s > newest {
			newest = s
		}
	}
	return newest
}
