package pacing_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/retry"
)

// freePlan is the spacing at 5 calls per minute: 60 s / 5 = 12 s, plus the
// 2 % safety margin.
const freePlan = 12240 * time.Millisecond

func TestInterval(t *testing.T) {
	for cpm, want := range map[int]time.Duration{5: freePlan, 600: 102 * time.Millisecond, 0: 0, -1: 0} {
		if got := pacing.Interval(cpm); got != want {
			t.Errorf("Interval(%d) = %v, want %v", cpm, got, want)
		}
	}
	if pacing.New(0, pacing.Options{}) != nil {
		t.Error("a zero rate builds a limiter")
	}
}

// waited runs Wait and returns how long it slept on the clock.
func waited(t *testing.T, l *pacing.Limiter, clk *fakeclock.Clock, ctx context.Context) time.Duration {
	t.Helper()
	before := clk.Now()
	if err := l.Wait(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	return clk.Now().Sub(before)
}

func TestStartDrainAndRefill(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(time.Date(2026, 11, 30, 21, 30, 0, 0, time.UTC))
	// Starting empty (the default): the first call waits one interval, so two
	// invocations back to back can never exceed the rate between them.
	l := pacing.New(5, pacing.Options{Now: clk.Now, Sleep: clk.Sleep})
	if d := waited(t, l, clk, ctx); d != freePlan {
		t.Errorf("first call waited %v, want %v", d, freePlan)
	}
	if d := waited(t, l, clk, ctx); d != freePlan {
		t.Errorf("second call waited %v, want %v", d, freePlan)
	}
	clk.Advance(10 * time.Minute) // idle: the bucket refills, to one token
	if d := waited(t, l, clk, ctx); d != 0 {
		t.Errorf("after idling, call waited %v, want 0", d)
	}
	clk.Advance(10 * time.Minute)
	l.Drain() // a new invocation: whatever happened before, wait a full interval
	if d := waited(t, l, clk, ctx); d != freePlan {
		t.Errorf("after Drain, call waited %v, want %v", d, freePlan)
	}

	full := pacing.New(5, pacing.Options{StartFull: true, Now: clk.Now, Sleep: clk.Sleep})
	if d := waited(t, full, clk, ctx); d != 0 {
		t.Errorf("StartFull: first call waited %v", d)
	}
}

func TestWaitFailsFastWhenTheTokenComesAfterTheDeadline(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 30, 21, 30, 0, 0, time.UTC))
	var logs bytes.Buffer
	l := pacing.New(5, pacing.Options{Now: clk.Now, Sleep: clk.Sleep, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(5*time.Second))
	defer cancel()
	start := clk.Now()
	err := l.Wait(ctx, "polygon AAPL")
	if err == nil || retry.IsPermanent(err) || !errors.Is(err, retry.ErrDeadline) || clk.Now() != start {
		t.Fatalf("err = %v after %v; want a transient ErrDeadline at once", err, clk.Now().Sub(start))
	}
	// The token was given back: the next call waits one interval, not two.
	if d := waited(t, l, clk, context.Background()); d != freePlan {
		t.Errorf("next call waited %v, want %v", d, freePlan)
	}
	if !strings.Contains(logs.String(), `"msg":"waiting for the rate limit","call":"test"`) {
		t.Errorf("the wait was not logged with the call's name:\n%s", logs.String())
	}
}

func TestNilLimiterNeverWaits(t *testing.T) {
	var l *pacing.Limiter
	l.Drain()
	if err := l.Wait(context.Background(), "x"); err != nil || l.Interval() != 0 {
		t.Fatalf("nil limiter: %v, interval %v", err, l.Interval())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}
