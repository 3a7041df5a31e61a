package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zsmseven/backend/pkg/retry"
)

// The pieces of a night's work that must be done once, whichever message
// group's consumer gets there first (deploy.VarTickerMessageGroups above 1:
// one day message heads each group, and each group plans its own fill): a session's
// grouped call (the day, a revision, a fill) and the night's check of the
// splits. One consumer claims the piece and does it; the others wait for its
// result, because the tickers behind them need it, and then call nothing.

// Defaults of the claims.
const (
	// DefaultClaimPoll is how often a consumer that waits for another's
	// claim looks at its result.
	DefaultClaimPoll = time.Second
	// DefaultClaimLease is how long a claim holds without a deadline (the
	// invocation's deadline, when it has one, ends it), and the longest a
	// consumer waits for another's claim.
	DefaultClaimLease = 3 * time.Minute
)

// ErrClaimWait: another consumer is doing a piece of work this record needs,
// and it was not done while the record could wait; the record is handed back
// (a transient failure) and finds it done when it comes back.
var ErrClaimWait = errors.New("another consumer is doing this work, and it was not done while this record could wait")

// sessionClaim and ledgerClaim name the claims on a session's grouped call
// and on the night of date's check of the splits.
func sessionClaim(date string) string { return "s#" + date }
func ledgerClaim(date string) string  { return "l#" + date }

// once does work under the claim called name, unless done reports it done
// (by another consumer, or before). While another consumer holds the claim
// and wait is set, it waits for that one's result: done is asked again
// every ClaimPoll and the claim tried again (taken over once its lease has
// ended: its holder stopped) until the work is done, this consumer holds the
// claim, ctx ends or ClaimLease has passed (ErrClaimWait); without wait it
// leaves the work to the holder. done must read the store afresh. It reports
// whether this consumer did the work; the claim is released when it is done,
// whether it failed or not, so that a waiting consumer can take it at once.
func (p *ProcessTicker) once(ctx context.Context, log *slog.Logger, inv *invocation, name string, wait bool,
	done func(context.Context) (bool, error), work func(context.Context) error) (bool, error) {
	waitCtx, cancel := context.WithTimeout(ctx, p.claimLease())
	defer cancel()
	waited := false
	for {
		if ok, err := done(ctx); err != nil || ok {
			if ok && waited {
				log.InfoContext(ctx, "done by another consumer: nothing asked", "work", name)
			}
			return false, err
		}
		got, err := p.History.Claim(ctx, name, inv.owner, p.now(), p.leaseEnd(ctx))
		if err != nil {
			return false, fmt.Errorf("claim %s: %w", name, err)
		}
		if got {
			// Done by the holder the claim was taken over from?
			ok, err := done(ctx)
			if err == nil && !ok {
				err = work(ctx)
			}
			p.releaseClaim(ctx, log, inv, name)
			return err == nil && !ok, err
		}
		if !wait {
			log.InfoContext(ctx, "another consumer is doing it: left to it", "work", name)
			return false, nil
		}
		if !waited {
			log.InfoContext(ctx, "another consumer is doing it: waiting for its result", "work", name)
			waited = true
		}
		if err := retry.Sleep(waitCtx, p.claimPoll()); err != nil {
			return false, fmt.Errorf("%s: %w (%w)", name, ErrClaimWait, err)
		}
	}
}

// leaseEnd is when a claim taken now ends: the invocation's deadline (it
// cannot work past it), or ClaimLease from now without one.
func (p *ProcessTicker) leaseEnd(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return p.now().Add(p.claimLease())
}

// releaseClaim ends this invocation's claim, even when ctx has ended (a claim
// left behind would hold the others until its lease ends). A failure only
// makes them wait.
func (p *ProcessTicker) releaseClaim(ctx context.Context, log *slog.Logger, inv *invocation, name string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), VisibilityTimeout)
	defer cancel()
	if err := p.History.Release(rctx, name, inv.owner); err != nil {
		log.WarnContext(ctx, "claim not released: the others wait until its lease ends", "work", name, "error", err.Error())
	}
}

func (p *ProcessTicker) claimPoll() time.Duration { return orDefault(p.ClaimPoll, DefaultClaimPoll) }

func (p *ProcessTicker) claimLease() time.Duration { return orDefault(p.ClaimLease, DefaultClaimLease) }
