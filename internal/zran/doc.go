// Package zran reads ordinary gzip streams (the layers of OCI images) at
// random, through checkpoints recorded while the stream is read once from
// start to end. It has its own inflater (RFC 1951, with the gzip framing
// of RFC 1952 around it) because compress/flate can neither report where
// deflate blocks start nor resume decoding at one.
//
// # Use
//
// Index while reading the stream anyway, then read at any offset:
//
//	z := zran.NewReader(blob, 0)        // io.Reader of the uncompressed bytes
//	io.Copy(tarScanner, z)              // the one pass (must reach io.EOF)
//	x, err := z.Index()                 // checkpoints; x.Size() is the tar's size
//	b, err := x.MarshalBinary()         // persist beside the blob
//	...
//	var x zran.Index
//	err = x.UnmarshalBinary(b)          // rejects damaged or old encodings
//	ra := zran.NewReaderAt(blobFile, &x)
//	n, err := ra.ReadAt(p, off)         // decodes from the checkpoint <= off
//	span, err := ra.DecodeSpan(i)       // or whole spans, for a span cache
//
// # Checkpoints and spans
//
// A checkpoint is the first bit of a deflate block (its compressed bit
// offset), the uncompressed offset of the block's first byte, and the
// window: the output before it, back to the start of its gzip member but
// at most WindowSize (32 KiB) bytes. Invariants of every Index:
//
//   - checkpoints are only at deflate block boundaries; the first is at
//     uncompressed offset 0, the first block of the first member;
//   - compressed and uncompressed offsets strictly increase, and every
//     checkpoint starts before the end of the data (no empty spans);
//   - a checkpoint is recorded at the first block boundary at or after
//     Span() bytes of output since the previous one, so a span is at least
//     Span() bytes (except the last) and longer when blocks are long:
//     encoders end blocks every 16-100 KiB of output in practice, but a
//     span can be several MiB (one huge block of zeros; DecodeSpan then
//     returns it whole);
//   - the first block of a gzip member is a block boundary like any other;
//     a checkpoint there has an empty window, since members never refer to
//     each other's data. Decoding crosses member boundaries (trailer, next
//     header) by itself, so a stream of thousands of small members (bgzip)
//     does not get thousands of checkpoints.
//
// Span i runs from checkpoint i to checkpoint i+1 (the last one to Size).
// DefaultSpan is 1 MiB, chosen by measurement on 64 MiB tars of this
// machine's /usr/lib/x86_64-linux-gnu and /usr/share (BenchmarkIndexSize,
// BenchmarkReadAt4K, blob in a warm file). A 4 KiB ReadAt decodes half a
// span on average; the index is mostly thinned windows:
//
//	span    index (% of blob)    4 KiB ReadAt median (p99)
//	        lib      share       lib             share
//	256K    1.88     0.56        0.30 (0.8) ms   0.15 (0.5) ms
//	1M      0.52     0.12        1.05 (2.5) ms   0.41 (1.4) ms
//	2M      0.28     0.07        1.63 (4.4) ms   0.76 (2.4) ms
//	4M      0.13     0.05        3.15 (8.7) ms   1.54 (4.4) ms
//
// At 1 MiB the index costs about half a percent of the blob, well inside
// a cache budget of 1.1× the blobs, and reads are twice as fast as at
// 2 MiB; 4 MiB would save 0.4% of the blob for reads three times slower.
//
// # Thin windows
//
// Windows are stored compressed (compress/flate, level 1) and thinned
// first: a back-reference reaches at most 32 KiB back, so only the output
// in the 32 KiB after a checkpoint can copy from its window. While indexing,
// the inflater marks the window bytes those back-references copy (about
// one in ten) and the rest are zeroed, which makes the stored window about
// five times smaller. Resumed decoding of the same blob reads only marked
// bytes, so its output is exact. If checkpoints are closer than 32 KiB
// (spans that small are for tests), the earlier window is kept whole.
//
// # Corrupt and hostile input
//
// Nothing here panics or loops on bad input; every decoding path is fuzzed
// against compress/flate and compress/gzip.
//
//   - Invalid compressed data gives an error wrapping ErrCorrupt; data that
//     ends early gives io.ErrUnexpectedEOF; a failing source's error is
//     passed on. Reader errors are sticky.
//   - The inflater accepts exactly the deflate streams compress/flate
//     accepts (complete Huffman codes, the empty distance code, and the
//     degenerate one-code-of-length-1 code), with the same output.
//   - Reader checks each member's CRC-32 and ISIZE and the optional header
//     CRC. After the last member it accepts the end of the input or zero
//     bytes up to it (padding to a tar block, which gzip(1) also accepts;
//     compress/gzip does not); anything else is an error wrapping
//     ErrTrailingGarbage. An input with no member at all is an error.
//   - ReaderAt cannot check CRCs (it decodes parts of members). It trusts
//     the blob to be the one the index was built from, as the cache does
//     after verifying the blob's digest; a different or damaged blob gives
//     ErrCorrupt errors or, rarely, wrong bytes, never a panic.
//   - UnmarshalBinary checks the magic, the version, a CRC-32C over the
//     whole encoding and every invariant above, plus a bound on how much
//     output a span's compressed bits can hold (a forged index cannot make
//     DecodeSpan allocate without bound; it allocates at most 8 MiB before
//     the decoded bytes show that a span really is longer). Errors wrap
//     ErrFormat. A window that does not decode to its length is an error
//     when a read first needs it.
//
// # Concurrency
//
// Index is immutable once built or decoded. ReaderAt is safe for
// concurrent use: each call takes its own decoder state from a sync.Pool
// and the blob's ReadAt must allow concurrent calls (an *os.File does).
// Reader is for one goroutine, like any io.Reader. Nothing here starts
// goroutines; parallel read-ahead and a cache of decoded spans belong to
// the caller.
//
// # Speed
//
// The inflater decodes with a 64-bit bit buffer refilled 8 bytes at a
// time, two-level Huffman tables (10 root bits for literals/lengths, 8 for
// distances) whose entries carry the extra-bit counts, up to three
// literals per refill, and match copies 16 bytes at a time (8 for
// distances 8-15, a byte fill for distance 1). Its hot loop runs while 8 input bytes and a longest match of output
// room remain, with no per-symbol end checks; it is exempt from race
// instrumentation (//go:norace) since its state is never shared. On gzip
// -6 streams it decodes 1.6-2.1 times as fast as compress/gzip and 1.2-1.6
// times as fast as klauspost/compress/gzip (BenchmarkInflate, in an
// earlier measurement: 533 MB/s against 258 and 339 on the /usr/lib tar;
// 607 MB/s since the 16-byte copies, docs/BENCHMARKS.md); indexing (thinning and
// compressing windows) costs about 5% on top.
package zran
