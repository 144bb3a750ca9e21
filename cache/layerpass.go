package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ocifs/ocifs/cache/internal/tarindex"
	"github.com/ocifs/ocifs/internal/zran"
)

// layerJob is one layer to make complete in the store: blob, index and,
// for compressed blobs, the unpacked copy.
type layerJob struct {
	digest v1.Hash
	diffID v1.Hash
	size   int64 // from the manifest
	// open returns the blob's bytes: from the source, or the local blob.
	open func(ctx context.Context) (io.ReadCloser, error)
	// writeBlob is false when open reads the store's own blob.
	writeBlob bool
	progress  func(delta int64)
}

// layerOutcome summarizes a finished pass.
type layerOutcome struct {
	fetched     int64 // compressed bytes read from the source (0 for local)
	header      indexHeader
	compression compression
}

// pass is the state of one streaming pass over a layer blob:
//
//	source → blob hash (+ blob temp file) → decompress → diffID hash
//	(+ unpacked temp file) → tar scan
//
// Nothing is renamed into place until every check has passed.
type pass struct {
	s          *Store
	job        *layerJob
	src        *sourceReader
	blobHash   *hashWriter
	blobTmp    *tempFile
	unpackTmp  *tempFile
	unpackBuf  *bufio.Writer
	diffHash   *hashWriter
	decoded    *errReader // the decompressor's output
	compressed compression
	seek       *seekIndex // of a compressed blob, once streamed
}

// runLayerPass makes the layer complete in the store in one read of its blob.
func (s *Store) runLayerPass(ctx context.Context, job *layerJob) (*layerOutcome, error) {
	if max := s.limits.MaxLayerSize; max >= 0 && job.size > max {
		return nil, limitErrorf(LimitLayerSize, max, "layer %s: blob of %d bytes exceeds the limit of %d (%s)", job.digest, job.size, max, LimitLayerSize)
	}
	rc, err := job.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching layer %s: %w", job.digest, classifyRemote(err))
	}
	defer rc.Close()
	// One byte more than announced is enough to fail the size check; a
	// source that streams on forever is not read further.
	var r io.Reader = rc
	if job.size >= 0 {
		r = io.LimitReader(rc, job.size+1)
	}
	p := &pass{s: s, job: job, src: &sourceReader{r: r, progress: job.progress}}
	defer p.cleanup()
	res, err := p.stream()
	if err != nil {
		return nil, err
	}
	return p.commit(res)
}

func (p *pass) cleanup() {
	p.blobTmp.abort()
	p.unpackTmp.abort()
}

// stream runs the pass up to, not including, the renames. Errors are
// ranked: a source failure, then a digest mismatch (wrong bytes explain
// any later garbage), then a decompression or tar error, then the diffID.
func (p *pass) stream() (*tarindex.Result, error) {
	var err error
	var blobW io.Writer
	if p.job.writeBlob {
		if p.blobTmp, err = p.s.newTemp("blob-" + p.job.digest.Hex); err != nil {
			return nil, err
		}
		blobW = p.blobTmp.f
	}
	p.blobHash = newHashWriter(blobW)
	br := bufio.NewReaderSize(io.TeeReader(p.src, p.blobHash), 1<<20)
	p.compressed = sniff(br)
	res, scanErr := p.scan(br)
	if errors.Is(scanErr, ErrLimit) {
		// Reading the rest of a bomb to check its digest would cost what
		// the limit is there to prevent.
		return nil, scanErr
	}
	// Read what the decoder and the scanner left, so that the digest
	// covers the whole blob whatever happened above.
	if _, err := io.Copy(io.Discard, br); err != nil && scanErr == nil {
		scanErr = err
	}
	// A write to the cache that failed (a full disk) explains every
	// error after it: the short blob, the truncated copy.
	if err := p.writeError(); err != nil {
		return nil, err
	}
	if err := p.checkSource(); err != nil {
		return nil, err
	}
	if err := p.blobHash.check(p.job.digest, p.job.size); err != nil {
		verb := "fetching"
		if !p.job.writeBlob {
			verb = "reading stored"
		}
		return nil, &kindError{kind: errBlobDigest, err: fmt.Errorf("%s layer %s: %w", verb, p.job.digest, err)}
	}
	if scanErr != nil {
		return nil, scanErr
	}
	if p.diffID() != p.job.diffID {
		return nil, mismatchf("layer %s: uncompressed content hashes to %s, config says diffID %s", p.job.digest, p.diffID(), p.job.diffID)
	}
	return res, nil
}

// scan decompresses br and scans the tar stream, copying it to the
// unpacked temp file when the store keeps one (see Store.writesCopy), and
// recording the blob's seek index. The uncompressed stream is counted
// against Limits.MaxLayerSize as it is produced, so that a decompression
// bomb stops there.
func (p *pass) scan(br *bufio.Reader) (*tarindex.Result, error) {
	dec, err := decompressor(p.compressed, br, zran.DefaultSpan)
	if err != nil {
		return nil, errorf(ErrInvalidImage, "layer %s: %v", p.job.digest, err)
	}
	defer dec.close()
	p.decoded = &errReader{r: dec}
	var ur io.Reader = &streamLimit{r: p.decoded, max: p.s.limits.MaxLayerSize}
	if p.compressed != uncompressed {
		var w io.Writer
		if p.s.writesCopy(p.compressed) {
			if p.unpackTmp, err = p.s.newTemp("unpacked-" + p.job.diffID.Hex); err != nil {
				return nil, err
			}
			p.unpackBuf = bufio.NewWriterSize(p.unpackTmp.f, 256<<10)
			w = p.unpackBuf
		}
		p.diffHash = newHashWriter(w)
		ur = io.TeeReader(ur, p.diffHash)
	}
	res, err := tarindex.ScanLimited(ur, p.s.limits.scan())
	if err != nil {
		return nil, p.scanError(err)
	}
	// The stream may go on after the end-of-archive marker; the diffID,
	// the unpacked copy and the seek index cover all of it.
	if _, err := io.Copy(io.Discard, ur); err != nil {
		return nil, p.scanError(err)
	}
	res = hideZstdChunkedArtifacts(hideEStargzArtifacts(res), p.tarSize())
	if p.seek, err = dec.seek(p.tarSize()); err != nil {
		return nil, p.scanError(err)
	}
	return res, nil
}

