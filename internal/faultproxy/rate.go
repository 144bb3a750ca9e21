package faultproxy

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// SetRate caps the body bytes the proxy sends, all responses together, at
// bytesPerSec (0 or less: no cap), as a slow link would. The cap applies
// to responses that start after the call.
func (p *Proxy) SetRate(bytesPerSec int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytesPerSec <= 0 {
		p.bucket = nil
		return
	}
	p.bucket = &bucket{rate: bytesPerSec, last: time.Now()}
}

func (p *Proxy) limiter() *bucket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bucket
}

// bucket is a token bucket shared by every response: senders take tokens
// for what they write and sleep when there are none.
type bucket struct {
	mu     sync.Mutex // guards tokens, last
	rate   int64
	tokens float64
	last   time.Time
}

// burst is the most a sender writes at once under a cap: small enough to
// keep the rate smooth between concurrent responses.
const burst = 16 << 10

// take blocks until n bytes may be sent.
func (b *bucket) take(n int) {
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*float64(b.rate), float64(b.rate)/10)
	b.last = now
	b.tokens -= float64(n)
	wait := time.Duration(0)
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / float64(b.rate) * float64(time.Second))
	}
	b.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
}

// limitedWriter writes through a bucket, flushing each burst so that the
// client sees the pace.
type limitedWriter struct {
	w io.Writer
	b *bucket
}

func (l limitedWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := min(len(p)-n, burst)
		l.b.take(k)
		m, err := l.w.Write(p[n : n+k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := l.w.(http.Flusher); ok {
			f.Flush()
		}
	}
	return n, nil
}
