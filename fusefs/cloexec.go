package fusefs

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeFUSEFdsOnExec marks every descriptor of /dev/fuse in this process
// close-on-exec. go-fuse's direct mount opens the device without
// O_CLOEXEC, so a child started afterwards (mkfs.ext4 -d) would inherit
// it; a connection with an open descriptor in a live process is never
// aborted, so if this process then died the child would wait forever for
// answers to its own requests. Mount calls it before returning, so no
// child started after Mount inherits the descriptor.
func closeFUSEFdsOnExec() {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err != nil || target != fuseDevice {
			continue
		}
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			unix.CloseOnExec(fd)
		}
	}
}
