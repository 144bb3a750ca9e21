package cache

import (
	"context"
	"io"
	"time"
)

// A download told to yield (PullOptions.Yield) waits up to yieldInterval
// (a third of the stall timeout if that is less) between reads of at most
// yieldTrickle bytes, checking every yieldPoll whether it may go on at
// full speed. The trickle keeps its connection from looking idle to the
// stall watchdog and to servers and proxies that cut silent connections;
// the rest of the link goes to the others.
const (
	yieldInterval = time.Second
	yieldPoll     = 20 * time.Millisecond
	yieldTrickle  = 16 << 10
)

// yieldReader slows rc to a trickle while yield returns true.
type yieldReader struct {
	ctx      context.Context
	rc       io.ReadCloser
	yield    func() bool
	interval time.Duration // between trickling reads
}

// newYieldReader slows rc while yield says so, keeping the stall
// watchdog of stall quiet.
func newYieldReader(ctx context.Context, rc io.ReadCloser, stall time.Duration, yield func() bool) *yieldReader {
	return &yieldReader{ctx: ctx, rc: rc, yield: yield, interval: min(yieldInterval, stall/3)}
}

func (y *yieldReader) Read(p []byte) (int, error) {
	if y.yield() {
		t := time.NewTimer(yieldPoll)
		defer t.Stop()
		for deadline := time.Now().Add(y.interval); ; {
			select {
			case <-y.ctx.Done():
				return 0, y.ctx.Err()
			case <-t.C:
			}
			if !y.yield() {
				break
			}
			if !time.Now().Before(deadline) {
				p = p[:min(len(p), yieldTrickle)]
				break
			}
			t.Reset(yieldPoll)
		}
	}
	return y.rc.Read(p)
}

func (y *yieldReader) Close() error { return y.rc.Close() }
