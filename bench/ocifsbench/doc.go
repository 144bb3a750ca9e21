// Command ocifsbench is the Go half of bench/run.sh: it turns a
// debootstrapped root filesystem into a multi-layer image on a registry,
// runs ocifs and the extraction pipeline side by side, and writes the
// results as Markdown. It is a benchmark driver, not part of ocifs, and
// not run in CI (which only builds it).
//
//	ocifsbench push ROOTFS REF          split ROOTFS into layers by path and push them
//	ocifsbench mkfs -ref REF -cache DIR SRC OUT
//	                                    run ocifs's builder (same mkfs options) over SRC
//	ocifsbench measure [flags]          the interleaved measurements, Markdown on stdout
//
// # Layers
//
// push splits the tree the way a Dockerfile would have built it: the
// base system without /usr, then /usr/lib, /usr/share and the rest of
// /usr, each layer carrying the parent directories of what it adds (as
// docker's diffs do), and a last "cleanup" layer that deletes the apt
// lists and downloaded packages with whiteouts and adds a file. Hardlink
// groups stay in the layer of their first path. Tar streams are PAX
// with numeric owners, real modes, mtimes (seconds), xattrs and device
// numbers; layers are gzip-compressed. The same tree gives the same
// digest.
//
// # Fairness
//
// Baseline and ocifs run interleaved in one process, repetition after
// repetition, so that load from other users of the machine hits both;
// each figure is the median over the repetitions and the load average is
// recorded. The baseline's mkfs.ext4 runs with exactly ocifs's options
// (ocifs's builder over the extracted directory); its mkfs time alone is
// the floor. Kernel caches are dropped before each walk and read.
package main
