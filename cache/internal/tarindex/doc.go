// Package tarindex scans a layer's uncompressed tar stream into an
// overlay.Layer: every entry's metadata and where its data lies in the
// stream.
//
// It relies on archive/tar reading exactly the header blocks of an entry,
// and nothing of its data, before Next returns (its reader works block by
// block and skips data with io.CopyN; it never reads ahead), so a counting
// reader under it gives each entry's data offset. archive/tar hides GNU
// sparse maps and an entry's physical data size; Scan therefore keeps a
// copy of the raw header blocks of each entry (at most 8 MiB) and parses
// from them what archive/tar does not expose:
//
//   - the entry's own header block, behind any PAX ('x') and GNU long
//     name/link ('L', 'K') headers, and its size field: the physical data
//     size (unless a PAX size record overrides it), which says where the
//     next entry starts;
//   - old GNU sparse maps ('S': four entries in the header, 21 per
//     extension block) and PAX 1.0 maps (text at the start of the data
//     section); PAX 0.0 and 0.1 maps come from the PAX records.
//
// A sparse entry gets Size = its logical size and one Extent per data
// fragment, the fragments lying back to back in the stream from the data
// offset. A sparse file whose one fragment covers it is returned as a
// plain file; one with no data gets a single empty extent at its end, so
// len(Sparse) > 0 marks every sparse file.
//
// Names and link targets stay as stored; PAX global headers are skipped;
// xattrs come from SCHILY.xattr.* (raw value) and LIBARCHIVE.xattr.*
// (URL-encoded name, base64 value; SCHILY wins when both name one
// attribute), sorted by name. Unknown entry types, ids or device numbers
// beyond 32 bits, negative sizes and sparse maps that point outside the
// stored data are errors naming the entry.
//
// ScanLimited applies Limits while scanning (entries, name and link
// target bytes, xattr value bytes, index memory as IndexMemory counts it,
// and the stream size against the data sizes headers declare) and always
// rejects what Linux cannot serve: path components over 255 bytes (a
// whiteout marker may have 4 more, for its ".wh." prefix) and xattr names
// over 255 bytes. A limit error wraps a *LimitError. Errors name the entry,
// its name cut to 120 bytes; a failure between entries names the offset
// and the entry before it, and a stream that ends inside an entry's data
// says so (a header whose size lies).
//
// Hazard: a GODEBUG of tarinsecurepath=0 makes archive/tar refuse
// non-local names, which Scan then reports as an error for the whole
// layer; ocifs keeps the default.
package tarindex
