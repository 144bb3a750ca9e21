package fusefs

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// op names a kind of FUSE request counted in Stats.
type op int

const (
	opLookup op = iota
	opForget
	opGetAttr
	opReadlink
	opOpen
	opRelease
	opFlush
	opRead
	opLseek
	opOpenDir
	opReadDir
	opReadDirPlus
	opReleaseDir
	opListXAttr
	opGetXAttr
	opAccess
	opStatFs
	opStatx
	opRefused
	numOps
)

// counters holds one atomic counter per op, plus the bytes read.
type counters struct {
	ops       [numOps]atomic.Uint64
	readBytes atomic.Uint64

	prefetched, prefetchedBytes, prefetchDropped atomic.Uint64
}

func (c *counters) add(o op) { c.ops[o].Add(1) }

// Stats counts the FUSE requests a mount has answered, by kind. Requests
// the kernel does not send (because it caches, or because an earlier
// answer told it to stop asking) are exactly what these numbers show.
type Stats struct {
	Lookup, Forget, GetAttr, Readlink uint64
	Open, Release, Flush, Read, Lseek uint64
	OpenDir, ReadDir, ReadDirPlus     uint64
	ReleaseDir, ListXAttr, GetXAttr   uint64
	Access, StatFs, Statx             uint64
	Refused                           uint64 // write-type requests, answered EROFS
	ReadBytes                         uint64 // bytes returned by Read

	// Prefetched counts files whose content was pushed to the kernel
	// (Options.Prefetch), PrefetchedBytes their bytes; PrefetchDropped
	// the listings too many to queue, whose files were not pushed.
	Prefetched, PrefetchedBytes, PrefetchDropped uint64
}

func (c *counters) snapshot() Stats { return sumCounters(c) }

// sumCounters adds up several sets of counters: a filling mount counts in
// one set until the image is complete and in the final file system's after.
func sumCounters(cs ...*counters) Stats {
	sum := func(v func(c *counters) *atomic.Uint64) (n uint64) {
		for _, c := range cs {
			n += v(c).Load()
		}
		return n
	}
	g := func(o op) uint64 { return sum(func(c *counters) *atomic.Uint64 { return &c.ops[o] }) }
	return Stats{
		Lookup: g(opLookup), Forget: g(opForget), GetAttr: g(opGetAttr), Readlink: g(opReadlink),
		Open: g(opOpen), Release: g(opRelease), Flush: g(opFlush), Read: g(opRead), Lseek: g(opLseek),
		OpenDir: g(opOpenDir), ReadDir: g(opReadDir), ReadDirPlus: g(opReadDirPlus),
		ReleaseDir: g(opReleaseDir), ListXAttr: g(opListXAttr), GetXAttr: g(opGetXAttr),
		Access: g(opAccess), StatFs: g(opStatFs), Statx: g(opStatx),
		Refused:         g(opRefused),
		ReadBytes:       sum(func(c *counters) *atomic.Uint64 { return &c.readBytes }),
		Prefetched:      sum(func(c *counters) *atomic.Uint64 { return &c.prefetched }),
		PrefetchedBytes: sum(func(c *counters) *atomic.Uint64 { return &c.prefetchedBytes }),
		PrefetchDropped: sum(func(c *counters) *atomic.Uint64 { return &c.prefetchDropped }),
	}
}

func (s Stats) fields() []struct {
	name string
	n    uint64
} {
	return []struct {
		name string
		n    uint64
	}{
		{"lookup", s.Lookup}, {"forget", s.Forget}, {"getattr", s.GetAttr}, {"readlink", s.Readlink},
		{"open", s.Open}, {"release", s.Release}, {"flush", s.Flush}, {"read", s.Read}, {"lseek", s.Lseek},
		{"opendir", s.OpenDir}, {"readdir", s.ReadDir}, {"readdirplus", s.ReadDirPlus},
		{"releasedir", s.ReleaseDir}, {"listxattr", s.ListXAttr}, {"getxattr", s.GetXAttr},
		{"access", s.Access}, {"statfs", s.StatFs}, {"statx", s.Statx}, {"refused", s.Refused},
	}
}

// Total returns the number of requests counted (ReadBytes aside).
func (s Stats) Total() uint64 {
	var t uint64
	for _, f := range s.fields() {
		t += f.n
	}
	return t
}

// Sub returns the requests counted since an earlier snapshot.
func (s Stats) Sub(old Stats) Stats {
	return Stats{
		Lookup: s.Lookup - old.Lookup, Forget: s.Forget - old.Forget,
		GetAttr: s.GetAttr - old.GetAttr, Readlink: s.Readlink - old.Readlink,
		Open: s.Open - old.Open, Release: s.Release - old.Release, Flush: s.Flush - old.Flush,
		Read: s.Read - old.Read, Lseek: s.Lseek - old.Lseek, OpenDir: s.OpenDir - old.OpenDir,
		ReadDir: s.ReadDir - old.ReadDir, ReadDirPlus: s.ReadDirPlus - old.ReadDirPlus,
		ReleaseDir: s.ReleaseDir - old.ReleaseDir, ListXAttr: s.ListXAttr - old.ListXAttr,
		GetXAttr: s.GetXAttr - old.GetXAttr, Access: s.Access - old.Access,
		StatFs: s.StatFs - old.StatFs, Statx: s.Statx - old.Statx,
		Refused: s.Refused - old.Refused, ReadBytes: s.ReadBytes - old.ReadBytes,
		Prefetched: s.Prefetched - old.Prefetched, PrefetchedBytes: s.PrefetchedBytes - old.PrefetchedBytes,
		PrefetchDropped: s.PrefetchDropped - old.PrefetchDropped,
	}
}

// String lists the non-zero counts, e.g. "total=12 lookup=5 getattr=1 read=6 (786432 bytes)".
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "total=%d", s.Total())
	for _, f := range s.fields() {
		if f.n != 0 {
			fmt.Fprintf(&b, " %s=%d", f.name, f.n)
		}
	}
	if s.ReadBytes != 0 {
		fmt.Fprintf(&b, " (%d bytes read)", s.ReadBytes)
	}
	if s.Prefetched != 0 || s.PrefetchDropped != 0 {
		fmt.Fprintf(&b, "; prefetched %d files (%d bytes), %d listings dropped", s.Prefetched, s.PrefetchedBytes, s.PrefetchDropped)
	}
	return b.String()
}
