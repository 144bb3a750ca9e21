// Package cache is ocifs's on-disk image store: an OCI image layout that
// other tools can read, plus the layer indexes and uncompressed content
// that serving files needs.
//
// # Layout
//
//	DIR/oci-layout, DIR/index.json      OCI image layout 1.0.0
//	DIR/blobs/sha256/<digest>           manifests, configs, layer blobs
//	DIR/ocifs/index/sha256/<diffID>     layer index (see below)
//	DIR/ocifs/seek/sha256/<digest>      a compressed blob's seek index
//	DIR/ocifs/unpacked/sha256/<diffID>  a compressed layer's tar stream
//	DIR/ocifs/trees/sha256/<hash>       saved merged trees
//	DIR/ocifs/lazy/sha256/<digest>.*    a lazy layer's partial blob, the
//	                                    pieces it has, its TOC (lazy_store.go)
//	DIR/ocifs/pending/<digest>          an image being read lazily, not yet
//	                                    in index.json; Prune keeps what it
//	                                    references while a process holds it
//	                                    (pending.go)
//	DIR/ocifs/tmp/                      files being written
//	DIR/ocifs/locks/                    flock files
//
// index.json lists one entry per (REF, platform): the platform-specific
// image manifest, annotated with org.opencontainers.image.ref.name = the
// normalized REF (registry references fully qualified, e.g.
// index.docker.io/library/alpine:latest; oci: and docker-archive: paths
// made absolute) and com.github.ocifs.platform = the platform it was
// pulled for, and carrying the image's platform. `skopeo inspect
// oci:DIR:REF` and `umoci ls --layout DIR` read it. Multi-platform indexes
// are not stored: only the manifest chosen from them. Docker schema 2
// manifests are stored converted to OCI media types (config and layer
// blobs unchanged), as `skopeo copy` does, because skopeo and umoci ignore
// other entries of an OCI layout; the original manifest is kept as a blob,
// its digest is in the entry's com.github.ocifs.source-digest annotation,
// and Image.Digest reports it.
//
// # Invariants
//
//   - A file under a final name is complete and correct. Every write goes
//     to a temp file under ocifs/tmp, is hashed while copied, checked
//     against its digest and size, fsynced and renamed into place; the
//     directory is fsynced after. Nothing is created in place.
//   - A layer is complete when its blob and its index exist and its
//     content can be served in the store's Mode (see "Modes"): an
//     uncompressed blob (digest == diffID) is its own content; otherwise
//     the unpacked copy of the size the index records, or, in compact
//     mode, a valid seek index the blob can be read through. The index
//     is renamed into place last, so it marks completeness. Opening an
//     image checks the content file's size, not its hash: bytes gone bad
//     in place are Verify's to find (Repair removes the file, and the
//     next Get rebuilds it from the blob, offline). Every pass over a
//     compressed layer rewrites its unpacked copy when the mode keeps
//     one, since the copy may be what made the layer incomplete.
//   - One streaming pass per layer: fetch → sha256 digest check →
//     decompression chosen by magic bytes (gzip 1f8b through
//     internal/zran, which records checkpoints as it decodes; zstd frame
//     by frame, recording frame starts; else tar) → sha256 diffID check
//     against the config → tar scan, with the decompressed stream written
//     once as the unpacked copy when the mode keeps one (compact mode
//     also writes one for a zstd layer, whose frames are known only at
//     the end, and drops it if the frames can serve reads), and the seek
//     index written at the end. No layer is read twice to build its
//     index. Errors rank: a fetch failure, then
//     a digest mismatch (wrong bytes explain any later garbage), then a
//     decompression or tar error, then a diffID mismatch.
//   - Index files are versioned and checksummed (header with magic,
//     version, diffID, tar size and counts; varint payload; sha256
//     trailer). One that fails any check is rebuilt from the local blob,
//     never trusted and never needing the network.
//   - Output is deterministic: index.json entries are sorted by ref and
//     platform; an index is a pure function of the tar stream.
//
// # Layer indexes
//
// An index is an overlay.Layer: the entries of the layer's tar in stream
// order, each with Offset = where its data starts in the uncompressed tar
// stream. archive/tar reads exactly the header blocks of an entry before
// Next returns (block by block, data skipped with io.CopyN), so a
// counting reader under it gives that offset. archive/tar hides GNU sparse
// maps and an entry's physical data size; the scanner therefore keeps the
// raw header bytes of each entry and parses old GNU ('S', with extension
// blocks) and PAX 0.0/0.1/1.0 sparse maps itself. A sparse file has Size =
// its logical size and Sparse = its data fragments, each at TarOff in the
// stream; a sparse file whose one fragment covers it is stored as a plain
// file, and one with no data at all gets a single empty extent at its end,
// so len(Sparse) > 0 marks every sparse file. Names and link targets stay
// as stored (overlay.Merge cleans and checks them); xattrs come from PAX
// SCHILY.xattr.* (raw) and LIBARCHIVE.xattr.* (URL-encoded name, base64
// value), SCHILY winning, sorted. Entries that make no sense (unknown
// types, ids beyond 32 bits, negative sizes) fail the layer with
// ErrInvalidImage naming the layer digest and the entry.
//
// # Reading content
//
// Image.ReadLayerAt(i, p, off) reads layer i's uncompressed tar stream
// through one layerContent per layer, chosen when the image is opened
// (Layer.Content says which):
//
//   - ContentBlob, ContentUnpacked: a plain file (the uncompressed blob,
//     or the unpacked copy); ReadLayerAt is one pread, no lock, no
//     allocation. Image.LayerFile exposes the file for splice or FUSE
//     passthrough.
//   - ContentGzip: the gzip blob read at random through its checkpoints
//     (internal/zran): a span (about 1 MiB of output, from one checkpoint
//     to the next) decodes on its own from the checkpoint's bit offset
//     and 32 KiB window.
//   - ContentZstd: the zstd blob read span by span, a span being whole
//     frames (grown to 1 MiB of output, never beyond 4 MiB unless one
//     frame is).
//
// Callers never learn which: Image.LayerFile reports false for the last
// two, and everything else is the same. Any number of goroutines may read.
//
// The decoded spans go through the Store's span cache (Options.SpanCache,
// DefaultSpanCache): an LRU bounded by buffer bytes, shared by all the
// store's images, in which a span is decoded once however many readers
// want it at the same time (the others wait: singleflight). Buffers are
// reused once evicted, never while a reader copies from one (readers pin
// an entry while they copy). A read that enters a span for the first
// time right after its predecessor starts read-ahead: the next 8 spans
// that hold live data (Image.Tree marks the spans with data of the merged
// tree's files; what later layers delete is never decoded ahead) are
// queued and decoded by at most GOMAXPROCS-1 goroutines, which end when
// the queue is empty. The first tree Image.Tree makes also counts, per
// span, the bytes of its files' data: a span leaves the cache once they
// have all been read (the kernel's page cache holds them then), so its
// buffer is reused instead of the process growing by a span; a range
// read twice counts twice, so a span may leave early and be decoded
// again, a cost in time only. A second tree over the same Image turns the
// counting off. Image.DecodeAhead (ocifs build) decodes a tree's spans in
// the order its walk reads the files, in one goroutine, at most 32 MiB
// ahead of the readers, in place of the read-ahead above. Image.Close
// drops the image's spans.
//
// # Seek indexes
//
// ocifs/seek/sha256/<blob digest> holds where decoding a compressed blob
// can start: zran checkpoints for gzip, frame starts for zstd. It depends
// on the compressed bytes, not the diffID, hence its key. It is written
// by every pass over a compressed layer, in both modes (at most about
// 0.5% of the blob at 1 MiB spans: internal/zran's BenchmarkIndexSize),
// atomically; it has a header (magic, version, kind,
// blob digest, diffID, tar size), its own payload encoding (the zran
// index's has a version and a CRC of its own) and a sha256 trailer. One
// that fails a check is rebuilt from the blob, offline, when compact mode
// needs it. Verify decodes every blob through its seek index and checks
// the result against the diffID, so a seek index that decodes but lies
// is found too. Prune removes seek indexes of unreferenced blobs.
//
// Frames: the zstd decoder does not report frame boundaries, so the pass
// walks frame and block headers itself (RFC 8878: frame header size from
// the descriptor, 3-byte block headers, optional checksum, skippable
// frames), hands the decoder one frame at a time, and records where each
// starts. A stream the walker rejects (stray bytes after the last frame,
// a reserved block type, a frame cut short) fails the layer as invalid,
// as the decoder would.
//
// # Modes
//
// Options.Mode (DefaultMode: ModeUnpacked) says which compressed layers
// keep an unpacked copy. ModeUnpacked keeps one for every compressed
// layer. ModeCompact keeps none for gzip layers and zstd layers whose
// spans are at most 4 MiB; a single-frame zstd layer above that keeps its
// copy (List says why). A cache may change mode at any time:
//
//   - unpacked mode on a compact cache: a missing copy makes the layer
//     incomplete, and Get rebuilds it from the blob, offline;
//   - compact mode on an unpacked cache: copies are used as long as they
//     exist (they cost no decoding); Prune removes those whose blob can
//     serve the layer;
//   - PruneOptions.EvictUnpacked with MaxUnpacked removes copies, least
//     recently used first (the access time, which opening an image sets
//     explicitly), until the rest fit. A running mount keeps reading an
//     evicted copy through its open file; the next open reads the blob
//     (compact) or rebuilds the copy (unpacked).
//
// List reports what each image's files take on disk and how each layer
// is served; a layer is a Problem only if no mode could serve it.
//
// # For whoever adds content kinds
//
// A new way to serve a layer (a lazily fetched eStargz blob, say)
// implements layerContent; if it decodes chunks, it can implement
// spanSource (size, spans, bufSize, decode into a given buffer) and get
// the span cache, singleflight, read-ahead and live-span marking of
// seekContent for free. A span source's decode may block (on the
// network) and must be safe for concurrent calls; errors are returned to
// the reader that waited, never cached. openContent decides per layer
// what serves it; checkContent and layerCompleteIn say what "complete"
// means per mode, and List's describeLayer what cache ls shows.
//
// # Lazy layers (eStargz, zstd:chunked)
//
// GetLazy opens an image without downloading its eStargz and zstd:chunked
// layers (see tocFormat; lazySpecOf tells them by their annotations).
// eStargz: the containerd.io/snapshot/stargz/toc.digest annotation; one
// Range request for the footer (last 51 bytes), one for the TOC; the TOC
// JSON must hash to the annotation. zstd:chunked, both the estargz
// package's (io.containers.zstd-chunked.manifest-checksum, 40-byte
// footer) and containers/storage's (io.github.containers.…, 64-byte
// footer, podman and buildah): the compressed TOC must hash to the
// checksum annotation (or, on a zstd layer with only the eStargz
// annotation, its JSON to that); the position annotation makes that one
// Range request, without it the footer costs one more. A layer whose TOC
// does not match is pulled whole. The manifest holding the annotation was
// checked against its digest, so every chunk digest the TOC lists is
// pinned (a containers/storage file of one chunk lists only its file
// digest, which then pins the chunk). The layer's index is built
// from the TOC (same checks and limits as the tar scan) over a virtual
// stream: the data of its regular files back to back (lazyIndex). That
// index is never stored under the diffID and a tree made from it is
// never saved (Image.Tree merges afresh), since its offsets are not tar
// offsets. A TOC declaring a chunk over MaxChunkSize (64 MiB) or a
// member over 80 MiB makes the layer pulled whole: a read holds one of
// each in memory, and a TOC is pinned, not sane.
//
// Reads go through seekContent with one span per TOC chunk: a span's
// decode fetches the compressed member holding it (a gzip member, or zstd
// frames: tocFormat.member), plus the missing members after it, up to
// LazyOptions.FetchWindow, with one Range request, checks every chunk of
// the member against its TOC digest (a member that does not decode fails
// as a digest mismatch too), writes the member into
// ocifs/lazy/sha256/<digest>.blob (sparse, never a final name), then
// decodes and checks the chunk again before serving it. The member is
// recorded in <digest>.have after a sync of the blob, in the background
// for reads (at close at the latest) and at once for the background
// fetch; a record never names bytes a crash could lose. A member holding
// several chunks (ConvertOptions.MinChunkSize) is decoded once when its
// chunks are read in order: the layer keeps the reader of the last one
// (memberAt). A read waits at most LazyOptions.ReadTimeout (retries
// included) and then fails; errors are not cached, so a later read tries
// again. (One exception to the bound: a read that waited for a
// read-ahead of its chunk that failed otherwise than by timing out, a
// digest mismatch say, fetches the chunk itself, within its own
// ReadTimeout: see spanCache.read.) Image.FetchAll fetches the
// rest in runs of 4 MiB, yielding while reads fetch, then runs the
// ordinary layer pass over the assembled blob (digest, diffID, index,
// seek index, unpacked copy per mode), removes the lazy files and, once
// every layer is complete, records the image in index.json. Until then
// Lookup and Get do not see the image. Verify does not know ocifs/lazy;
// Usage counts it (DiskUsage.Lazy), and Prune removes the files of the
// partial blobs no process holds (sweepLazy).
//
// What is verified when: the manifest by its digest (at resolve), the TOC
// by the annotation (at open), each chunk by its TOC digest (at fetch and
// at every decode), the blob by its digest and the tar stream by the
// diffID (only once the whole blob is there, in FetchAll). A TOC that
// differs from its tar stream in what a TOC cannot carry (sub-second
// modification times, xattrs other than SCHILY's) gives a lazy view that
// differs from the pulled one; FetchAll compares the two indexes and
// warns.
//
// A registry that answers a Range request with the whole blob (200): at
// open, the image's remaining layers are pulled whole (one warning); if it
// happens later, the layer is downloaded whole in one stream that lands
// every missing member, and reads wait for theirs. eStargz layers are
// recognized in the ordinary pass too (the tar stream's last entry is
// stargz.index.json): their format entries (the TOC's own entry and the
// root's .prefetch.landmark and .no.prefetch.landmark) are hidden, as the
// stargz snapshotter and containers/storage hide them, so an image, its
// eStargz conversion (Convert) and a lazy mount of it merge to the same
// tree. The estargz package's zstd:chunked streams have the landmarks but
// no TOC entry (the TOC is in a skippable frame, which no decoder
// outputs); they are recognized by a root landmark and the missing
// end-of-archive blocks (hideZstdChunkedArtifacts), a rule on the tar
// stream alone, as the index is keyed by diffID. containers/storage's
// zstd:chunked stream is the original tar: nothing is hidden. Indexes
// stored before that rule (version 1) are rebuilt (indexVersion).
//
// # Serving while pulling
//
// A mount of an image not yet in the store can serve before the pull
// ends: PullOptions.Resolved gives the manifest (and its digest) and
// config once they are verified and stored, before any layer is fetched;
// PullOptions.LayerReady names each layer position as it becomes
// complete (found complete, or fetched and indexed); Store.OpenLayer then
// opens that layer's index and content on their own, as an Image would,
// without waiting for the image to be recorded. PullOptions.TopFirst
// starts the layer jobs from the top of the stack, whose layers decide
// most paths, and PullOptions.Yield slows the downloads a caller says
// should leave the link to others (to 16 KiB a second, in reads of at
// most that, so that their connections stay alive and their stall
// watchdogs quiet). PullOptions.Pinned lets a second process (the mount
// server) pull the image a first one resolved, from the manifest and
// config that one stored, without asking the registry again. Nothing a
// reported layer uses can be pruned while the pull
// runs (it holds the store lock shared until the image is recorded), and
// what OpenLayer returned keeps its files open, so it stays readable
// after a later Prune, as an Image does.
//
// # Concurrency and crashes
//
// A Store is safe for concurrent use by goroutines and by processes:
//
//   - Pull, Verify and index rebuilds hold ocifs/locks/store.lock shared;
//     Prune holds it exclusive, so it never removes a file between its
//     creation and the index.json entry that references it. Every lock is
//     flock(2): the kernel releases it when a process dies.
//   - Each layer is produced under an exclusive per-blob lock; a second
//     puller of the same blob waits and then finds it complete. Artifacts
//     keyed by diffID may be written by two pullers of different blobs at
//     once; both write identical verified bytes and rename atomically.
//   - index.json is updated under its own lock, read-modify-write, then
//     renamed.
//   - A writer holds an flock on its temp file. A later Pull removes temp
//     files older than a minute that no process holds (those of killed
//     pulls); Prune removes every unheld one. A killed pull therefore
//     leaves no partial file under a final name, and its rerun refetches
//     only what is missing.
//
// Hazards: locks are polled (flock cannot be interrupted), so waiting on a
// lock notices ctx cancellation within 20 ms. An Image keeps its files
// open: Prune may unlink them underneath (Linux keeps them readable), but
// an index rebuild for a pruned layer then fails. The span cache's memory
// bound counts cached spans only: spans being decoded (one per reader
// that missed, one per read-ahead goroutine) and up to 8 free buffers
// come on top.
//
// # Limits
//
// Layers are untrusted. Options.Limits (zero fields: DefaultLimits) bound
// what one may cost, and the pass enforces them as it streams: entries
// per layer, bytes of a name or link target, bytes of an xattr value, the
// memory of the index being built, and the bytes the layer inflates to
// (counted at the decompressor's output, so a bomb of a few MiB of zstd
// RLE blocks stops at MaxLayerSize of disk, and checked against the sizes
// tar headers declare, so a header claiming a terabyte fails at once).
// A blob whose manifest size already exceeds MaxLayerSize is refused
// before it is fetched. Linux's fixed limits (255-byte path components
// and xattr names) are checked too, so nothing that the kernel could not
// serve reaches a mount. A layer over a limit fails with a *LimitError
// (wrapping ErrLimit and ErrInvalidImage) that names the layer digest,
// the entry (cut to 120 bytes) and the limit; the rest of a bomb is then
// not read, not even to check its digest. Image.Indexes applies
// MaxIndexMemory to all of an image's layers together, from the index
// headers, before decoding any.
//
// # Network faults
//
// Every registry request runs over a transport that abandons it when no
// byte arrives for Options.Network.StallTimeout; go-containerregistry's
// own retries are off, and one policy covers manifests, configs, token
// exchanges and blobs: 408, 429 (Retry-After honoured up to MaxBackoff),
// 5xx, resets, short bodies and stalls are retried with exponential
// backoff and jitter, up to Network.Attempts in a row; 401, 403, 404 and
// (before the registry has answered once) refused connections fail at
// once. Blobs are read by a blobReader that resumes a broken download with
// a Range request from the first byte it has not delivered; the layer pass
// above it sees one stream and hashes it once, so a resumed blob is still
// verified end to end. A registry that ignores Range (200 with the whole
// blob) has the delivered prefix skipped; one that answers 416 or a wrong
// Content-Range is asked for the whole blob next time. An attempt that
// brings new bytes resets the count of failed attempts. The final error
// says "giving up after N attempts" and names the blob.
//
// # References
//
// REF is a registry reference ([HOST/]REPO[:TAG|@sha256:DIGEST]; loopback
// and private-network registries use plain HTTP, Options.Insecure allows
// it and unverified TLS everywhere), oci:DIR[:NAME] (NAME matched against
// ref.name annotations; without it the layout's only image or the one
// named latest) or docker-archive:FILE[:NAME] (docker save output; NAME
// matched against RepoTags). A docker archive has no manifest, so one is
// made: uncompressed layers keep the OCI uncompressed media type with
// digest == diffID (no recompression, served from the blob); compressed
// ones are hashed once first to learn their digest. Multi-platform indexes
// are resolved to the requested platform (default: HostPlatform),
// skipping attestation manifests; none matching is ErrNoPlatform with the
// available platforms listed. Credentials come from Options.Keychain
// (default: docker config and credential helpers).
//
// # Errors
//
// Errors wrap one of the sentinels (ErrBadReference, ErrNotFound,
// ErrUnauthorized, ErrDigestMismatch, ErrInvalidImage, ErrNoPlatform,
// ErrUnreachable, ErrLimit) where a caller may branch; digest errors name
// the digest; *LimitError says which limit (Limit* names, which are also
// ocifs's flag names) and its value. The package never prints: it logs to Options.Logger and reports
// progress through PullOptions.Progress.
package cache
