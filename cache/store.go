package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options configure a Store.
type Options struct {
	// Logger receives debug and warning records; nil discards them.
	Logger *slog.Logger
	// Insecure allows plain HTTP and unverified TLS for every registry
	// (loopback and private-network registries use plain HTTP without it).
	Insecure bool
	// Keychain finds registry credentials; nil means authn.DefaultKeychain
	// (~/.docker/config.json and credential helpers).
	Keychain authn.Keychain
	// Limits bound what one image may cost (zero: DefaultLimits).
	Limits Limits
	// Network sets retries and timeouts of registry requests (zero:
	// DefaultNetwork).
	Network Network
	// Mode says which layers keep a decompressed copy (empty:
	// DefaultMode).
	Mode Mode
	// SpanCache is the memory, in bytes, for decoded spans of layers read
	// from their compressed blobs, shared by the store's images (0:
	// DefaultSpanCache; < 0: none, every read decodes).
	SpanCache int64
}

// Store is an OCI image layout on disk plus ocifs's own files under
// ocifs/. It is safe for concurrent use by several goroutines and several
// processes.
type Store struct {
	dir      string
	log      *slog.Logger
	insecure bool
	keychain authn.Keychain
	limits   Limits
	net      Network
	mode     Mode
	spans    *spanCache
}

// Paths inside the store, relative to its directory.
const (
	layoutFile   = "oci-layout"
	indexFile    = "index.json"
	blobsDir     = "blobs"
	ownDir       = "ocifs"
	indexesDir   = "ocifs/index"
	unpackedDir  = "ocifs/unpacked"
	tmpDir       = "ocifs/tmp"
	locksDir     = "ocifs/locks"
	storeLock    = "ocifs/locks/store.lock"
	indexLock    = "ocifs/locks/index.json.lock"
	layoutString = `{"imageLayoutVersion":"1.0.0"}`
)

// Open opens the store at dir, creating the layout if it is missing.
func Open(dir string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	s := &Store{dir: abs, log: opts.Logger, insecure: opts.Insecure, keychain: opts.Keychain, limits: opts.Limits.withDefaults(), net: opts.Network.withDefaults(), mode: opts.Mode}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.mode == "" {
		s.mode = DefaultMode
	}
	if _, err := ParseMode(string(s.mode)); err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	s.spans = newSpanCache(opts.SpanCache)
	if s.keychain == nil {
		s.keychain = authn.DefaultKeychain
	}
	if err := s.init(); err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", abs, err)
	}
	return s, nil
}

// Dir returns the store's directory (absolute).
func (s *Store) Dir() string { return s.dir }

func (s *Store) init() error {
	for _, d := range []string{"blobs/sha256", "ocifs/index/sha256", "ocifs/unpacked/sha256", seekDir + "/sha256", treesDir + "/sha256", tmpDir, locksDir} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			return err
		}
	}
	if err := s.checkLayoutFile(); err != nil {
		return err
	}
	if _, err := os.Stat(s.path(indexFile)); errors.Is(err, os.ErrNotExist) {
		return s.updateIndex(context.Background(), func(*v1.IndexManifest) error { return nil })
	} else if err != nil {
		return err
	}
	return nil
}

func (s *Store) checkLayoutFile() error {
	b, err := os.ReadFile(s.path(layoutFile))
	if errors.Is(err, os.ErrNotExist) {
		return s.writeFileAtomic(s.path(layoutFile), []byte(layoutString))
	}
	if err != nil {
		return err
	}
	var l struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &l); err != nil || l.Version != "1.0.0" {
		return fmt.Errorf("%s is not an OCI image layout 1.0.0 (%s: %q)", s.dir, layoutFile, b)
	}
	return nil
}

func (s *Store) path(rel string) string { return filepath.Join(s.dir, rel) }

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, blobsDir, h.Algorithm, h.Hex)
}

func (s *Store) indexPath(diffID v1.Hash) string {
	return filepath.Join(s.dir, indexesDir, diffID.Algorithm, diffID.Hex)
}

func (s *Store) unpackedPath(diffID v1.Hash) string {
	return filepath.Join(s.dir, unpackedDir, diffID.Algorithm, diffID.Hex)
}

// layerLockPath is the per-blob lock held while a layer's blob, unpacked
// copy and index are produced.
func (s *Store) layerLockPath(h v1.Hash) string {
	return filepath.Join(s.dir, locksDir, h.Algorithm+"-"+h.Hex+".lock")
}

// flock kinds.
const (
	lockExclusive = syscall.LOCK_EX
	lockSharedHow = syscall.LOCK_SH
)

// lockShared takes the store lock shared: held by every operation that
// writes into the store, so that Prune (exclusive) never removes a file
// between its creation and the index.json entry that references it.
func (s *Store) lockShared(ctx context.Context) (*fileLock, error) {
	return lockFile(ctx, s.path(storeLock), lockSharedHow)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFileAtomic writes data to path through a synced temp file and a
// rename, so readers see the old content or the new, never a mix.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	t, err := s.newTemp(filepath.Base(path))
	if err != nil {
		return err
	}
	if _, err := t.f.Write(data); err != nil {
		t.abort()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return t.commit(path)
}

// writeBlob stores the bytes of r as the blob want, verifying digest and
// size (size < 0: unknown) before anything appears under the final name.
func (s *Store) writeBlob(r io.Reader, want v1.Hash, size int64) error {
	if exists(s.blobPath(want)) {
		return nil
	}
	t, err := s.newTemp("blob-" + want.Hex)
	if err != nil {
		return err
	}
	hw := newHashWriter(t.f)
	if _, err := io.Copy(hw, r); err != nil {
		t.abort()
		return fmt.Errorf("writing blob %s: %w", want, err)
	}
	if err := hw.check(want, size); err != nil {
		t.abort()
		return fmt.Errorf("storing blob %s: %w", want, err)
	}
	return t.commit(s.blobPath(want))
}
