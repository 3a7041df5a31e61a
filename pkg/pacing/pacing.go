// Package pacing spaces calls to a rate-limited API — a market-data
// provider's plan, say 5 calls per minute — with a token bucket of burst 1.
// It knows nothing of any provider: a client takes a *Limiter and calls Wait
// before every HTTP request (retries and pages included), and the function's
// wiring calls Drain at the start of every invocation.
package pacing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/zsmseven/backend/pkg/retry"
)

// SafetyMargin stretches the interval beyond the plan's exact rate. Calls
// spaced exactly 60 s / rate apart reach a server enforcing the same rate a
// few milliseconds early now and then (timer and network jitter) and earn a
// 429; 2 % more spacing removed them in the pacing benchmark
// (docs/benchmarks.md) at a cost of 2 % in wall time.
const SafetyMargin = 1.02

// Interval is the spacing of calls at callsPerMinute, safety margin
// included: 12.24 s on the free plan's 5 calls per minute; 0 for ≤ 0.
func Interval(callsPerMinute int) time.Duration {
	if callsPerMinute <= 0 {
		return 0
	}
	return time.Duration(float64(time.Minute) / float64(callsPerMinute) * SafetyMargin)
}

// Options configure a Limiter; the zero value is a real-time limiter that
// starts empty and logs nothing.
type Options struct {
	// StartFull lets the first call go at once. By default the bucket starts
	// empty and the first call waits one interval, which is what keeps
	// consecutive invocations under the rate (see Drain); tests and
	// benchmarks may not want that.
	StartFull bool
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Sleep waits; nil uses a timer (retry.Sleep). Tests give a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives each wait: at info from one second up (12 s at a time
	// on the free plan: progress worth seeing), below at debug. nil discards.
	Logger *slog.Logger
}

// Limiter spaces calls at one interval. A nil *Limiter is valid and never
// waits: the unlimited plan. It is safe for concurrent use; every caller
// shares the one bucket.
type Limiter struct {
	interval time.Duration
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	log      *slog.Logger

	mu  sync.Mutex
	lim *rate.Limiter
}

// New returns a limiter for callsPerMinute, or nil (no pacing at all) for
// callsPerMinute ≤ 0.
func New(callsPerMinute int, o Options) *Limiter {
	if callsPerMinute <= 0 {
		return nil
	}
	l := &Limiter{interval: Interval(callsPerMinute), now: o.Now, sleep: o.Sleep, log: o.Logger}
	if l.now == nil {
		l.now = time.Now
	}
	if l.sleep == nil {
		l.sleep = retry.Sleep
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.lim = rate.NewLimiter(rate.Every(l.interval), 1)
	if !o.StartFull {
		l.lim.ReserveN(l.now(), 1) // take the one token: the bucket is empty now
	}
	return l
}

// Interval is the limiter's spacing (0 for nil).
func (l *Limiter) Interval() time.Duration {
	if l == nil {
		return 0
	}
	return l.interval
}

// Drain empties the bucket: the next call waits a full interval from now. A
// limiter built at cold start outlives invocations: drain it at the start of
// each one, so that a call of this invocation can never follow one of the
// previous invocation (perhaps in another execution environment, which
// shares nothing with this one) by less than an interval.
func (l *Limiter) Drain() {
	if l == nil {
		return
	}
	lim := rate.NewLimiter(rate.Every(l.interval), 1)
	lim.ReserveN(l.now(), 1)
	l.mu.Lock()
	l.lim = lim
	l.mu.Unlock()
}

// Wait takes a token for one call (what names it in the log), sleeping until
// it is due. When the token would come after ctx's deadline it gives the
// token back and fails at once with a transient error wrapping
// retry.ErrDeadline: the work can be handed back for a later invocation
// instead of sleeping into a timeout.
func (l *Limiter) Wait(ctx context.Context, what string) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	lim := l.lim
	l.mu.Unlock()

	now := l.now()
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
		level = slog.LevelInfo
	}
	l.log.Log(ctx, level, "waiting for the rate limit", "call", what, "wait", d.Round(time.Millisecond).String(), "waitMs", d.Milliseconds())
	if err := l.sleep(ctx, d); err != nil {
		r.CancelAt(l.now())
		return err
	}
	return nil
}
