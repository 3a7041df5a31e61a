package polygon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/zsmseven/backend/pkg/retry"
)

// pacer spaces HTTP requests to the plan's rate with a token bucket of
// burst 1. It starts empty (unless told otherwise): the first request waits
// one interval, so that two consecutive invocations, possibly in different
// execution environments that share nothing, can never exceed the rate
// between them.
type pacer struct {
	interval time.Duration
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error

	mu  sync.Mutex
	lim *rate.Limiter
}

// SafetyMargin stretches the pacing interval beyond the plan's exact rate.
// Calls spaced exactly 60 s / rate apart reach a server enforcing the same
// rate a few milliseconds early now and then (timer and network jitter) and
// earn a 429; 2 % more spacing removed them in the pacing benchmark
// (docs/benchmarks.md) at a cost of 2 % in wall time.
const SafetyMargin = 1.02

// Interval is the spacing of calls at callsPerMinute, safety margin
// included: 12.24 s on the free plan's 5 calls per minute.
func Interval(callsPerMinute int) time.Duration {
	if callsPerMinute <= 0 {
		return 0
	}
	return time.Duration(float64(time.Minute) / float64(callsPerMinute) * SafetyMargin)
}

// newPacer returns nil for callsPerMinute ≤ 0: no pacing at all.
func newPacer(callsPerMinute int, startFull bool, now func() time.Time, sleep func(context.Context, time.Duration) error) *pacer {
	if callsPerMinute <= 0 {
		return nil
	}
	p := &pacer{interval: Interval(callsPerMinute), now: now, sleep: sleep}
	p.lim = rate.NewLimiter(rate.Every(p.interval), 1)
	if !startFull {
		p.lim.ReserveN(now(), 1) // take the one token: the bucket is empty now
	}
	return p
}

// drain empties the bucket: the next request waits a full interval from now.
func (p *pacer) drain() {
	if p == nil {
		return
	}
	lim := rate.NewLimiter(rate.Every(p.interval), 1)
	lim.ReserveN(p.now(), 1)
	p.mu.Lock()
	p.lim = lim
	p.mu.Unlock()
}

// wait takes a token, sleeping until it is due. When the token would come
// after ctx's deadline it gives the token back and fails at once with a
// transient error wrapping retry.ErrDeadline: the work can be handed back
// for a later invocation instead of sleeping into a timeout.
func (p *pacer) wait(ctx context.Context, log *slog.Logger, ticker string) error {
	if p == nil {
		return ctx.Err()
	}
	p.mu.Lock()
	lim := p.lim
	p.mu.Unlock()

	now := p.now()
	r := lim.ReserveN(now, 1) // burst 1 and n 1: always possible
	d := r.DelayFrom(now)
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
		r.CancelAt(now)
		return retry.Transient(fmt.Errorf("rate limit: next call allowed in %s, after the deadline: %w", d.Round(time.Millisecond), retry.ErrDeadline), 0)
	}
	level := slog.LevelDebug
	if d >= time.Second {
		level = slog.LevelInfo // 12 s at a time on the free plan: show progress
	}
	log.Log(ctx, level, "polygon: waiting for the rate limit", "ticker", ticker, "wait", d.Round(time.Millisecond).String(), "waitMs", d.Milliseconds())
	if err := p.sleep(ctx, d); err != nil {
		r.CancelAt(p.now())
		return err
	}
	return nil
}
