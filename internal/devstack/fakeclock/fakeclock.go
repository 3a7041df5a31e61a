// Package fakeclock is a settable clock for tests: time moves only when the
// test says so, so deadlines, freshness and de-duplication windows can be
// tested without sleeping.
package fakeclock

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*timer
}

// timer is a function waiting for the clock to reach at.
type timer struct {
	at time.Time
	f  func()
}

// New returns a clock reading t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time; pass the method value as a Now func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d, then calls the functions of
// AfterFunc whose time has come.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.fire() // unlocks
}

// Sleep advances the clock by d instead of waiting, and returns ctx's error:
// pass the method value as a Sleep func.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

// Set moves the clock to t (forward or back), then calls the functions of
// AfterFunc whose time has come.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.fire() // unlocks
}

// AfterFunc calls f once the clock reads d from now or later, as
// time.AfterFunc does on the real clock: from Advance or Set, in their
// goroutine, before they return (f must not wait for their caller); at
// once in a goroutine of its own when d is not positive. stop cancels the
// call and reports whether it did (false: f was called or is being called).
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	if d <= 0 {
		go f()
		return func() bool { return false }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &timer{at: c.t.Add(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, tm)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		return true
	}
}

// Pending is the number of AfterFunc calls waiting for their time (tests:
// a goroutine is waiting on the clock).
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// fire takes the timers due at the clock's time off the list and, with
// c.mu released, calls their functions in the order of their times. c.mu
// is held on entry and released on return.
func (c *Clock) fire() {
	var due []*timer
	c.timers = slices.DeleteFunc(c.timers, func(tm *timer) bool {
		if tm.at.After(c.t) {
			return false
		}
		due = append(due, tm)
		return true
	})
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *timer) int { return a.at.Compare(b.at) })
	for _, tm := range due {
		tm.f()
	}
}
