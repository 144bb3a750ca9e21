package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RequireUnprivilegedFUSE prepares the machine for a FUSE mount made by a
// non-root user through the setuid fusermount3: /dev/fuse must be
// readable and writable by others (Debian creates it 0600 on some
// machines). Running as root, it makes /dev/fuse 0666 and leaves it so:
// test packages run in parallel, and restoring 0600 under another
// package's unprivileged mount would break it. Not root, it only checks.
func RequireUnprivilegedFUSE(t testing.TB) {
	t.Helper()
	RequireFUSE(t)
	RequireTool(t, "fusermount3", "apt-get install -y fuse3")
	st, err := os.Stat(FUSEDevice)
	if err != nil {
		Missing(t, fmt.Sprintf("stat %s: %v", FUSEDevice, err), "install fuse3 and load the fuse module")
		return
	}
	if st.Mode().Perm()&0o006 == 0o006 {
		return
	}
	if os.Geteuid() != 0 {
		Missing(t, fmt.Sprintf("%s is %v, not usable by other users", FUSEDevice, st.Mode().Perm()),
			"chmod 0666 /dev/fuse as root")
		return
	}
	if err := os.Chmod(FUSEDevice, 0o666); err != nil {
		t.Fatalf("making %s usable by other users: %v", FUSEDevice, err)
	}
}
