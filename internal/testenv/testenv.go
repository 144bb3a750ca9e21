package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// StrictEnv is the environment variable that turns skips into failures.
const StrictEnv = "OCIFS_TEST_STRICT"

// Strict reports whether missing prerequisites must fail tests rather than
// skip them (env OCIFS_TEST_STRICT=1).
func Strict() bool {
	return os.Getenv(StrictEnv) == "1"
}

// Missing skips t, or fails it under strict mode, with a message saying
// what is missing and how to enable it.
func Missing(t testing.TB, what, howToEnable string) {
	t.Helper()
	msg := fmt.Sprintf("%s: %s", what, howToEnable)
	if Strict() {
		t.Fatalf("%s (%s=1: missing prerequisites fail instead of skipping)", msg, StrictEnv)
	}
	t.Skip(msg)
}

// RequireTool makes sure name is on PATH and returns its full path.
// howToInstall tells the reader how to get it, e.g. "apt-get install -y umoci".
func RequireTool(t testing.TB, name, howToInstall string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, fmt.Sprintf("%s not found on PATH", name), howToInstall)
	}
	return p
}

// RequireRoot makes sure the test runs with euid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, fmt.Sprintf("needs root (running as uid %d)", os.Geteuid()), "run the tests as root, e.g. sudo make test")
	}
}

// FUSEDevice is the device FUSE mounts are made through.
const FUSEDevice = "/dev/fuse"

// RequireFUSE makes sure /dev/fuse can be opened read-write by this process.
// It does not check fusermount3; use RequireTool for that where the
// unprivileged path is under test.
func RequireFUSE(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(FUSEDevice, os.O_RDWR, 0)
	if err != nil {
		Missing(t, fmt.Sprintf("cannot open %s: %v", FUSEDevice, err),
			"install fuse3 (apt-get install -y fuse3), load the fuse module (modprobe fuse) and run as root or make /dev/fuse accessible")
	}
	f.Close()
}
