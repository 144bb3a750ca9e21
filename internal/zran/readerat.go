package zran

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ReaderAt reads the uncompressed bytes of an indexed gzip blob at any
// offset, by decoding from the nearest checkpoint at or before it. It is
// safe for concurrent use: each call decodes with its own state, and
// blob must allow concurrent ReadAt (an *os.File does).
type ReaderAt struct {
	blob io.ReaderAt
	x    *Index
	pool sync.Pool // of *atState
}

var _ io.ReaderAt = (*ReaderAt)(nil)

// atState is the decoding state of one call.
type atState struct {
	d      decoder
	stream []byte // output buffer for ReadAt's streaming decode
}

// NewReaderAt returns a ReaderAt over blob, the compressed bytes x was
// built from. Nothing checks that they match beyond decoding: a wrong
// blob gives errors or wrong bytes.
func NewReaderAt(blob io.ReaderAt, x *Index) *ReaderAt {
	return &ReaderAt{blob: blob, x: x}
}

// Size is the length of the uncompressed stream.
func (ra *ReaderAt) Size() int64 { return ra.x.size }

// Index is the index ra reads through.
func (ra *ReaderAt) Index() *Index { return ra.x }

func (ra *ReaderAt) get() *atState {
	if st, ok := ra.pool.Get().(*atState); ok {
		return st
	}
	return &atState{}
}

// put returns st to the pool, dropping what it must not keep.
func (ra *ReaderAt) put(st *atState) {
	st.d.out, st.d.src = nil, nil
	ra.pool.Put(st)
}

// resume sets d to decode from checkpoint i into out, with the window
// already at out[:len(win)], reading the blob up to byte end.
func (ra *ReaderAt) resume(d *decoder, i int, win []byte, out []byte, end int64) error {
	c := &ra.x.cps[i]
	start := c.in / 8
	d.input.reset(io.NewSectionReader(ra.blob, start, end-start), start)
	if skip := uint(c.in % 8); skip > 0 {
		if !d.need(skip) {
			return d.eofErr()
		}
		d.consume(skip)
	}
	d.out, d.w, d.hist, d.limit = out, len(win), 0, len(win)
	d.resumeBody()
	return nil
}

// spanAlloc is the most DecodeSpan allocates before the decoded bytes
// show that a span really is longer (see Index.SpanBounds).
const spanAlloc = 8 << 20

// DecodeSpan decodes span i (see Index.SpanBounds) completely and returns
// its bytes in a new slice.
func (ra *ReaderAt) DecodeSpan(i int) ([]byte, error) {
	return ra.DecodeSpanTo(i, nil)
}

// SpanBufferSize is the capacity DecodeSpanTo needs to decode span i
// into the caller's buffer: the span, the window before it and a little
// slack.
func (ra *ReaderAt) SpanBufferSize(i int) int {
	start, end := ra.x.SpanBounds(i)
	return ra.x.cps[i].wlen + int(end-start) + 1 + outSlack
}

// DecodeSpanTo is DecodeSpan decoding into buf when cap(buf) is at least
// SpanBufferSize(i) (else into a new slice): callers that recycle buffers
// (a cache of decoded spans) save an allocation and a copy per span. The
// returned bytes then share buf's memory, not from its start.
func (ra *ReaderAt) DecodeSpanTo(i int, buf []byte) ([]byte, error) {
	if i < 0 || i >= len(ra.x.cps) {
		return nil, fmt.Errorf("decoding span %d: no such span (%d spans)", i, len(ra.x.cps))
	}
	st := ra.get()
	defer ra.put(st)
	b, err := ra.decodeSpan(&st.d, i, buf)
	if err != nil {
		return nil, fmt.Errorf("decoding span %d: %w", i, err)
	}
	return b, nil
}

func (ra *ReaderAt) decodeSpan(d *decoder, i int, buf []byte) ([]byte, error) {
	start, end := ra.x.SpanBounds(i)
	wlen := ra.x.cps[i].wlen
	stop := wlen + int(end-start)
	if cap(buf) >= stop+1+outSlack {
		buf = buf[:cap(buf)]
	} else {
		buf = make([]byte, min(stop, wlen+spanAlloc)+1+outSlack)
	}
	win, err := ra.x.window(d, i, buf)
	if err != nil {
		return nil, err
	}
	if err := ra.resume(d, i, win, buf, ra.x.compressedEnd(i)); err != nil {
		return nil, err
	}
	for d.w < stop {
		if d.w >= len(buf)-outSlack-1 { // grow: the span is longer than spanAlloc
			buf = append(buf[:d.w], make([]byte, min(stop-d.w, len(buf))+1+outSlack)...)
			d.out = buf
		}
		d.limit = min(stop, len(buf)-outSlack-1)
		ev, err := d.next()
		if err != nil {
			return nil, err
		}
		if ev == evEnd && d.w < stop {
			return nil, fmt.Errorf("%w: stream ends before the index says", ErrCorrupt)
		}
	}
	return buf[wlen:stop:stop], nil
}

var errNegativeOffset = errors.New("negative offset")

// ReadAt reads len(p) uncompressed bytes at off. It decodes from the
// checkpoint at or before off up to off+len(p), nothing further.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading at %d: %w", off, errNegativeOffset)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= ra.x.size {
		return 0, io.EOF
	}
	want := p[:min(int64(len(p)), ra.x.size-off)]
	n, err := ra.readAt(want, off)
	if err != nil {
		return n, fmt.Errorf("reading at uncompressed offset %d: %w", off, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (ra *ReaderAt) readAt(p []byte, off int64) (int, error) {
	i := ra.x.SpanOf(off)
	st := ra.get()
	defer ra.put(st)
	if st.stream == nil {
		st.stream = make([]byte, WindowSize+outChunk+outSlack)
	}
	d, out := &st.d, st.stream
	win, err := ra.x.window(d, i, out)
	if err != nil {
		return 0, err
	}
	if err := ra.resume(d, i, win, out, ra.x.dataEnd); err != nil {
		return 0, err
	}
	base := ra.x.cps[i].out - int64(len(win)) // offset of out[0]
	end := off + int64(len(p))
	n := 0
	for n < len(p) {
		if d.w >= len(out)-outSlack {
			base += int64(d.slide())
		}
		d.limit = int(min(int64(len(out)-outSlack), end-base))
		ev, err := d.next()
		if err != nil {
			return n, err
		}
		if lo := max(off+int64(n), base); lo < base+int64(d.w) {
			n += copy(p[n:], out[lo-base:d.w])
		}
		if ev == evEnd && n < len(p) {
			return n, fmt.Errorf("%w: stream ends before the index says", ErrCorrupt)
		}
	}
	return n, nil
}
