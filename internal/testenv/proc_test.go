package testenv

import (
	"os"
	"testing"
)

func TestStatusKiB(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		Missing(t, "/proc", "run on Linux with /proc mounted")
	}
	n, err := StatusKiB(os.Getpid(), "VmHWM")
	if err != nil || n <= 0 {
		t.Fatalf("StatusKiB(self, VmHWM) = %d, %v; want a positive size", n, err)
	}
	if _, err := StatusKiB(os.Getpid(), "NoSuchField"); err == nil {
		t.Fatal("StatusKiB of a missing field: no error")
	}
}

func TestMountServerNone(t *testing.T) {
	if pid := MountServer(t.TempDir()); pid != 0 {
		t.Fatalf("MountServer of a fresh directory = %d, want 0", pid)
	}
}
