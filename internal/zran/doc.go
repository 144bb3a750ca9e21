// Package zran gives random access into ordinary gzip streams (the
// layers of OCI images) through checkpoints, with an inflater of its own
// that can report deflate block boundaries and resume decoding at one.
//
// (Manual to follow.)
package zran
