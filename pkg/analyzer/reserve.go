package analyzer

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/pkg/reservationdb"
	"github.com/zsmseven/backend/pkg/retry"
)

// reservationTTL keeps a reservation well past the nights that could ask
// for its key (the key includes the data date).
const reservationTTL = 8 * 24 * time.Hour

// reservation is the outcome of reserve: won (held is ours, pending), or
// another run's done reservation (held names the stored analysis).
type reservation struct {
	won  bool
	held reservationdb.Reservation
}

// reserve takes the analysis key before anything is paid. When another run
// holds it, pending, this one waits — polling every WaitPoll — until that
// run is done (its result is reused), releases it, or its lease runs out
// (the run died: this one takes over); it gives up with ErrBusy when less
// than MinWork of its own invocation would be left.
func (s *Service) reserve(ctx context.Context, key, portfolio, dataAsOf string, now time.Time) (reservation, error) {
	lease := now.Add(s.o.Lease)
	if dl, ok := ctx.Deadline(); ok {
		lease = dl
	}
	r := reservationdb.Reservation{Key: key, Portfolio: portfolio, DataAsOf: dataAsOf, Owner: s.owner(ctx),
		LeaseUntil: lease, CreatedAt: now, ExpiresAt: now.Add(reservationTTL)}
	waited := false
	for {
		held, won, err := s.o.Reservations.Reserve(ctx, r)
		if err != nil {
			return reservation{}, fmt.Errorf("reserve the analysis of %q: %w", portfolio, err)
		}
		if won || held.State == reservationdb.StateDone {
			if waited {
				s.o.Logger.InfoContext(ctx, "reservation of another run settled", "portfolio", portfolio, "won", won)
			}
			return reservation{won: won, held: held}, nil
		}
		now := s.o.Now()
		// Look again every WaitPoll, or just after the lease runs out.
		wait := s.o.WaitPoll
		if until := held.LeaseUntil.Sub(now); until < wait {
			wait = max(until, 0) + 10*time.Millisecond
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(now.Add(wait)) < s.o.MinWork {
			return reservation{}, retry.Transient(fmt.Errorf("portfolio %q: %w (owner %s, lease until %s)", portfolio, ErrBusy,
				held.Owner, held.LeaseUntil.UTC().Format(time.RFC3339)), 0)
		}
		if !waited {
			s.o.Logger.InfoContext(ctx, "another run holds the reservation: waiting", "portfolio", portfolio, "owner", held.Owner,
				"leaseUntil", held.LeaseUntil.UTC().Format(time.RFC3339))
			waited = true
		}
		if err := s.o.Sleep(ctx, wait); err != nil {
			return reservation{}, fmt.Errorf("wait for the reservation of %q: %w", portfolio, err)
		}
	}
}

// owner names this invocation as a reservation's holder: the Lambda request
// id (unique per invocation, also for a redelivered message) plus random
// digits.
func (s *Service) owner(ctx context.Context) string {
	id := "local"
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		id = lc.AwsRequestID
	}
	return id + "/" + randomHex(6)
}

// complete and release settle this run's reservation; a failure is logged,
// not returned: the analysis is stored (or not) either way, and a
// reservation left pending expires with its lease.
func (s *Service) complete(ctx context.Context, r reservationdb.Reservation) {
	if err := s.o.Reservations.Complete(ctx, r); err != nil {
		s.o.Logger.WarnContext(ctx, "could not mark the reservation done", "portfolio", r.Portfolio, "error", err)
	}
}

func (s *Service) release(ctx context.Context, r reservationdb.Reservation) {
	if err := s.o.Reservations.Release(ctx, r.Key, r.Owner); err != nil {
		s.o.Logger.WarnContext(ctx, "could not release the reservation", "portfolio", r.Portfolio, "error", err)
	}
}
