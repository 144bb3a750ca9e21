package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ocifs/ocifs/overlay"
)

// spanSource over the virtual stream: one span per chunk.

func (l *lazyLayer) size() int64   { return l.x.size }
func (l *lazyLayer) numSpans() int { return len(l.x.chunks) }
func (l *lazyLayer) spanOf(off int64) int {
	return l.x.chunkOf(off)
}
func (l *lazyLayer) spanBounds(i int) (start, end int64) {
	c := l.x.chunks[i]
	return c.vOff, c.vOff + c.size
}
func (l *lazyLayer) bufSize(i int) int { return int(l.x.chunks[i].size) }

// decode fetches the chunk's member if it is missing (within
// ReadTimeout), decodes the chunk and checks it against the TOC again, so
// that bytes damaged on disk are never served.
func (l *lazyLayer) decode(i int, buf []byte) ([]byte, error) {
	c := l.x.chunks[i]
	ctx, cancel := context.WithTimeout(l.ctx, l.opts.ReadTimeout)
	defer cancel()
	if err := l.ensure(ctx, c.piece); err != nil {
		l.s.log.Warn("reading a lazily fetched layer", "layer", l.desc.Digest, "offset", c.vOff, "err", err)
		return nil, err
	}
	m, err := l.memberAt(i)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, m, c.inner-m.pos); err != nil {
		m.release()
		return nil, l.chunkError(i, err)
	}
	if _, err := io.ReadFull(m, buf); err != nil {
		m.release()
		return nil, l.chunkError(i, err)
	}
	m.pos = c.inner + c.size
	l.keepMember(m)
	if sha256.Sum256(buf) != c.digest {
		l.s.log.Warn("a stored chunk of a lazy layer is damaged", "layer", l.desc.Digest, "offset", c.vOff)
		return nil, mismatchf("layer %s: stored chunk at offset %d of its data does not match the TOC's digest", l.desc.Digest, c.vOff)
	}
	return buf, nil
}

// memberReader is a member of the blob being decoded, at pos of its
// decompressed bytes.
type memberReader struct {
	io.Reader
	piece int
	pos   int64
	done  func()
}

func (m *memberReader) release() { m.done() }

// memberAt returns a reader of chunk i's member at or before the chunk:
// the one kept by the last decode of a chunk of that member if it has not
// gone past it, else a new one from the member's start. A member holding
// many chunks (the estargz package's minimum chunk size puts small files
// together) is thus decoded once when its chunks are read in order, not
// once per chunk. The kept reader holds its member's compressed bytes
// (a member is at most 80 MiB: maxLazyPiece) until another member's
// chunk is read or the layer closes: one member per layer.
func (l *lazyLayer) memberAt(i int) (*memberReader, error) {
	piece := l.x.chunks[i].piece
	l.memberMu.Lock()
	m := l.member
	if m != nil && m.piece == piece && m.pos <= l.x.chunks[i].inner {
		l.member = nil
		l.memberMu.Unlock()
		return m, nil
	}
	l.memberMu.Unlock()
	b, err := l.pb.read(piece)
	if err != nil {
		return nil, err
	}
	zr, release, err := l.format.member(b)
	if err != nil {
		return nil, l.chunkError(i, err)
	}
	l.stats.memberOpens.Add(1)
	return &memberReader{Reader: zr, piece: piece, done: release}, nil
}

// keepMember keeps m for the next chunk of its member, if its member
// holds chunks past m.pos and the layer is open; else it releases it.
// (close cancels l.ctx before it releases the kept reader under
// memberMu, so a reader kept after that is never left behind.)
func (l *lazyLayer) keepMember(m *memberReader) {
	if next := l.x.pieces[m.piece].chunks; len(next) == 0 || l.x.chunks[next[len(next)-1]].inner < m.pos {
		m.release()
		return
	}
	l.memberMu.Lock()
	if l.ctx.Err() != nil {
		l.memberMu.Unlock()
		m.release()
		return
	}
	old := l.member
	l.member = m
	l.memberMu.Unlock()
	if old != nil {
		old.release()
	}
}

