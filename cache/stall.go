package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// errStalled marks a request abandoned because nothing arrived for the
// stall timeout.
var errStalled = errors.New("stalled")

// stallTransport abandons a request when neither its response headers nor
// any byte of its body arrive for timeout: each byte restarts the clock.
// A slow transfer is fine; a silent one is cut, so that it can be retried
// instead of hanging the pull.
type stallTransport struct {
	inner   http.RoundTripper
	timeout time.Duration
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := &watchdog{cancel: cancel, timeout: t.timeout}
	w.timer = time.AfterFunc(t.timeout, w.fire)
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	if err != nil {
		w.stop()
		return nil, w.explain(err)
	}
	w.timer.Reset(t.timeout)
	resp.Body = &stallBody{rc: resp.Body, w: w}
	return resp, nil
}

// watchdog cancels a request's context when its timer fires.
type watchdog struct {
	timer   *time.Timer
	cancel  context.CancelFunc
	timeout time.Duration
	fired   atomic.Bool
}

func (w *watchdog) fire() {
	w.fired.Store(true)
	w.cancel()
}

func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel()
}

// explain turns the error of a request the watchdog cancelled into one
// that says so.
func (w *watchdog) explain(err error) error {
	if err == nil || !w.fired.Load() {
		return err
	}
	return fmt.Errorf("%w: nothing received for %v", errStalled, w.timeout)
}

// stallBody restarts the watchdog on every byte of the body.
type stallBody struct {
	rc io.ReadCloser
	w  *watchdog
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 && !b.w.fired.Load() {
		b.w.timer.Reset(b.w.timeout)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = b.w.explain(err)
	}
	return n, err
}

func (b *stallBody) Close() error {
	b.w.stop()
	return b.rc.Close()
}
