package pipeline

import (
	"context"
	"log/slog"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
)

// FillResult is what a fill message did, for an Observer: the progress of
// a night's fill.
type FillResult struct {
	// Session is the session asked for, Night the trading day whose window
	// needs it; Part of Parts its place in the night's fill (latest first).
	Session, Night string
	Part, Parts    int
	// Status is the session's state after the message: coverage.Stored,
	// Empty (not published: asked again by a later night), Closed or
	// OutsidePlan.
	Status coverage.Status
	// AlreadyDone: the session was covered before (a redelivery, another
	// group's fill, or the night's own day), or asked tonight already: no
	// call.
	AlreadyDone bool
	// Bars is the number of bars stored; Calls the calls made (0 or 1).
	Bars, Calls int
}

// fill fetches one session of the whole market that the window of a
// night's indicators lacks (one grouped call; its rows stored as printed).
// A session covered already, asked tonight already (empty: a later night
// asks again), or before the plan's history costs no call; so does one whose
// call another message group's fill is making: this one waits for its
// answer (the tickers behind it need it). A transient failure hands the
// message back (never to the tail of the queue: the night's tickers behind
// the fill need it).
func (p *ProcessTicker) fill(ctx context.Context, log *slog.Logger, r Record, msg queue.Message, inv *invocation) Record {
	res := &FillResult{Session: msg.Date, Night: msg.Night, Part: msg.Part, Parts: msg.Parts}
	r.Fill = res
	fail := func(err error) Record {
		r.Err, r.Outcome = err, Transient
		switch {
		case refused(err):
			// Handle stops the run.
		case retry.IsPermanent(err):
			log.ErrorContext(ctx, "session not filled: permanent error, message acknowledged (the next night asks again)", "error", err.Error())
			r.Outcome = Permanent
		default:
			log.WarnContext(ctx, "session not filled: transient error, message handed back", "error", err.Error())
		}
		return r
	}
	// The night's window: the sessions after this one, for telling a
	// closure from a day not published yet.
	if _, _, err := p.window(ctx, inv, msg.Night); err != nil {
		return fail(err)
	}
	var got SessionResult
	asked, err := p.once(ctx, log, inv, sessionClaim(msg.Date), true, func(ctx context.Context) (bool, error) {
		st, err := p.rereadSession(ctx, inv, msg.Date)
		if err != nil {
			return false, err
		}
		m, err := p.rereadMarket(ctx, inv)
		if err != nil {
			return false, err
		}
		res.Status = st.Status
		if m.PlanFrom != "" && msg.Date < m.PlanFrom {
			res.Status = coverage.OutsidePlan
			return true, nil
		}
		return st.Covered() || (st.Status == coverage.Empty && st.Night == msg.Night), nil
	}, func(ctx context.Context) error {
		var err error
		got, err = p.fetchSession(ctx, log, inv, msg.Date, msg.Night)
		return err
	})
	if err != nil {
		return fail(err)
	}
	res.AlreadyDone = !asked
	if asked {
		res.Calls, res.Status, res.Bars = 1, got.Status, got.Bars
		if got.Status == coverage.Stored {
			p.Metrics.Add(deploy.SessionsFilled, 1)
		}
		log.InfoContext(ctx, "session filled", "status", string(got.Status), "bars", got.Bars, "rows", got.Rows,
			"part", msg.Part, "parts", msg.Parts)
	}
	r.Outcome = FillDone
	return r
}
