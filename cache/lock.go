package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// fileLock is an flock(2) lock on a file under ocifs/locks. flock locks
// belong to the open file description, so two opens in one process exclude
// each other just as two processes do, and the kernel drops the lock when a
// process dies: a killed pull never leaves a lock behind.
type fileLock struct {
	f *os.File
}

// lockPollInterval is how often a blocked lock is retried; flock itself
// cannot be interrupted by a context.
const lockPollInterval = 20 * time.Millisecond

// lockFile takes an flock of the given kind (syscall.LOCK_SH or LOCK_EX)
// on path, creating it if needed, waiting until ctx is done.
func lockFile(ctx context.Context, path string, how int) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPollInterval):
		}
	}
}

// tryLockFile is lockFile without waiting; ok is false if someone else
// holds a conflicting lock.
func tryLockFile(path string, how int) (l *fileLock, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, false, err
	}
	err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return &fileLock{f: f}, true, nil
}

// Unlock releases the lock. It is safe to call on a nil lock.
func (l *fileLock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
}