// fill fetches every missing piece, one run after another, yielding to
// reads, then makes the layer complete (commit).
func (l *lazyLayer) fill(ctx context.Context) error {
	if l.committed.Load() {
		return nil
	}
	for i := 0; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.noRange.Load() {
			if l.pb.complete() {
				break
			}
			l.startWhole()
			if err := l.waitChange(ctx); err != nil {
				return err
			}
			continue
		}
		if i = l.pb.nextMissing(i); i < 0 {
			if l.pb.complete() {
				break
			}
			if err := l.waitChange(ctx); err != nil { // others' fetches in flight
				return err
			}
			i = 0
			continue
		}
		if err := l.yield(ctx); err != nil {
			return err
		}
		if run := l.pb.claim(i, backgroundRun); len(run) > 0 {
			if err := l.fetchRun(ctx, run, false); err != nil {
				return err
			}
		}
	}
	return l.commit(ctx)
}

// waitChange waits for the partial blob to change.
func (l *lazyLayer) waitChange(ctx context.Context) error {
	_, _, changed := l.pb.state(0)
	select {
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// yield waits while reads are fetching, so that the background fetch
// takes the bandwidth they leave.
func (l *lazyLayer) yield(ctx context.Context) error {
	for l.demand.Load() > 0 {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// commit runs the ordinary layer pass over the assembled blob: its digest
// and diffID are checked, it is copied to blobs/ and indexed (with the
// seek index and unpacked copy the mode keeps), and the lazy files go.
// The mount keeps reading through the open partial blob.
func (l *lazyLayer) commit(ctx context.Context) error {
	if err := l.pb.flush(); err != nil {
		return err
	}
	s, d := l.s, l.desc.Digest
	sl, err := s.lockShared(ctx)
	if err != nil {
		return err
	}
	defer sl.Unlock()
	ll, err := lockFile(ctx, s.layerLockPath(d), lockExclusive)
	if err != nil {
		return err
	}
	defer ll.Unlock()
	if s.layerComplete(d, l.diffID) != nil {
		_, err := s.runLayerPass(ctx, &layerJob{digest: d, diffID: l.diffID, size: l.desc.Size, writeBlob: true,
			open: func(context.Context) (io.ReadCloser, error) { return os.Open(s.lazyPath(d, ".blob")) }})
		if errors.Is(err, errBlobDigest) {
			s.log.Warn("the assembled blob of a lazy layer is wrong; fetching it again", "layer", d, "err", err)
			os.Remove(s.lazyPath(d, ".have"))
			os.Remove(s.lazyPath(d, ".blob"))
		}
		if err != nil {
			return fmt.Errorf("completing lazy layer %s: %w", d, err)
		}
	}
	l.compareIndex()
	s.removeLazyFiles(d)
	l.committed.Store(true)
	s.log.Info("layer fetched whole and verified", "layer", d)
	return nil
}

// compareIndex checks the index made from the TOC against the one the
// layer pass made from the tar stream, metadata only (offsets differ by
// design), and warns at the first difference: a TOC cannot carry
// everything a tar header can (sub-second times, non-SCHILY xattrs), and
// a mount made from the TOC then shows less than one made afterwards.
func (l *lazyLayer) compareIndex() {
	b, err := os.ReadFile(l.s.indexPath(l.diffID))
	if err != nil {
		return
	}
	tarIdx, _, err := decodeIndex(b, l.diffID)
	if err != nil {
		return
	}
	if diff := firstMetadataDiff(l.x.layer.Entries, tarIdx.Entries); diff != "" {
		l.s.log.Warn("the TOC of a lazy layer shows its files differently from its tar stream; mount again for the exact view",
			"layer", l.desc.Digest, "difference", diff)
	}
}

// firstMetadataDiff describes the first entry whose metadata differs, or
// returns "".
func firstMetadataDiff(toc, tar []overlay.Entry) string {
	if len(toc) != len(tar) {
		return fmt.Sprintf("%d entries in the TOC, %d in the tar stream", len(toc), len(tar))
	}
	for i := range toc {
		a, b := toc[i], tar[i]
		a.Offset, b.Offset, a.Sparse, b.Sparse = 0, 0, nil, nil
		if a.Name != b.Name || a.Type != b.Type || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID ||
			a.Size != b.Size || a.MTime != b.MTime || a.MTimeNsec != b.MTimeNsec || a.Linkname != b.Linkname ||
			a.Devmajor != b.Devmajor || a.Devminor != b.Devminor || fmt.Sprint(a.Xattrs) != fmt.Sprint(b.Xattrs) {
			return fmt.Sprintf("entry %d %.120q: TOC %+v, tar %+v", i, a.Name, a, b)
		}
	}
	return ""
}
