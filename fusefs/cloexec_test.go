package fusefs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNoInheritableFUSEFd checks that no descriptor of /dev/fuse survives
// exec: a child (mkfs.ext4 -d) holding one would keep the connection
// alive after a crash of this process and hang on its own requests.
func TestNoInheritableFUSEFd(t *testing.T) {
	mountImage(t, helperImage())
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != "/dev/fuse" {
			continue
		}
		found++
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !cloexec(string(info)) {
			t.Errorf("fd %s on /dev/fuse is inherited by children (no O_CLOEXEC): %s", e.Name(), info)
		}
	}
	if found == 0 {
		t.Fatal("no /dev/fuse descriptor found; the test is broken")
	}
}

func cloexec(fdinfo string) bool {
	for _, l := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(l, "flags:"); ok {
			var flags int
			for _, c := range strings.TrimSpace(v) {
				flags = flags*8 + int(c-'0')
			}
			return flags&unix.O_CLOEXEC != 0
		}
	}
	return false
}
