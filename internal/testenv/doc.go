// Package testenv decides what a test does when the machine lacks something
// it needs: a tool on PATH, root, or a usable /dev/fuse.
//
// By default such a test is skipped with a message that names what is
// missing and how to get it ("umoci not found on PATH: apt-get install -y
// umoci"). With OCIFS_TEST_STRICT=1 in the environment, which `make test`
// and CI set, the same test fails instead, so that nothing is silently
// skipped where the prerequisites are supposed to be installed.
//
// Every helper calls t.Helper, so the skip or failure points at the test
// that needed the thing, not at this package.
//
// It also reads /proc for tests and benchmarks that watch a mount's
// background server: MountServer finds its pid, StatusKiB its memory use.
package testenv