// scanError names the layer in an error of the scan or of the drain after
// it: a limit, else a source failure, else the decompressor's error (which
// explains whatever the tar reader then saw), else the tar error.
func (p *pass) scanError(err error) error {
	if le := limitError(err, "layer %s: %w", p.job.digest, err); le != nil {
		return le
	}
	if p.src.err != nil {
		return p.src.err
	}
	if p.decoded.err != nil && p.compressed != uncompressed {
		return errorf(ErrInvalidImage, "layer %s: decompressing %s at uncompressed offset %d: %v",
			p.job.digest, p.compressed, p.decoded.n, p.decoded.err)
	}
	return &kindError{kind: ErrInvalidImage, msg: fmt.Sprintf("scanning layer %s", p.job.digest), err: err}
}

// writeError reports the first failed write of the blob or of its
// unpacked copy into the cache.
func (p *pass) writeError() error {
	err := p.blobHash.err
	if err == nil && p.diffHash != nil {
		err = p.diffHash.err
	}
	if err == nil && p.unpackBuf != nil {
		err = p.unpackBuf.Flush() // a bufio.Writer keeps its first error
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("writing layer %s into the cache: %w", p.job.digest, err)
}

// checkSource reports a read error of the source, unless the bytes read
// are the full announced size: then the registry client's own digest
// check failed at EOF, and the digest check that follows says it better.
func (p *pass) checkSource() error {
	if p.src.err == nil {
		return nil
	}
	if p.blobHash.n >= p.job.size && p.job.size >= 0 && p.blobHash.sum() != p.job.digest {
		return nil
	}
	return fmt.Errorf("fetching layer %s: %w", p.job.digest, classifyRemote(p.src.err))
}

func (p *pass) diffID() v1.Hash {
	if p.diffHash == nil {
		return p.blobHash.sum()
	}
	return p.diffHash.sum()
}

func (p *pass) tarSize() int64 {
	if p.diffHash == nil {
		return p.blobHash.n
	}
	return p.diffHash.n
}

// commit renames the verified files into place: the blob first, then the
// unpacked copy (if the store keeps it) and the seek index, and the index
// last, because a valid index is what marks a layer complete.
func (p *pass) commit(res *tarindex.Result) (*layerOutcome, error) {
	if p.blobTmp != nil {
		if err := p.blobTmp.commit(p.s.blobPath(p.job.digest)); err != nil {
			return nil, err
		}
	}
	if p.unpackTmp != nil && p.s.keepsCopy(p.compressed, p.seek) {
		if err := p.unpackBuf.Flush(); err != nil {
			return nil, fmt.Errorf("writing unpacked layer %s: %w", p.job.diffID, err)
		}
		if err := p.unpackTmp.commit(p.s.unpackedPath(p.job.diffID)); err != nil {
			return nil, err
		}
	}
	if err := p.commitSeek(); err != nil {
		return nil, err
	}
	b, err := encodeIndex(p.job.diffID, p.tarSize(), res)
	if err != nil {
		return nil, err
	}
	if err := p.s.writeFileAtomic(p.s.indexPath(p.job.diffID), b); err != nil {
		return nil, fmt.Errorf("writing index of layer %s: %w", p.job.digest, err)
	}
	h, err := parseIndexHeader(b, p.job.diffID, int64(len(b)))
	if err != nil {
		return nil, err
	}
	out := &layerOutcome{header: h, compression: p.compressed}
	if p.job.writeBlob {
		out.fetched = p.blobHash.n
	}
	return out, nil
}

// commitSeek writes the blob's seek index.
func (p *pass) commitSeek() error {
	if p.seek == nil {
		return nil
	}
	p.seek.digest, p.seek.diffID = p.job.digest, p.job.diffID
	b, err := p.seek.encode()
	if err == nil {
		err = p.s.writeFileAtomic(p.s.seekPath(p.job.digest), b)
	}
	if err != nil {
		return fmt.Errorf("writing seek index of layer %s: %w", p.job.digest, err)
	}
	return nil
}

// errBlobDigest marks a blob whose bytes do not match its digest (as
// opposed to a diffID mismatch, where the config is wrong, not the blob).
var errBlobDigest = errors.New("blob digest mismatch")

// errReader remembers the first error of r other than EOF and counts the
// bytes read.
type errReader struct {
	r   io.Reader
	n   int64
	err error
}

func (e *errReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	e.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// sourceReader remembers the first read error of the source other than
// EOF and reports progress.
type sourceReader struct {
	r        io.Reader
	err      error
	progress func(int64)
}

func (s *sourceReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if n > 0 && s.progress != nil {
		s.progress(int64(n))
	}
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}
