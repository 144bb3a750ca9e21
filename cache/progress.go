package cache

import (
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// State is where a layer is in a Pull.
type State int

// Layer states, in the order a layer goes through them.
const (
	StateWaiting  State = iota // queued behind other layers
	StateFetching              // downloading (or copying from a local source) and indexing
	StateIndexing              // the blob is local: indexing it without network
	StateCached                // already complete in the store
	StateDone                  // fetched and indexed by this pull
)

func (s State) String() string {
	return [...]string{"waiting", "fetching", "indexing", "cached", "done"}[s]
}

// Progress reports on one layer of a Pull.
type Progress struct {
	Layer  int     // position in the manifest's layer list
	Layers int     // number of layers
	Digest v1.Hash // blob digest
	Size   int64   // blob size
	Done   int64   // blob bytes processed so far
	State  State
}

// progressStep is how many bytes pass between two Fetching reports.
const progressStep = 256 << 10

// layerProgress throttles the reports of one layer (shared by the
// positions that name the same blob).
type layerProgress struct {
	fn        func(Progress)
	positions []int
	layers    int
	digest    v1.Hash
	size      int64

	mu       sync.Mutex // guards done, reported
	done     int64
	reported int64
}

// top is the highest position naming the blob.
func (lp *layerProgress) top() int { return lp.positions[len(lp.positions)-1] }

func (lp *layerProgress) report(st State) {
	if lp.fn == nil {
		return
	}
	lp.mu.Lock()
	done := lp.done
	if st == StateCached || st == StateDone {
		done = lp.size
	}
	lp.reported = done
	lp.mu.Unlock()
	lp.emit(st, done)
}

func (lp *layerProgress) emit(st State, done int64) {
	for _, i := range lp.positions {
		lp.fn(Progress{Layer: i, Layers: lp.layers, Digest: lp.digest, Size: lp.size, Done: done, State: st})
	}
}

// add counts n processed bytes, reporting at most every progressStep.
func (lp *layerProgress) add(st State) func(int64) {
	if lp.fn == nil {
		return nil
	}
	return func(n int64) {
		lp.mu.Lock()
		lp.done += n
		done, due := lp.done, lp.done-lp.reported >= progressStep
		if due {
			lp.reported = done
		}
		lp.mu.Unlock()
		if due {
			lp.emit(st, done)
		}
	}
}

// reset forgets the bytes counted so far (a corrupt local blob is
// fetched again).
func (lp *layerProgress) reset() {
	lp.mu.Lock()
	lp.done, lp.reported = 0, 0
	lp.mu.Unlock()
}
