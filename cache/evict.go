package cache

import (
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// unpackedCopy is a stored image's layer copy that Prune may evict.
type unpackedCopy struct {
	diffID v1.Hash
	size   int64
	used   time.Time // last use (access time, set when an image opens it)
	// servable: every blob of this diffID has a seek index its reads can
	// go through, so compact mode does not need the copy.
	servable bool
}

// evictUnpacked removes the copies compact mode does not need (in compact
// mode), then the least recently used ones over the budget. Under the
// exclusive store lock no pull is writing copies; images open in other
// processes keep reading theirs through their open files.
func (s *Store) evictUnpacked(im *v1.IndexManifest, opts PruneOptions, rep *PruneReport) {
	copies := s.unpackedCopies(im)
	sort.Slice(copies, func(i, j int) bool {
		if !copies[i].used.Equal(copies[j].used) {
			return copies[i].used.Before(copies[j].used)
		}
		return copies[i].diffID.Hex < copies[j].diffID.Hex
	})
	var total int64
	for _, c := range copies {
		total += c.size
	}
	for _, c := range copies {
		over := opts.EvictUnpacked && total > opts.MaxUnpacked
		if !over && !(s.mode == ModeCompact && c.servable) {
			continue
		}
		rel := filepath.Join(unpackedDir, "sha256", c.diffID.Hex)
		n := len(rep.Removed)
		s.remove(rel, opts.DryRun, rep)
		if len(rep.Removed) > n {
			rep.Evicted = append(rep.Evicted, rel)
			total -= c.size
		}
	}
	sort.Strings(rep.Evicted)
}

// unpackedCopies lists the copies of the compressed layers of the images
// in im, with their last use.
func (s *Store) unpackedCopies(im *v1.IndexManifest) []unpackedCopy {
	byDiff := map[v1.Hash]*unpackedCopy{}
	var order []v1.Hash
	for _, d := range im.Manifests {
		m, cf, err := s.readManifestAndConfig(d.Digest)
		if err != nil {
			continue
		}
		for i, l := range m.Layers {
			diffID := cf.RootFS.DiffIDs[i]
			if l.Digest == diffID {
				continue
			}
			c, ok := byDiff[diffID]
			if !ok {
				fi, err := os.Stat(s.unpackedPath(diffID))
				if err != nil {
					continue
				}
				c = &unpackedCopy{diffID: diffID, size: fi.Size(), used: accessTime(fi), servable: true}
				byDiff[diffID] = c
				order = append(order, diffID)
			}
			if _, err := s.servingSeek(l.Digest, diffID, c.size, nil); err != nil {
				c.servable = false
			}
		}
	}
	out := make([]unpackedCopy, 0, len(order))
	for _, d := range order {
		out = append(out, *byDiff[d])
	}
	return out
}

func accessTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	return fi.ModTime()
}
