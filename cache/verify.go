package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Repair removes every bad blob, index or unpacked copy, so that the
	// next pull fetches or rebuilds it.
	Repair bool
	// Jobs is how many files are hashed in parallel (default 2).
	Jobs int
}

// Problem kinds.
const (
	ProblemBlob     = "blob"     // content does not hash to its name
	ProblemIndex    = "index"    // corrupt, truncated, old or misnamed index
	ProblemUnpacked = "unpacked" // unpacked copy does not hash to its diffID
	ProblemSeek     = "seek"     // seek index that does not decode, or through which the blob does not decode to its diffID
	ProblemTree     = "tree"     // saved merged tree that does not decode
	ProblemMissing  = "missing"  // an image in index.json lacks a piece
	ProblemStray    = "stray"    // a file whose name is not a sha256 digest
)

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind     string `json:"kind"`
	Digest   string `json:"digest,omitempty"` // the blob digest, or the diffID for index/unpacked
	Path     string `json:"path"`             // relative to the store
	Detail   string `json:"detail"`
	Repaired bool   `json:"repaired,omitempty"` // removed (VerifyOptions.Repair)
}

// VerifyReport is what Verify checked and found.
type VerifyReport struct {
	Blobs    int       `json:"blobs"` // files checked, by kind
	Indexes  int       `json:"indexes"`
	Unpacked int       `json:"unpacked"`
	Seek     int       `json:"seek"`
	Trees    int       `json:"trees"`
	Bytes    int64     `json:"bytes"` // bytes hashed
	Problems []Problem `json:"problems"`
}

// Verify re-hashes every blob and unpacked copy, checks every index file
// fully, decodes every blob with a seek index through it (and checks the
// result against the layer's diffID), and checks that each image in index.json has all its pieces. It
// returns an error only when it could not do its job; what is wrong with
// the store is in the report.
func (s *Store) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	sl, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer sl.Unlock()
	rep := &VerifyReport{Problems: []Problem{}}
	if err := s.verifyFiles(ctx, opts.Jobs, rep); err != nil {
		return nil, err
	}
	missing, err := s.verifyReferences()
	if err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, missing...)
	sort.Slice(rep.Problems, func(i, j int) bool {
		a, b := rep.Problems[i], rep.Problems[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Detail < b.Detail
	})
	if opts.Repair {
		s.repair(rep)
	}
	return rep, nil
}

// verifyFiles checks every blob, index and unpacked copy, jobs at a time.
func (s *Store) verifyFiles(ctx context.Context, jobs int, rep *VerifyReport) error {
	if jobs <= 0 {
		jobs = 2
	}
	var mu sync.Mutex // guards rep
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, kind := range []string{ProblemBlob, ProblemIndex, ProblemUnpacked, ProblemSeek, ProblemTree} {
		ents, err := os.ReadDir(s.kindDir(kind))
		if (kind == ProblemTree || kind == ProblemSeek) && os.IsNotExist(err) {
			continue // none saved yet (a store made by an older ocifs)
		}
		if err != nil {
			return fmt.Errorf("verifying %s: %w", s.kindDir(kind), err)
		}
		for _, e := range ents {
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				n, p := s.verifyFile(kind, e.Name())
				mu.Lock()
				defer mu.Unlock()
				rep.count(kind, n)
				if p != nil {
					rep.Problems = append(rep.Problems, *p)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

func (r *VerifyReport) count(kind string, n int64) {
	r.Bytes += n
	switch kind {
	case ProblemBlob:
		r.Blobs++
	case ProblemIndex:
		r.Indexes++
	case ProblemUnpacked:
		r.Unpacked++
	case ProblemSeek:
		r.Seek++
	case ProblemTree:
		r.Trees++
	}
}

func (s *Store) kindDir(kind string) string {
	switch kind {
	case ProblemIndex:
		return filepath.Join(s.dir, indexesDir, "sha256")
	case ProblemUnpacked:
		return filepath.Join(s.dir, unpackedDir, "sha256")
	case ProblemTree:
		return filepath.Join(s.dir, treesDir, "sha256")
	case ProblemSeek:
		return filepath.Join(s.dir, seekDir, "sha256")
	}
	return filepath.Join(s.dir, blobsDir, "sha256")
}

// verifyFile checks one file and returns the bytes it hashed.
func (s *Store) verifyFile(kind, name string) (int64, *Problem) {
	path := filepath.Join(s.kindDir(kind), name)
	rel, _ := filepath.Rel(s.dir, path)
	h, err := v1.NewHash("sha256:" + name)
	if err != nil {
		return 0, &Problem{Kind: ProblemStray, Path: rel, Detail: "name is not a sha256 digest"}
	}
	bad := func(detail string) *Problem {
		return &Problem{Kind: kind, Digest: h.String(), Path: rel, Detail: detail}
	}
	if kind == ProblemTree {
		n, err := verifyTree(path)
		if err != nil {
			return n, bad(err.Error())
		}
		return n, nil
	}
	if kind == ProblemSeek {
		n, err := s.verifySeek(path, h)
		if err != nil {
			return n, bad(err.Error())
		}
		return n, nil
	}
	if kind == ProblemIndex {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, bad(err.Error())
		}
		if _, _, err := decodeIndex(b, h); err != nil {
			return int64(len(b)), bad(err.Error())
		}
		return int64(len(b)), nil
	}
	got, n, err := hashFile(path)
	if err != nil {
		return n, bad(err.Error())
	}
	if got != h {
		return n, bad(fmt.Sprintf("content hashes to %s", got))
	}
	return n, nil
}

func hashFile(path string) (v1.Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return v1.Hash{}, n, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}

// verifyReferences reports what the images in index.json lack.
func (s *Store) verifyReferences() ([]Problem, error) {
	infos, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, info := range infos {
		if info.Problem != "" {
			out = append(out, Problem{Kind: ProblemMissing, Digest: info.Digest.String(), Path: indexFile,
				Detail: fmt.Sprintf("%s (%s): %s", info.Ref, info.Platform, info.Problem)})
		}
	}
	return out, nil
}

// repair removes the bad files of the report.
func (s *Store) repair(rep *VerifyReport) {
	for i := range rep.Problems {
		p := &rep.Problems[i]
		switch p.Kind {
		case ProblemBlob, ProblemIndex, ProblemUnpacked, ProblemSeek, ProblemTree, ProblemStray:
			if err := os.Remove(filepath.Join(s.dir, p.Path)); err == nil || os.IsNotExist(err) {
				p.Repaired = true
				s.log.Info("removed bad file", "path", p.Path)
			}
		}
	}
}
