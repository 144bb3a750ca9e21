package fusefs

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ocifs/ocifs/overlay"
)

// Options configure a mount.
type Options struct {
	// AllowOther lets other users see the mount (allow_other), and then
	// has the kernel enforce the image's permissions (default_permissions).
	// As an ordinary user this needs user_allow_other in /etc/fuse.conf.
	AllowOther bool
	// Debug logs every FUSE request and answer at debug level.
	Debug bool
	// Logger receives warnings (malformed attributes left out, read
	// errors); nil discards them.
	Logger *slog.Logger
	// FsName is the mount's source as mount(8) and df show it; default "ocifs".
	FsName string
	// Subtype makes the type "fuse.<Subtype>"; default "ocifs".
	Subtype string
	// Prefetch hands the kernel the content of every small file of a
	// directory as soon as the directory is listed (FUSE notify store),
	// so that a reader that reads each file it lists, as mkfs.ext4 -d
	// does, finds them cached instead of waiting for a READ round trip
	// per file. It fills the page cache with files nobody may read: for
	// builds, not for browsing. See prefetch.go.
	Prefetch bool
	// SelfAccess is for tests and profiling, where the serving process
	// reads its own mount: Mount then first gets the kernel to stop
	// sending POLL (go-fuse's poll hack), since the Go runtime's epoll
	// registration of a file on the mount would otherwise wait for this
	// process's own answer while holding a P, and can deadlock with the
	// garbage collector. The hack itself opens a file on the mount from
	// this process, which a SIGKILL can turn into a hang (see Hazards):
	// never set it for a mount that serves others.
	SelfAccess bool
}

// Server is a mounted tree. Its requests are served by goroutines of this
// process until Unmount, or until someone else unmounts the directory.
type Server struct {
	srv  *fuse.Server
	fs   *rawFS  // the tree's file system; nil for MountFilling
	fill *fillFS // MountFilling's file system; nil for Mount
	dir  string
	done chan struct{} // closed when the serve loop has returned
	mu   sync.Mutex    // guards unmounted
	// unmounted is set once Unmount succeeded.
	unmounted bool
}

// Mount serves tree read-only at dir, reading file content through
// content, and returns once the kernel answers requests on dir. dir must
// be an existing, empty directory that is not a mount point (see
// MountpointError). As root the mount is made directly; otherwise through
// fusermount3.
func Mount(dir string, tree *overlay.Tree, content overlay.LayerReader, opts Options) (*Server, error) {
	return mount(dir, tree, content, opts, fastTuning)
}

