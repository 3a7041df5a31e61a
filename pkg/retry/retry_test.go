package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errBoom = errors.New("boom")

// recorder replaces sleeping with a record of the waits asked for.
type recorder struct{ waits []time.Duration }

func (r *recorder) sleep(_ context.Context, d time.Duration) error {
	r.waits = append(r.waits, d)
	return nil
}

func TestDoStopsOnPermanentAndRetriesTransient(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   bool
	}{
		{"success first", []error{nil}, 1, false},
		{"transient then success", []error{Transient(errBoom, 0), Transient(errBoom, 0), nil}, 3, false},
		{"unclassified counts as transient", []error{errBoom, nil}, 2, false},
		{"permanent not retried", []error{Permanent(errBoom)}, 1, true},
		{"attempts exhausted", []error{errBoom, errBoom, errBoom, errBoom}, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			p := Policy{Attempts: 4, Base: time.Second, Cap: 8 * time.Second, Sleep: rec.sleep, Rand: func() float64 { return 0.5 }}
			calls := 0
			n, err := p.Do(context.Background(), func(context.Context, int) error {
				e := tt.errs[calls]
				calls++
				return e
			})
			if n != tt.wantCalls || calls != tt.wantCalls || (err != nil) != tt.wantErr {
				t.Fatalf("Do = %d, %v; fn called %d times; want %d calls, error %v", n, err, calls, tt.wantCalls, tt.wantErr)
			}
			if len(rec.waits) != tt.wantCalls-1 && !tt.wantErr {
				t.Fatalf("waits %v", rec.waits)
			}
		})
	}
}

func TestBackoffIsFullJitterCappedExponential(t *testing.T) {
	p := Policy{Base: time.Second, Cap: 5 * time.Second, Rand: func() float64 { return 0.999999 }}
	// With random ≈ 1 the wait approaches min(cap, base·2ⁿ): 1s, 2s, 4s, 5s, 5s.
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for n, w := range want {
		if got := p.Backoff(n, errBoom); got > w || got < w-w/1000 {
			t.Errorf("attempt %d: wait %v, want just under %v", n, got, w)
		}
	}
	p.Rand = func() float64 { return 0 }
	if got := p.Backoff(3, errBoom); got != 0 {
		t.Errorf("jitter lower bound: %v, want 0", got)
	}
}

func TestRetryAfterIsHonouredAndCapped(t *testing.T) {
	p := Policy{Base: time.Second, Cap: 4 * time.Second, MaxRetryAfter: 30 * time.Second}
	if got := p.Backoff(0, Transient(errBoom, 7*time.Second)); got != 7*time.Second {
		t.Errorf("Retry-After 7s: waited %v", got)
	}
	if got := p.Backoff(0, Transient(errBoom, time.Hour)); got != 30*time.Second {
		t.Errorf("Retry-After 1h: waited %v, want the 30s cap", got)
	}
}

func TestNeverSleepsPastTheDeadline(t *testing.T) {
	now := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(10*time.Second))
	defer cancel()
	rec := &recorder{}
	p := Policy{Attempts: 5, Base: time.Second, Cap: time.Minute, Sleep: rec.sleep, Now: func() time.Time { return now }}
	n, err := p.Do(ctx, func(context.Context, int) error { return Transient(errBoom, 20*time.Second) })
	if n != 1 || !errors.Is(err, ErrDeadline) || !errors.Is(err, errBoom) || len(rec.waits) != 0 {
		t.Fatalf("Do = %d, %v, waits %v; want 1 call, ErrDeadline and the cause, no sleep", n, err, rec.waits)
	}
}

func TestClassification(t *testing.T) {
	if !IsPermanent(Permanent(errBoom)) || IsPermanent(Transient(errBoom, 0)) || IsPermanent(errBoom) {
		t.Fatal("classification")
	}
	wrapped := errors.Join(errors.New("ctx"), Permanent(errBoom))
	if !IsPermanent(wrapped) || !errors.Is(wrapped, errBoom) {
		t.Fatal("classification must survive wrapping")
	}
	if Permanent(nil) != nil || Transient(nil, 0) != nil {
		t.Fatal("nil stays nil")
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v", err)
	}
}
