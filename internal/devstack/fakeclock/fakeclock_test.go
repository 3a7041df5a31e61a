package fakeclock_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakeclock"
)

var start = time.Date(2026, 11, 27, 21, 30, 0, 0, time.UTC)

// AfterFunc calls each function when the clock reaches its time, in the
// order of their times, from the Advance or Set that gets there; a stopped
// one is never called.
func TestAfterFunc(t *testing.T) {
	c := fakeclock.New(start)
	var got []string
	add := func(name string, d time.Duration) func() bool {
		return c.AfterFunc(d, func() { got = append(got, name) })
	}
	add("b", 2*time.Minute)
	add("a", time.Minute)
	stopC := add("c", 3*time.Minute)
	add("d", 10*time.Minute)

	if c.Pending() != 4 {
		t.Fatalf("%d pending, want 4", c.Pending())
	}
	c.Advance(59 * time.Second)
	if len(got) != 0 {
		t.Fatalf("fired %v before its time", got)
	}
	c.Advance(61 * time.Second) // 2 min: a and b, in their order
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("fired %v at +2m, want [a b]", got)
	}
	if !stopC() {
		t.Error("stop of a pending call reported false")
	}
	if stopC() {
		t.Error("second stop reported true")
	}
	c.Set(start.Add(time.Hour))
	if !slices.Equal(got, []string{"a", "b", "d"}) {
		t.Fatalf("fired %v at +1h, want [a b d] (c stopped)", got)
	}
	if c.Pending() != 0 {
		t.Errorf("%d pending after all fired or stopped", c.Pending())
	}
	c.Set(start) // back: nothing more to fire
	if len(got) != 3 {
		t.Fatalf("fired %v after going back", got)
	}
}

// A function due at once runs in its own goroutine; one calling back into
// the clock from Advance does not deadlock.
func TestAfterFuncReentrant(t *testing.T) {
	c := fakeclock.New(start)
	var wg sync.WaitGroup
	wg.Add(1)
	c.AfterFunc(0, wg.Done)
	wg.Wait()

	var at time.Time
	c.AfterFunc(time.Second, func() { at = c.Now(); c.AfterFunc(time.Second, func() {}) })
	c.Advance(5 * time.Second)
	if !at.Equal(start.Add(5 * time.Second)) {
		t.Errorf("the function read %v, want the advanced time", at)
	}
}