func mount(dir string, tree *overlay.Tree, content overlay.LayerReader, opts Options, tune tuning) (*Server, error) {
	if tree == nil {
		return nil, errors.New("mounting: no tree")
	}
	s, direct, logger, err := newServer(dir, opts)
	if err != nil {
		return nil, err
	}
	fsys := newRawFS(tree, content, logger, tune)
	if tune.splice {
		fsys.fds = layerFDs(content, tree)
	}
	if opts.Prefetch && content != nil && tune.readdirPlus {
		fsys.prefetch = newPrefetcher(fsys)
	}
	s.fs = fsys
	err = s.serve(fsys, mountOptions(opts, fsys, direct, logger), direct, opts.SelfAccess, func() {
		if p := fsys.prefetch; p != nil {
			p.srv = s.srv
			go p.run(s.done)
		}
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newServer checks dir and the prerequisites, and returns a Server for
// dir, not serving yet, with the logger to use.
func newServer(dir string, opts Options) (s *Server, direct bool, logger *slog.Logger, err error) {
	if err := CheckMountpoint(dir); err != nil {
		return nil, false, nil, err
	}
	abs, err := resolve(dir)
	if err != nil {
		return nil, false, nil, fmt.Errorf("mounting %s: %w", dir, err)
	}
	if direct, err = checkPrerequisites(); err != nil {
		return nil, false, nil, err
	}
	logger = opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{dir: abs, done: make(chan struct{})}, direct, logger, nil
}

// serve mounts fsys and serves it. started runs once the mount exists,
// before the first request is read beyond INIT.
func (s *Server) serve(fsys fuse.RawFileSystem, mo *fuse.MountOptions, direct, selfAccess bool, started func()) error {
	srv, err := fuse.NewServer(fsys, s.dir, mo)
	if err != nil {
		return mountError(s.dir, direct, err)
	}
	closeFUSEFdsOnExec()
	s.srv = srv
	started()
	go func() {
		srv.Serve()
		close(s.done)
	}()
	// NewServer has already answered the kernel's INIT, so the mount
	// answers. WaitMount only adds the poll hack, which opens a file on
	// the mount from this process: only for SelfAccess (see Hazards).
	if selfAccess {
		if err := srv.WaitMount(); err != nil {
			s.Unmount()
			return fmt.Errorf("mounting %s: %w", s.dir, err)
		}
	}
	return nil
}

// mountOptions sets what go-fuse asks of the kernel; doc.go explains each
// choice and the request counts it saves.
func mountOptions(opts Options, fsys *rawFS, direct bool, logger *slog.Logger) *fuse.MountOptions {
	mo := &fuse.MountOptions{
		FsName:               orDefault(opts.FsName, "ocifs"),
		Name:                 orDefault(opts.Subtype, "ocifs"),
		Options:              []string{"ro"},
		AllowOther:           opts.AllowOther,
		EnableSymlinkCaching: fsys.tune.symlinkCache,
		DisableReadDirPlus:   !fsys.tune.readdirPlus,
		ExtraCapabilities:    fuse.CAP_NO_OPENDIR_SUPPORT,
		DisableXAttrs:        !fsys.xattrs && fsys.tune.enosys,
		DisableSplice:        fsys.fds == nil,
		DirectMount:          direct,
		DirectMountFlags:     syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
		Debug:                opts.Debug,
		Logger:               slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if opts.Debug {
		mo.Logger = log.New(slogWriter{logger}, "", 0)
	}
	if opts.AllowOther {
		mo.Options = append(mo.Options, "default_permissions")
	}
	return mo
}

// slogWriter turns go-fuse's debug lines into debug records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	return p
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// layerFDs returns the descriptors of the layers' plain files, if content
// offers them (LayerFiler), or nil.
func layerFDs(content overlay.LayerReader, tree *overlay.Tree) []int {
	lf, ok := content.(LayerFiler)
	if !ok {
		return nil
	}
	maxLayer := -1
	for ino := uint64(overlay.RootIno); ino < uint64(overlay.RootIno+tree.Len()); ino++ {
		maxLayer = max(maxLayer, tree.Node(ino).Layer())
	}
	fds := make([]int, maxLayer+1)
	some := false
	for i := range fds {
		fds[i] = -1
		if f, ok := lf.LayerFile(i); ok && f != nil {
			fds[i] = int(f.Fd())
			some = true
		}
	}
	if !some {
		return nil
	}
	return fds
}

// Dir returns the absolute mount point.
func (s *Server) Dir() string { return s.dir }

// WaitingLookups returns how many lookups wait for more layers of a
// filling image now (MountFilling); always 0 for Mount. The next layers
// from the top may answer them, so a Filler may fetch those first while
// it is not 0. Requests that wait for the complete tree (listings,
// statfs) are not counted: they need every layer alike.
func (s *Server) WaitingLookups() int {
	if s.fill == nil {
		return 0
	}
	return int(s.fill.lookups.Load())
}

// Stats returns the requests answered so far, by kind.
func (s *Server) Stats() Stats {
	if s.fill != nil {
		return s.fill.counts()
	}
	return s.fs.stats.snapshot()
}

// Wait blocks until the file system is unmounted (by Unmount, or by
// anyone running fusermount3 -u or umount on it).
func (s *Server) Wait() { <-s.done }

// Unmount unmounts the file system and waits for the serve loop to end.
// While the mount is busy (a process has a file open or its working
// directory there) it retries for a few seconds, then returns an error
// wrapping ErrBusy. Unmounting an already unmounted server returns nil.
func (s *Server) Unmount() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unmounted {
		return nil
	}
	select {
	case <-s.done:
		s.unmounted = true
		return nil
	default:
	}
	deadline := time.Now().Add(busyRetry)
	for {
		err := s.srv.Unmount()
		if err == nil {
			break
		}
		select {
		case <-s.done: // unmounted behind our back meanwhile
			s.unmounted = true
			return nil
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unmounting %s: %w (%v)", s.dir, ErrBusy, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-s.done
	s.unmounted = true
	return nil
}

// busyRetry is how long unmounting a busy mount is retried.
var busyRetry = 3 * time.Second

// ErrBusy is returned when a mount stays busy: some process has a file
// open, or its working directory, under it.
var ErrBusy = errors.New("mount is busy")
