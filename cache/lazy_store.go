package cache

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// lazyDir holds what lazily read layers have so far, per blob digest:
//
//	<hex>.toc   the verified TOC JSON (checked against the manifest's
//	            annotation again each time it is loaded)
//	<hex>.blob  the blob being assembled: a sparse file of the blob's
//	            size; only verified pieces are ever written into it
//	<hex>.have  which pieces are in .blob: records appended after the
//	            pieces were written and synced
//
// None of these is a final name: a layer is complete only when its
// assembled blob has passed the ordinary layer pass (digest, diffID,
// index), which copies it to blobs/ and removes these files. A process
// using a partial blob holds a shared flock on its .have file; Prune
// removes the files of partial blobs nobody holds (see sweepLazy).
const lazyDir = "ocifs/lazy"

func (s *Store) lazyPath(d v1.Hash, ext string) string {
	return filepath.Join(s.dir, lazyDir, d.Algorithm, d.Hex+ext)
}

// haveRecordSize: start, end (the blob range [start, end) is present) and
// a check word, so that a record torn by a crash is ignored.
const haveRecordSize = 24

var haveTable = crc64.MakeTable(crc64.ECMA)

func haveCheck(start, end uint64) uint64 {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], start)
	binary.BigEndian.PutUint64(b[8:], end)
	return crc64.Checksum(b[:], haveTable) ^ 0x6f63696673686176 // "ocifshav"
}

// partialBlob is a blob assembled piece by piece. Pieces are written
// (pwrite) once verified, marked present at once (so that waiting readers
// go on), and recorded in the .have log after the next sync, so a record
// never names bytes that a crash could lose.
type partialBlob struct {
	f   *os.File
	log *os.File
	x   *lazyIndex

	mu       sync.Mutex // guards have, claimed, nHave, pending, changed
	have     []bool
	claimed  []bool
	nHave    int
	pending  [][2]int64    // landed ranges not yet recorded
	changed  chan struct{} // closed and replaced whenever have or claimed changes
	syncMu   sync.Mutex    // serializes syncs of f and appends to log
	haveByte int64         // bytes of pieces present (under mu)
}

func (s *Store) openPartial(d v1.Hash, x *lazyIndex) (*partialBlob, error) {
	if err := os.MkdirAll(filepath.Dir(s.lazyPath(d, "")), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.lazyPath(d, ".blob"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening partial blob %s: %w", d, err)
	}
	if err := f.Truncate(x.blobSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing partial blob %s: %w", d, err)
	}
	log, err := os.OpenFile(s.lazyPath(d, ".have"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening partial blob log %s: %w", d, err)
	}
	// Held shared while the blob is in use (until close): Prune removes
	// only the partial blobs it can lock exclusively.
	if err := syscall.Flock(int(log.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		log.Close()
		return nil, fmt.Errorf("locking partial blob log %s: %w", d, err)
	}
	pb := &partialBlob{f: f, log: log, x: x, have: make([]bool, len(x.pieces)), claimed: make([]bool, len(x.pieces)), changed: make(chan struct{})}
	if err := pb.load(); err != nil {
		pb.close()
		return nil, err
	}
	return pb, nil
}

// load marks the pieces the log records; it stops at the first bad record
// (the tail a crash tore).
func (pb *partialBlob) load() error {
	b, err := io.ReadAll(pb.log)
	if err != nil {
		return fmt.Errorf("reading partial blob log: %w", err)
	}
	for ; len(b) >= haveRecordSize; b = b[haveRecordSize:] {
		start, end := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
		if binary.BigEndian.Uint64(b[16:]) != haveCheck(start, end) || end > uint64(pb.x.blobSize) || start > end {
			break
		}
		for i := pb.x.pieceOf(int64(start)); i < len(pb.x.pieces) && pb.x.pieces[i].end <= int64(end); i++ {
			if pb.x.pieces[i].start >= int64(start) && !pb.have[i] {
				pb.have[i] = true
				pb.nHave++
				pb.haveByte += pb.x.pieces[i].end - pb.x.pieces[i].start
			}
		}
	}
	return nil
}

func (pb *partialBlob) close() error {
	return errors.Join(pb.f.Close(), pb.log.Close())
}

// complete reports whether every piece is present.
func (pb *partialBlob) complete() bool {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.nHave == len(pb.have)
}

// state returns whether piece i is present, whether it is claimed by a
// fetcher, and the channel that is closed at the next change.
func (pb *partialBlob) state(i int) (have, claimed bool, changed <-chan struct{}) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.have[i], pb.claimed[i], pb.changed
}

// claim marks a run of missing, unclaimed pieces from first on as being
// fetched by the caller: at least first (which must be missing and
// unclaimed, else nothing is claimed), then following ones while the
// run's bytes stay within max. It returns the run's piece indexes.
func (pb *partialBlob) claim(first int, max int64) []int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	var run []int
	var n int64
	for i := first; i < len(pb.have) && !pb.have[i] && !pb.claimed[i]; i++ {
		size := pb.x.pieces[i].end - pb.x.pieces[i].start
		if len(run) > 0 && n+size > max {
			break
		}
		pb.claimed[i] = true
		run = append(run, i)
		n += size
	}
	return run
}

// nextMissing returns the first piece from i on that is missing and not
// claimed, or -1.
func (pb *partialBlob) nextMissing(i int) int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	for ; i < len(pb.have); i++ {
		if !pb.have[i] && !pb.claimed[i] {
			return i
		}
	}
	return -1
}

