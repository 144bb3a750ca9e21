package faultproxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TB is the part of testing.TB the proxy needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Fault is what a rule does to a request.
type Fault int

const (
	// Pass forwards the request unchanged (a rule that only counts).
	Pass Fault = iota
	// Drop sends After bytes of the body, then closes the connection.
	Drop
	// Stall sends After bytes of the body, then nothing more until the
	// client gives up, Release is called or the proxy closes.
	Stall
	// Status answers Rule.Status (with Rule.RetryAfter, if set) without
	// asking the backend.
	Status
	// IgnoreRange removes the Range header, so the backend sends the
	// whole body with 200, as servers without range support do.
	IgnoreRange
	// Corrupt flips the byte at offset After of the body.
	Corrupt
	// Delay waits Rule.Wait, then forwards the request.
	Delay
)

var faultNames = [...]string{"pass", "drop", "stall", "status", "ignore-range", "corrupt", "delay"}

func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Rule selects requests and the fault done to them.
type Rule struct {
	Method     string // "" matches GET and HEAD
	Path       string // substring of the URL path ("" matches all)
	Times      int    // how many requests it applies to; 0: all
	Fault      Fault
	After      int64         // Drop, Stall, Corrupt: body offset
	Status     int           // Status: the code to answer
	RetryAfter string        // Status: the Retry-After header, if any
	Wait       time.Duration // Delay: how long
	// Signal, if set, receives the request's path (without blocking) when
	// the fault acts: when a Drop or Stall has sent its After bytes, when a
	// Status is answered, when a Delay starts. Tests use it to act at that
	// moment (kill the client mid-blob).
	Signal chan<- string
}

func (r *Rule) signal(path string) {
	if r.Signal == nil {
		return
	}
	select {
	case r.Signal <- path:
	default:
	}
}

func (r *Rule) matches(req *http.Request) bool {
	if r.Method == "" && req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if r.Method != "" && r.Method != req.Method {
		return false
	}
	return strings.Contains(req.URL.Path, r.Path)
}

// Request is one request the proxy handled.
type Request struct {
	Method, Path string
	Range        string // the client's Range header
	Fault        Fault  // Pass when no rule applied
	Status       int    // sent to the client (0 if the connection was dropped before)
	Sent         int64  // body bytes sent to the client
}

// Proxy is a running fault proxy.
type Proxy struct {
	// Addr is the proxy's host:port on 127.0.0.1.
	Addr string

	backend string
	client  *http.Client
	srv     *http.Server
	closed  chan struct{}

	mu      sync.Mutex // guards rules, uses, log (and what it points to), release, bucket
	bucket  *bucket    // nil: no bandwidth cap (SetRate)
	rules   []Rule
	uses    []int
	log     []*Request
	release chan struct{}
}

// Start runs a proxy in front of backend (host:port, plain HTTP) until the
// test ends.
func Start(t TB, backend string) *Proxy {
	t.Helper()
	p, err := New(backend)
	if err != nil {
		t.Fatalf("starting fault proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// New runs a proxy in front of backend until Close.
func New(backend string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		Addr:    l.Addr().String(),
		backend: backend,
		closed:  make(chan struct{}),
		release: make(chan struct{}),
		client: &http.Client{
			Transport:     &http.Transport{DisableCompression: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

// Close stops the proxy and releases stalled requests.
func (p *Proxy) Close() {
	select {
	case <-p.closed:
		return
	default:
	}
	close(p.closed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
	p.srv.Close()
}

// Add appends rules.
func (p *Proxy) Add(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, rules...)
	p.uses = append(p.uses, make([]int, len(rules))...)
}

// Reset removes all rules and releases stalled requests; the request log
// is kept.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules, p.uses = nil, nil
	close(p.release)
	p.release = make(chan struct{})
}

// Release lets every stalled request go on (they then end as dropped).
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.release)
	p.release = make(chan struct{})
}

// Requests returns what the proxy handled so far, in order of arrival,
// requests still being answered included: their Sent counts the body
// bytes written so far, so a client that has read some bytes finds them
// counted.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Request, len(p.log))
	for i, r := range p.log {
		out[i] = *r
	}
	return out
}

// Applied counts the requests to which a fault of kind f was applied.
func (p *Proxy) Applied(f Fault) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Fault == f {
			n++
		}
	}
	return n
}

// pick returns the rule for req (a copy) and the current release channel.
func (p *Proxy) pick(req *http.Request) (Rule, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.rules {
		r := &p.rules[i]
		if r.matches(req) && (r.Times == 0 || p.uses[i] < r.Times) {
			p.uses[i]++
			return *r, p.release
		}
	}
	return Rule{Fault: Pass}, p.release
}

// record adds r to the log and returns the logged copy, which update
// changes.
func (p *Proxy) record(r Request) *Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, &r)
	return &r
}

// update changes a logged request.
func (p *Proxy) update(r *Request, fn func(*Request)) {
	p.mu.Lock()
	fn(r)
	p.mu.Unlock()
}
