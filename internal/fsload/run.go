package fsload

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config says how to load a mount.
type Config struct {
	Root     string        // the mount point
	Readers  int           // goroutines doing random operations; default 16
	Walkers  int           // goroutines walking the whole tree with readdir; may be 0
	Duration time.Duration // how long to run; default 10 s
	Seed     uint64        // for the readers' choices
	// Direct makes a quarter of the reads use O_DIRECT (past the page
	// cache, straight to the server).
	Direct bool
	// OpTimeout is how long one operation may take before it counts as
	// a hang; default 10 s.
	OpTimeout time.Duration
	// Churn, if set, is called over and over (ChurnPause apart, default
	// 2 ms) while the readers run.
	Churn      func()
	ChurnPause time.Duration
}

func (c *Config) defaults() {
	if c.Readers == 0 {
		c.Readers = 16
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 10 * time.Second
	}
	if c.ChurnPause == 0 {
		c.ChurnPause = 2 * time.Millisecond
	}
}

// maxSamples is how many error messages a Result keeps.
const maxSamples = 20

// state is what the workers share: counters and the first errors.
type state struct {
	ops    [nOps]atomic.Int64
	maxLat [nOps]atomic.Int64 // ns
	walks  atomic.Int64
	errs   atomic.Int64
	slow   time.Duration // an operation slower than this is an error

	mu        sync.Mutex // guards samples, errnos and firstFail
	samples   []string
	errnos    map[syscall.Errno]int64
	firstFail time.Time
}

func (s *state) count(o op, lat time.Duration) {
	s.ops[o].Add(1)
	for {
		old := s.maxLat[o].Load()
		if int64(lat) <= old || s.maxLat[o].CompareAndSwap(old, int64(lat)) {
			return
		}
	}
}

func (s *state) fail(err error) {
	n := s.errs.Add(1)
	var errno syscall.Errno // stays 0 for a failure without one
	errors.As(err, &errno)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstFail.IsZero() {
		s.firstFail = time.Now()
	}
	if s.errnos == nil {
		s.errnos = map[syscall.Errno]int64{}
	}
	s.errnos[errno]++
	if n <= maxSamples {
		s.samples = append(s.samples, err.Error())
	}
}

// Result is what a Run did and saw.
type Result struct {
	Elapsed time.Duration
	Readers int
	Walkers int
	Ops     map[string]int64         // operations done, by kind
	MaxLat  map[string]time.Duration // the slowest of each kind
	Walks   int64                    // complete walks of the tree
	Errors  int64                    // operations that failed
	Errnos  map[syscall.Errno]int64  // failures by errno; 0 for those without one (wrong data, too slow)
	First   time.Time                // when the first failure happened
	Samples []string                 // the first errors
	Stuck   []string                 // operations still blocked at the end
}

// Total is the number of operations done, churn aside.
func (r *Result) Total() int64 {
	var n int64
	for k, v := range r.Ops {
		if k != opNames[opChurn] {
			n += v
		}
	}
	return n
}

// Err summarizes the errors and hangs, or returns nil.
func (r *Result) Err() error {
	if r.Errors == 0 && len(r.Stuck) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d failed operations, %d stuck", r.Errors, len(r.Stuck))
	for _, s := range r.Stuck {
		b.WriteString("\n  stuck: " + s)
	}
	for _, s := range r.Samples {
		b.WriteString("\n  " + s)
	}
	return errors.New(b.String())
}

// String reports the throughput, by kind.
func (r *Result) String() string {
	secs := max(r.Elapsed.Seconds(), 1e-9)
	var b strings.Builder
	fmt.Fprintf(&b, "%d readers, %d walkers, %v: %d ops, %.0f ops/s, %d failed; %d full walks",
		r.Readers, r.Walkers, r.Elapsed.Round(time.Millisecond), r.Total(), float64(r.Total())/secs, r.Errors, r.Walks)
	for _, name := range opNames {
		if n := r.Ops[name]; n > 0 {
			fmt.Fprintf(&b, "\n  %-8s %8d  %8.0f/s  slowest %v", name, n, float64(n)/secs, r.MaxLat[name].Round(time.Microsecond))
		}
	}
	return b.String()
}

// Run loads cfg.Root for cfg.Duration (or until ctx ends) and returns
// what happened. It returns by the deadline plus cfg.OpTimeout even if
// operations hang (see Result.Stuck).
func Run(ctx context.Context, cfg Config, exp *Expect) *Result {
	cfg.defaults()
	st := &state{slow: cfg.OpTimeout}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var workers []*worker
	start := time.Now()
	for i := range cfg.Readers + cfg.Walkers {
		w := newWorker(i, cfg.Seed, exp, &cfg, st)
		workers = append(workers, w)
		walker := i >= cfg.Readers
		wg.Go(func() { w.loop(walker, &stop) })
	}
	if cfg.Churn != nil {
		w := &worker{st: st}
		workers = append(workers, w)
		wg.Go(func() { churn(w, cfg, &stop) })
	}
	res := &Result{Readers: cfg.Readers, Walkers: cfg.Walkers}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	timer := time.NewTimer(cfg.Duration)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-finished:
	}
	stop.Store(true)
	select {
	case <-finished:
	case <-time.After(cfg.OpTimeout):
		res.Stuck = stuck(workers)
	}
	res.Elapsed = time.Since(start)
	st.collect(res)
	return res
}

// loop runs a reader's or a walker's operations until stop.
func (w *worker) loop(walker bool, stop *atomic.Bool) {
	for !stop.Load() {
		if walker {
			w.walk("", stop)
			if !stop.Load() {
				w.st.walks.Add(1)
			}
			continue
		}
		w.step()
	}
}

func churn(w *worker, cfg Config, stop *atomic.Bool) {
	for !stop.Load() {
		w.timed(opChurn, "churn", func() error { cfg.Churn(); return nil })
		time.Sleep(cfg.ChurnPause)
	}
}

func stuck(workers []*worker) []string {
	var out []string
	for _, w := range workers {
		if what, d, ok := w.busy.doing(); ok {
			out = append(out, fmt.Sprintf("worker %d: %s for %v", w.id, what, d.Round(time.Millisecond)))
		}
	}
	return out
}

func (s *state) collect(res *Result) {
	res.Ops = map[string]int64{}
	res.MaxLat = map[string]time.Duration{}
	for i, name := range opNames {
		res.Ops[name] = s.ops[i].Load()
		res.MaxLat[name] = time.Duration(s.maxLat[i].Load())
	}
	res.Walks = s.walks.Load()
	res.Errors = s.errs.Load()
	s.mu.Lock()
	res.Samples = append([]string(nil), s.samples...)
	res.Errnos = maps.Clone(s.errnos)
	res.First = s.firstFail
	s.mu.Unlock()
}

// DurationEnv is the environment variable that sets how long load tests
// run (a Go duration such as 30s or 10m).
const DurationEnv = "OCIFS_TEST_LOAD_DURATION"

// DurationFromEnv returns DurationEnv's value, or def when it is unset or
// not a positive duration.
func DurationFromEnv(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(DurationEnv)); err == nil && d > 0 {
		return d
	}
	return def
}