// unclaim gives back pieces a fetch did not land.
func (pb *partialBlob) unclaim(run []int) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	for _, i := range run {
		pb.claimed[i] = false
	}
	pb.notify()
}

// land writes a verified piece and marks it present.
func (pb *partialBlob) land(i int, data []byte) error {
	p := pb.x.pieces[i]
	if _, err := pb.f.WriteAt(data, p.start); err != nil {
		pb.unclaim([]int{i})
		return fmt.Errorf("writing partial blob: %w", err)
	}
	pb.mu.Lock()
	defer pb.mu.Unlock()
	pb.claimed[i] = false
	if !pb.have[i] {
		pb.have[i] = true
		pb.nHave++
		pb.haveByte += p.end - p.start
		pb.pending = append(pb.pending, [2]int64{p.start, p.end})
	}
	pb.notify()
	return nil
}

// notify wakes everyone waiting for a change. pb.mu is held.
func (pb *partialBlob) notify() {
	close(pb.changed)
	pb.changed = make(chan struct{})
}

// flush syncs the landed pieces and records them in the log, adjacent
// ranges merged.
func (pb *partialBlob) flush() error {
	pb.syncMu.Lock()
	defer pb.syncMu.Unlock()
	pb.mu.Lock()
	pending := pb.pending
	pb.pending = nil
	pb.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	if err := pb.f.Sync(); err != nil {
		return fmt.Errorf("syncing partial blob: %w", err)
	}
	var recs []byte
	for _, r := range mergeRanges(pending) {
		recs = binary.BigEndian.AppendUint64(recs, uint64(r[0]))
		recs = binary.BigEndian.AppendUint64(recs, uint64(r[1]))
		recs = binary.BigEndian.AppendUint64(recs, haveCheck(uint64(r[0]), uint64(r[1])))
	}
	if _, err := pb.log.Write(recs); err != nil {
		return fmt.Errorf("recording pieces of partial blob: %w", err)
	}
	return nil
}

// hasPending reports whether landed pieces wait to be recorded.
func (pb *partialBlob) hasPending() bool {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return len(pb.pending) > 0
}

// mergeRanges sorts ranges and joins adjacent ones.
func mergeRanges(rs [][2]int64) [][2]int64 {
	slices.SortFunc(rs, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	out := rs[:1]
	for _, r := range rs[1:] {
		if last := &out[len(out)-1]; r[0] == last[1] {
			last[1] = r[1]
			continue
		}
		out = append(out, r)
	}
	return out
}

// read returns piece i's bytes from the partial blob.
func (pb *partialBlob) read(i int) ([]byte, error) {
	p := pb.x.pieces[i]
	buf := make([]byte, p.end-p.start)
	if _, err := pb.f.ReadAt(buf, p.start); err != nil {
		return nil, fmt.Errorf("reading partial blob at %d: %w", p.start, err)
	}
	return buf, nil
}

// progress returns the bytes present and the blob's size.
func (pb *partialBlob) progress() (have, size int64) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.haveByte, pb.x.blobSize
}

// removeLazyFiles deletes a blob's lazy files once its layer is complete.
func (s *Store) removeLazyFiles(d v1.Hash) {
	for _, ext := range []string{".blob", ".have", ".toc"} {
		if err := os.Remove(s.lazyPath(d, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing lazy file", "path", s.lazyPath(d, ext), "err", err)
		}
	}
}

// sweepLazy removes the lazily read layers' files that no process is
// using: partial blobs (their .have unlocked) and their TOCs. A layer a
// stored image references is complete, and its files are leftovers too.
func (s *Store) sweepLazy(dryRun bool, rep *PruneReport) {
	dir := filepath.Join(lazyDir, "sha256")
	ents, err := os.ReadDir(s.path(dir))
	if err != nil {
		return
	}
	for _, e := range ents {
		hex, ok := strings.CutSuffix(e.Name(), ".have")
		if ok {
			s.sweepPartial(dir, hex, dryRun, rep)
		}
	}
	for _, e := range ents { // TOCs without a partial blob in use
		hex, ok := strings.CutSuffix(e.Name(), ".toc")
		if ok && !fileExists(s.path(filepath.Join(dir, hex+".have"))) {
			s.remove(filepath.Join(dir, e.Name()), dryRun, rep)
		}
	}
}

func (s *Store) sweepPartial(dir, hex string, dryRun bool, rep *PruneReport) {
	l, ok, err := tryLockFile(s.path(filepath.Join(dir, hex+".have")), lockExclusive)
	if err != nil || !ok {
		return // gone, or a mount is reading it
	}
	defer l.Unlock()
	for _, ext := range []string{".blob", ".toc", ".have"} {
		if p := filepath.Join(dir, hex+ext); fileExists(s.path(p)) {
			s.remove(p, dryRun, rep)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// allocated is the disk a directory's files take (sparse files count what
// they hold, not their length).
func allocated(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Lstat(filepath.Join(dir, e.Name()), &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}
