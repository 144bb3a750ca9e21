package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// phases shows the phases of a build on a terminal: the running phase
// with its elapsed time, redrawn in place, and a line per finished phase.
// Off a terminal it shows nothing. Its methods may be called from any
// goroutine.
type phases struct {
	w   io.Writer
	tty bool

	mu      sync.Mutex // guards name, started, detail, ticker
	name    string
	started time.Time
	detail  func() string // more about the running phase, or nil
	ticker  *time.Ticker
	done    chan struct{}
}

func newPhases(w io.Writer, tty bool) *phases {
	return &phases{w: w, tty: tty, done: make(chan struct{})}
}

// start ends the running phase and begins the named one.
func (p *phases) start(name string) { p.startWith(name, nil) }

// startWith is start with a detail shown after the elapsed time (called
// at each redraw).
func (p *phases) startWith(name string, detail func() string) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	p.name, p.started, p.detail = name, time.Now(), detail
	p.drawLocked()
	if p.ticker == nil {
		p.ticker = time.NewTicker(200 * time.Millisecond)
		go p.tick(p.ticker)
	}
}

// stop ends the running phase and the redrawing.
func (p *phases) stop() {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	if p.ticker != nil {
		p.ticker.Stop()
		close(p.done)
		p.ticker = nil
	}
}

func (p *phases) tick(t *time.Ticker) {
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.mu.Lock()
			p.drawLocked()
			p.mu.Unlock()
		}
	}
}

func (p *phases) drawLocked() {
	if p.name != "" {
		fmt.Fprintf(p.w, "\r\033[K%-6s %s%s", p.name, elapsed(time.Since(p.started)), p.detailLocked())
	}
}

func (p *phases) finishLocked() {
	if p.name != "" {
		fmt.Fprintf(p.w, "\r\033[K%-6s %s%s done\n", p.name, elapsed(time.Since(p.started)), p.detailLocked())
		p.name, p.detail = "", nil
	}
}

func (p *phases) detailLocked() string {
	if p.detail == nil {
		return ""
	}
	return "  " + p.detail()
}

func elapsed(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}
