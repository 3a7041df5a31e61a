// Package retry classifies errors as permanent or transient and retries
// transient ones with exponential backoff and full jitter
// (sleep = random(0, min(cap, base × 2^attempt))), honouring a server's
// Retry-After, and never sleeping past the context's deadline.
//
// Clients classify once, where the protocol is understood (an HTTP status, an
// error body), by wrapping with Permanent or Transient. Callers test with
// IsPermanent. An unclassified error counts as transient: network failures and
// truncated bodies are worth another try, and the attempt cap bounds the cost.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Error carries a classification and an optional server-requested delay.
type Error struct {
	Err        error
	permanent  bool
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying (bad key, unknown symbol, ...).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, permanent: true}
}

// Transient marks err as worth retrying, after retryAfter if the server said
// so (0 means use the backoff).
func Transient(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, RetryAfter: retryAfter}
}

// IsPermanent reports whether err was classified permanent.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.permanent
}

// ErrDeadline is wrapped when a retry was skipped because its wait would not
// end before the context's deadline.
var ErrDeadline = errors.New("no time left for another attempt before the deadline")

// Policy is a retry policy. The zero value makes one attempt.
type Policy struct {
	// Attempts is the maximum number of calls, first included (≥ 1).
	Attempts int
	// Base and Cap bound the backoff: attempt n waits random(0, min(Cap, Base·2ⁿ)).
	Base, Cap time.Duration
	// MaxRetryAfter caps a server's Retry-After (0: no cap beyond the deadline).
	MaxRetryAfter time.Duration
	// Rand returns a number in [0, 1); nil uses math/rand/v2.
	Rand func() float64
	// Sleep waits d or until ctx is done; nil uses a timer. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now returns the current time; nil uses time.Now.
	Now func() time.Time
}

// Do calls fn until it succeeds, returns a permanent error, the attempts are
// used up, the context ends, or the next wait would pass the deadline. It
// returns the number of calls made and the last error (wrapped with
// ErrDeadline when the deadline stopped it).
func (p Policy) Do(ctx context.Context, fn func(ctx context.Context, attempt int) error) (int, error) {
	attempts := max(p.Attempts, 1)
	var err error
	for n := range attempts {
		if cerr := ctx.Err(); cerr != nil {
			if err == nil {
				err = cerr
			}
			return n, err
		}
		err = fn(ctx, n)
		if err == nil || IsPermanent(err) || n == attempts-1 {
			return n + 1, err
		}
		wait := p.Backoff(n, err)
		if dl, ok := ctx.Deadline(); ok && p.now().Add(wait).After(dl) {
			return n + 1, errors.Join(err, ErrDeadline)
		}
		if serr := p.sleep(ctx, wait); serr != nil {
			return n + 1, err
		}
	}
	return attempts, err
}

// Backoff is the wait after attempt n (0-based) failed with err: the
// server's Retry-After when err carries one, else full jitter.
func (p Policy) Backoff(n int, err error) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		if p.MaxRetryAfter > 0 && e.RetryAfter > p.MaxRetryAfter {
			return p.MaxRetryAfter
		}
		return e.RetryAfter
	}
	ceiling := p.Base << min(n, 30)
	if ceiling <= 0 || (p.Cap > 0 && ceiling > p.Cap) {
		ceiling = p.Cap
	}
	r := rand.Float64
	if p.Rand != nil {
		r = p.Rand
	}
	return time.Duration(r() * float64(ceiling))
}

func (p Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p Policy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	return Sleep(ctx, d)
}

// Sleep waits d or until ctx is done, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
