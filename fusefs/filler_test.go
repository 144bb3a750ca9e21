package fusefs

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

// Helpers of the filling mount's tests.

// stepFiller is a Filler whose states a test sets by hand.
type stepFiller struct {
	mu      sync.Mutex // guards st, changed, retry
	st      FillState
	changed chan struct{}
	retry   bool // an Err state is not final: newer states may follow
}

func newStepFiller(st FillState) *stepFiller {
	return &stepFiller{st: st, changed: make(chan struct{})}
}

func (s *stepFiller) State() (FillState, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final() {
		return s.st, nil
	}
	return s.st, s.changed
}

func (s *stepFiller) final() bool { return s.st.Tree != nil || (s.st.Err != nil && !s.retry) }

func (s *stepFiller) set(st FillState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final() {
		return
	}
	s.st = st
	close(s.changed)
	s.changed = make(chan struct{})
}

func partial(t *testing.T, m *memImage, low int) FillState {
	t.Helper()
	p, err := overlay.MergePartial(m.layers, low)
	if err != nil {
		t.Fatalf("MergePartial(%d): %v", low, err)
	}
	return FillState{Partial: p}
}

// mountFilling mounts src for the test, logging at debug level into the
// returned writer. Before unmounting, the cleanup fails the fill, so that
// no request of this process waits (see Hazards).
func mountFilling(t *testing.T, src *stepFiller, content overlay.LayerReader, opts Options) (*Server, string, *lockedWriter) {
	t.Helper()
	opts.SelfAccess = true
	return mountFillingAs(t, src, content, opts)
}

// mountFillingAs is mountFilling with opts as they are.
func mountFillingAs(t *testing.T, src *stepFiller, content overlay.LayerReader, opts Options) (*Server, string, *lockedWriter) {
	t.Helper()
	dir := mountDir(t)
	log := &lockedWriter{w: new(bytes.Buffer)}
	opts.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := MountFilling(dir, src, content, opts)
	if err != nil {
		t.Fatalf("MountFilling: %v", err)
	}
	t.Cleanup(func() {
		src.set(FillState{Err: errors.New("test over")})
		if err := srv.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
	})
	return srv, dir, log
}

// async runs fn in a goroutine; its result arrives on the channel.
func async(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

func lstatErr(p string) func() error {
	return func() error { var st unix.Stat_t; return unix.Lstat(p, &st) }
}

// await returns fn's result, failing the test when it takes a minute.
func await(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s: no answer after a minute", what)
		return nil
	}
}

func pending(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s answered (%v), want it to wait", what, err)
	default:
	}
}

// waitLog waits until the log has n lines ending in s: a request logs
// "waiting for more layers" with its path or node each time it starts
// waiting, e.g. "path=/etc".
func waitLog(t *testing.T, log *lockedWriter, s string, n int) {
	t.Helper()
	s += "\n"
	deadline := time.Now().Add(time.Minute)
	for {
		out := log.String()
		if strings.Count(out, s) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log has %q %d times, want %d; log:\n%s", s, strings.Count(out, s), n, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// awaitComplete returns once the mount serves the complete tree: STATFS
// waits for it.
func awaitComplete(t *testing.T, mnt string) {
	t.Helper()
	var st unix.Statfs_t
	if err := await(t, async(func() error { return unix.Statfs(mnt, &st) }), "statfs"); err != nil {
		t.Fatalf("statfs: %v", err)
	}
}
