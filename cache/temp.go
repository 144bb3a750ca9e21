package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tempFile is a file being written under ocifs/tmp. Its writer holds an
// flock on it for its whole life, which is how cleanStaleTemps tells a
// live writer's file from one left by a killed process.
type tempFile struct {
	f *os.File
}

// staleTempAge is how old an unlocked temp file must be before it is
// removed: it closes the window between a writer's create and its flock.
const staleTempAge = time.Minute

func (s *Store) newTemp(prefix string) (*tempFile, error) {
	f, err := os.CreateTemp(s.path(tmpDir), prefix+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating temp file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("locking temp file %s: %w", f.Name(), err)
	}
	return &tempFile{f: f}, nil
}

// commit syncs the file and renames it to final, then syncs final's
// directory so the rename survives a crash.
func (t *tempFile) commit(final string) error {
	if err := t.f.Sync(); err != nil {
		t.abort()
		return fmt.Errorf("syncing %s: %w", t.f.Name(), err)
	}
	if err := os.Rename(t.f.Name(), final); err != nil {
		t.abort()
		return fmt.Errorf("renaming into %s: %w", final, err)
	}
	t.f.Close()
	return syncDir(filepath.Dir(final))
}

// abort removes the temp file; it is idempotent.
func (t *tempFile) abort() {
	if t == nil || t.f == nil {
		return
	}
	os.Remove(t.f.Name())
	t.f.Close()
	t.f = nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// cleanStaleTemps removes temp files no live process holds, returning how
// many bytes it freed.
func (s *Store) cleanStaleTemps() (removed int, freed int64) {
	ents, err := os.ReadDir(s.path(tmpDir))
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		p := filepath.Join(s.path(tmpDir), e.Name())
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < staleTempAge {
			continue
		}
		l, ok, err := tryLockFile(p, syscall.LOCK_EX)
		if err != nil || !ok {
			continue
		}
		if os.Remove(p) == nil {
			removed++
			freed += info.Size()
			s.log.Debug("removed stale temp file", "path", p, "size", info.Size())
		}
		l.Unlock()
	}
	return removed, freed
}

// hashWriter hashes (sha256) and counts what passes through it to w (w may
// be nil: hash only). err is w's first error: a full disk, which the
// caller must report as such, not as the short blob it then sees.
type hashWriter struct {
	w   io.Writer
	h   hash.Hash
	n   int64
	err error
}

func newHashWriter(w io.Writer) *hashWriter {
	return &hashWriter{w: w, h: sha256.New()}
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	if hw.w != nil {
		if n, err := hw.w.Write(p); err != nil {
			hw.h.Write(p[:n])
			hw.n += int64(n)
			if hw.err == nil {
				hw.err = err
			}
			return n, err
		}
	}
	hw.h.Write(p)
	hw.n += int64(len(p))
	return len(p), nil
}

func (hw *hashWriter) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hw.h.Sum(nil))}
}

// check compares what was written with the expected digest and size
// (size < 0: not checked); the caller names the blob.
func (hw *hashWriter) check(want v1.Hash, size int64) error {
	if size >= 0 && hw.n != size {
		return mismatchf("got %d bytes, want %d", hw.n, size)
	}
	if got := hw.sum(); got != want {
		return mismatchf("content hashes to %s", got)
	}
	return nil
}
