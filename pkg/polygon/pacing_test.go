package polygon_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/retry"
)

// fakeClock is shared by the client (pacing, retries) and the server
// (recorded request times): sleeping advances it, so minutes of pacing take
// no time and the recorded times are exact.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) { _ = c.Sleep(context.Background(), d) }

func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// onFakeClock makes a harness whose client and server both run on clk.
func onFakeClock(t *testing.T, clk *fakeClock, so fakepolygon.Options, callsPerMinute int, edit func(*polygon.Options)) *harness {
	t.Helper()
	so.Now = clk.Now
	return newHarness(t, so, func(o *polygon.Options) {
		o.Pacer = pacing.New(callsPerMinute, pacing.Options{Now: clk.Now, Sleep: clk.Sleep, Logger: o.Logger})
		o.Now = clk.Now
		o.Sleep = clk.Sleep
		o.Retry.Sleep = clk.Sleep
		o.Retry.Rand = func() float64 { return 0 } // no backoff: only the pacing spaces retries
		if edit != nil {
			edit(o)
		}
	})
}

// tolerance absorbs the rate limiter's float rounding of 60 s / rate.
const tolerance = time.Millisecond

func TestPacingSpacesEveryRequestIncludingRetriesAndPages(t *testing.T) {
	clk := newFakeClock()
	start := clk.Now()
	// Pages of 200 bars: about 300 weekdays in the range make 2 pages a ticker.
	h := onFakeClock(t, clk, fakepolygon.Options{PageSize: 200}, 5, nil)
	h.srv.EnqueueFor("MSFT", fakepolygon.JSON(503, `{"status":"ERROR","error":"Service Unavailable"}`))
	for _, tk := range []string{"AAPL", "MSFT", "NVDA"} {
		if _, err := h.c.DailyBars(context.Background(), tk, "2024-10-01", "2025-11-28"); err != nil {
			t.Fatalf("%s: %v", tk, err)
		}
	}
	reqs := h.srv.Requests()
	if len(reqs) != 7 { // 3 tickers × 2 pages + 1 retry
		t.Fatalf("%d requests, want 7", len(reqs))
	}
	const interval = 12 * time.Second // 60 s / 5
	if first := reqs[0].Time.Sub(start); first < interval-tolerance {
		t.Errorf("first request %v after start, want one interval (%v): the bucket starts empty", first, interval)
	}
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].Time.Sub(reqs[i-1].Time); gap < interval-tolerance {
			t.Errorf("requests %d and %d (%s) %v apart, want at least %v", i-1, i, reqs[i].Path, gap, interval)
		}
	}
	// The rate itself: never more than 5 requests in any minute.
	if got := h.srv.MaxCallsIn(time.Minute - 2*tolerance); got > 5 {
		t.Errorf("%d requests within a minute, want at most 5", got)
	}
	if waits := strings.Count(h.logs.String(), `"level":"INFO","msg":"waiting for the rate limit"`); waits != 7 {
		t.Errorf("%d rate-limit waits logged at info, want 7:\n%s", waits, h.logs.String())
	}
	h.checkNoLeak(t, nil)
}

func TestPacingStaysUnderAServerEnforcingTheSameRate(t *testing.T) {
	clk := newFakeClock()
	// The server refuses a 6th call within any 60 s; the client paces at
	// 5/min for 12 tickers: not one 429.
	h := onFakeClock(t, clk, fakepolygon.Options{RateLimit: 5, Window: time.Minute}, 5, nil)
	for i := range 12 {
		if _, err := h.c.DailyBars(context.Background(), fmt.Sprintf("T%d", i), "2025-01-01", "2025-03-31"); err != nil {
			t.Fatal(err)
		}
	}
	if h.srv.Throttled() != 0 || h.srv.Calls() != 12 {
		t.Fatalf("%d calls, %d throttled; want 12 and none", h.srv.Calls(), h.srv.Throttled())
	}
}

func TestPacingFailsFastWhenTheTokenComesAfterTheDeadline(t *testing.T) {
	clk := newFakeClock()
	h := onFakeClock(t, clk, fakepolygon.Options{}, 5, nil)
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(5*time.Second))
	defer cancel()
	_, err := h.c.DailyBars(ctx, "AAPL", "2025-01-01", "2025-01-31")
	if err == nil || retry.IsPermanent(err) || !errors.Is(err, retry.ErrDeadline) {
		t.Fatalf("err %v, want a transient error wrapping retry.ErrDeadline", err)
	}
	var slept time.Duration
	for _, d := range clk.Slept() {
		slept += d
	}
	if h.srv.Calls() != 0 || slept != 0 {
		t.Fatalf("%d calls, slept %v; want no call and no sleep", h.srv.Calls(), clk.Slept())
	}
	// The token was given back: with time enough, the next call waits one
	// interval from the start, not two.
	start := clk.Now()
	if _, err := h.c.DailyBars(context.Background(), "AAPL", "2025-01-01", "2025-01-31"); err != nil {
		t.Fatal(err)
	}
	if wait := h.srv.Requests()[0].Time.Sub(start); wait > pacing.Interval(5)+tolerance {
		t.Errorf("next call waited %v, want at most %v", wait, pacing.Interval(5))
	}
}

func TestPacingHoldsUnderConcurrencyInRealTime(t *testing.T) {
	// 1,200 calls a minute is one every 50 ms: 3 goroutines × 4 tickers take
	// about 0.6 s. Server-side times carry scheduling jitter, hence one call
	// of tolerance per window; unpaced, all 12 would land within a few ms.
	const perMinute, goroutines, each = 1200, 3, 4
	h := newHarness(t, fakepolygon.Options{}, func(o *polygon.Options) { o.Pacer = pacing.New(perMinute, pacing.Options{}) })
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				_, err := h.c.DailyBars(context.Background(), fmt.Sprintf("G%dT%d", g, i), "2025-01-01", "2025-01-31")
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if h.srv.Calls() != goroutines*each {
		t.Fatalf("%d calls, want %d", h.srv.Calls(), goroutines*each)
	}
	const window = 250 * time.Millisecond // 5 intervals: at most 6 calls, both ends included
	if got := h.srv.MaxCallsIn(window); got > 6+1 {
		t.Errorf("%d calls within %v at %d/min, want at most 7", got, window, perMinute)
	}
}

func TestZeroRateMeansNoWaiting(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{}, func(o *polygon.Options) {
		o.Pacer = pacing.New(0, pacing.Options{}) // nil: unlimited
		o.Sleep = func(_ context.Context, d time.Duration) error {
			t.Errorf("paced sleep of %v with an unlimited rate", d)
			return nil
		}
	})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := h.c.DailyBars(context.Background(), fmt.Sprintf("T%d", i), "2025-01-01", "2025-01-31"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if h.srv.Calls() != 20 || h.c.Calls() != 20 {
		t.Fatalf("%d calls, want 20", h.srv.Calls())
	}
	if strings.Contains(h.logs.String(), "waiting for the rate limit") {
		t.Errorf("a rate-limit wait was logged with an unlimited rate")
	}
}
