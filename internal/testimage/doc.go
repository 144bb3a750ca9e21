// Package testimage builds real OCI and Docker images in code, for tests
// and for the demo image: a small fixture language for tar layers, images
// with chosen compression per layer, multi-arch indexes with buildkit-style
// attestation manifests, and writers to a registry, an OCI layout or a
// `docker save` archive.
//
//	layer := testimage.Layer(
//		testimage.Dir("etc", testimage.Mode(0o755)),
//		testimage.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n", testimage.Owner(0, 0)),
//		testimage.Symlink("bin/sh", "busybox"),
//		testimage.Hardlink("bin/ls", "bin/busybox"),
//		testimage.Whiteout("usr/share/doc"),     // usr/share/.wh.doc
//		testimage.Opaque("var/cache"),           // var/cache/.wh..wh..opq
//		testimage.CharDev("dev/null", 1, 3),
//		testimage.File("usr/bin/ping", "...", testimage.Mode(0o4755),
//			testimage.Xattr("security.capability", testimage.CapNetBindService())),
//	)
//	img := testimage.Image(t, [][]byte{layer, layer2},
//		testimage.WithCompression(testimage.Gzip, testimage.Zstd))
//	testimage.Push(t, img, reg.Repo("demo")+":v1")
//
// Invariants:
//   - Output is deterministic: entries keep the order given, every mtime
//     defaults to Epoch, gzip headers carry no name or time, zstd runs on
//     one goroutine, config and history timestamps are Epoch. The same
//     fixture gives the same digest on every run (of the same
//     compress libraries).
//   - Tar streams are PAX, so xattrs (SCHILY.xattr.*) survive byte for byte,
//     including binary values such as security.capability.
//   - Layer writes entries exactly as given: it adds no parent directories
//     and no "./" prefixes, and Raw writes hostile headers untouched, so
//     tests can build any tar, including invalid ones.
//   - Diff IDs are the sha256 of the tar stream; digests the sha256 of the
//     blob. Media types: OCI by default (tar+gzip, tar+zstd, tar), Docker
//     schema 2 with WithDockerMediaTypes (zstd layers keep the OCI type,
//     as docker itself does).
//
// go-containerregistry's validate.Image assumes gzip layers; Verify does
// the same checks for any compression.
//
// Random makes realistic layer stacks from a seed for differential tests
// (see RandomEntries for the promises it keeps, which make a plain
// in-order extraction such as umoci's agree with the OCI rules).
//
// Helpers taking a TB call t.Fatalf on error; the Build/BuildIndex/
// SaveLayout/WriteTar variants return errors for code outside tests.
// The package does not import "testing".
package testimage
