package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
)

// What a day message found of its trading day (DayResult.Status).
const (
	// DayStored: the grouped answer carried the day; it is stored.
	DayStored = "stored"
	// DayNotPublished: the grouped answer had no rows yet; the catch-up run
	// later in the night asks again.
	DayNotPublished = "notPublished"
	// DayFallback: the plan does not include the grouped answer; every
	// ticker fetches its own bars tonight.
	DayFallback = "fallback"
)

// DayResult is what a day message did, for an Observer.
type DayResult struct {
	// Status is DayStored, DayNotPublished or DayFallback.
	Status string
	// AlreadyDone: the message's part was done before (a redelivery):
	// nothing was asked of the provider.
	AlreadyDone bool
	// Held is the number of tickers the message carried; Present those with
	// a bar of the day, Missing those absent from the answer.
	Held, Present, Missing int
	// Rows is the number of rows of the grouped answer; Skipped those left
	// out (bad symbols or prices, duplicates).
	Rows, Skipped int
	// Revised are the sessions fetched again, final now (normally the one
	// before the day).
	Revised []string
	// SplitsFrom..SplitsTo is the range of execution dates whose splits were
	// read into the ledger ("" when none was); Splits the tickers of the
	// entries added or corrected, Retracted the entries removed;
	// SplitsListedTwice counts the splits the provider lists twice under
	// two ids (one entry kept).
	SplitsFrom, SplitsTo string
	Splits               []string
	Retracted            int
	SplitsListedTwice    int
	// Needed is the number of sessions the window of the indicators still
	// lacks; Planned those whose fill this message queued (0 when none was
	// needed).
	Needed, Planned int
	// GroupedCalls and SplitsCalls are the calls made to the market-data
	// provider: grouped answers (the day, the sessions fetched again) and
	// the splits.
	GroupedCalls, SplitsCalls int
}

// maxNamesLogged bounds the tickers named in one log line; the counts are
// always complete.
const maxNamesLogged = 20

// day makes the stored history complete up to its trading day D, in this
// order: D's grouped answer (one call: every ticker's bar as printed), the
// sessions of the window stored on their own night fetched once more (their
// revisions are in by now; normally the one before D: one call), the splits
// of a trailing window read into the ledger (one call), and, for every
// session the window still lacks, a fill message queued behind the message's
// tickers, then those tickers again so that their rows are completed. A
// redelivered message whose part is recorded costs no call. The plan does
// not include the grouped answer (403): the night falls back to one call per
// ticker, said once in the log and in deploy.GroupedNotAuthorized.
//
// With several message groups, one day message heads each: the day's call,
// each revision and the splits are claimed (claim.go), so that one consumer
// makes each call and the others wait for its result, which the tickers
// behind them need; each group plans its own fill, whose calls are claimed
// session by session. What each learns is merged into the night's and the
// market's states, never written whole.
func (p *ProcessTicker) day(ctx context.Context, log *slog.Logger, r Record, msg queue.Message, inv *invocation) Record {
	date := msg.Date
	res := &DayResult{Held: len(msg.Tickers)}
	r.Day = res
	fail := func(err error) Record {
		r.Err = err
		r.Outcome = Transient
		if retry.IsPermanent(err) && !refused(err) {
			// A day that cannot be read (our bug, or a plan that forbids
			// the splits): the tickers behind it are not held back, and
			// bound their own calls (tickerCall).
			log.ErrorContext(ctx, "day not refreshed: permanent error, message acknowledged", "error", err.Error())
			r.Outcome = Permanent
			return r
		}
		if !refused(err) {
			log.WarnContext(ctx, "day not refreshed: transient error, message handed back", "error", err.Error())
		}
		return r
	}
	info, err := p.nightState(ctx, inv, date)
	if err != nil {
		return fail(err)
	}
	if info.night.HasPart(msg.PartKey()) {
		res.Status, res.AlreadyDone = dayStatus(info.night, inv.sessions[date]), true
		log.InfoContext(ctx, "day already refreshed by this message: acknowledged without a call")
		r.Outcome = DayDone
		return r
	}
	w, _, err := p.window(ctx, inv, date)
	if err != nil {
		return fail(err)
	}

	// 1. The day itself, unless a message of this run (another group's, or
	// this one before a redelivery) asked for it already, or it is stored.
	enqueued := msg.EnqueuedAt.Truncate(time.Second) // the states keep seconds
	_, err = p.once(ctx, log, inv, sessionClaim(date), true, func(ctx context.Context) (bool, error) {
		n, err := p.rereadNight(ctx, inv, date)
		if err != nil {
			return false, err
		}
		st, err := p.rereadSession(ctx, inv, date)
		return n.night.Fallback || st.Covered() || (st.Night == date && !st.FetchedAt.Before(enqueued)), err
	}, func(ctx context.Context) error {
		res.GroupedCalls++
		got, err := p.fetchSession(ctx, log, inv, date, date)
		switch {
		case errors.Is(err, marketdata.ErrNotEntitled):
			if err := p.setFallback(ctx, inv, date); err != nil {
				return err
			}
			p.Metrics.Add(deploy.GroupedNotAuthorized, 1)
			log.ErrorContext(ctx, "grouped daily not authorized for this key's plan: every ticker fetches its own bars tonight (one call each)",
				"tickers", len(msg.Tickers), "error", err.Error())
			return nil
		case err != nil:
			return err
		}
		res.Rows, res.Skipped = got.Rows, got.Skipped
		switch got.Status {
		case coverage.Stored:
			p.present(ctx, log, msg.Tickers, got.Tickers, res)
		case coverage.Empty:
			p.Metrics.Add(deploy.GroupedNotPublished, 1)
			log.WarnContext(ctx, "grouped daily has no rows for the day (not published yet): its tickers keep their last good row; the catch-up run later in the night asks again",
				"tickers", len(msg.Tickers))
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	night := inv.nights[date].night
	res.Status = dayStatus(night, inv.sessions[date])

	if !night.Fallback {
		// 2. The sessions stored on their own night, final now; one left
		// to another consumer revising it.
		m, err := p.marketState(ctx, inv)
		if err != nil {
			return fail(err)
		}
		cal := m.Calendar()
		for _, d := range w {
			st := inv.sessions[d]
			if d == date || st.Status != coverage.Stored || st.Final || !coverage.FinalAt(cal, d, p.marketNow()) {
				continue
			}
			var bars int
			revised, err := p.once(ctx, log, inv, sessionClaim(d), false, func(ctx context.Context) (bool, error) {
				st, err := p.rereadSession(ctx, inv, d)
				return st.Status != coverage.Stored || st.Final, err
			}, func(ctx context.Context) error {
				res.GroupedCalls++
				got, err := p.fetchSession(ctx, log, inv, d, date)
				bars = got.Bars
				return err
			})
			if err != nil {
				return fail(fmt.Errorf("revision of %s: %w", d, err))
			}
			if revised {
				res.Revised = append(res.Revised, d)
				log.InfoContext(ctx, "session fetched again after its close: revisions stored", "session", d, "bars", bars)
			}
		}
	}

	// 3. The ledger, once a night: the tickers behind this message wait
	// for it (their rows are partial without it).
	_, err = p.once(ctx, log, inv, ledgerClaim(date), true, func(ctx context.Context) (bool, error) {
		m, err := p.rereadMarket(ctx, inv)
		return m.LedgerFrom != "" && m.LedgerFrom <= w[0] && m.LedgerThrough >= date, err
	}, func(ctx context.Context) error {
		calls, err := p.checkLedger(ctx, log, inv, date, w[0], res)
		res.SplitsCalls += calls
		return err
	})
	if err != nil {
		return fail(err)
	}

	// 4. What the window still lacks, fetched as queue work behind this
	// message's tickers, then those tickers again. Every message plans its
	// own (the tickers again are its own); a session another message's fill
	// asks for costs no second call (its claim), and the same fill message
	// queued twice by one run is one message to a FIFO queue.
	if !night.Fallback {
		w, _, err := p.window(ctx, inv, date) // computed again if a closure was learnt
		if err != nil {
			return fail(err)
		}
		m, err := p.marketState(ctx, inv)
		if err != nil {
			return fail(err)
		}
		missing := coverage.Missing(w[:len(w)-1], inv.sessions, m.PlanFrom)
		res.Needed = len(missing)
		if len(missing) > 0 && p.Publisher != nil {
			if err := p.planFill(ctx, msg, missing); err != nil {
				return fail(err)
			}
			res.Planned = len(missing)
			log.InfoContext(ctx, "the window lacks sessions: one fill message each queued behind the night's tickers, latest first, then the tickers again",
				"missing", len(missing), "latest", missing[0], "oldest", missing[len(missing)-1])
		}
	}

	if err := p.addNightPart(ctx, inv, date, msg.PartKey()); err != nil {
		return fail(err)
	}
	log.InfoContext(ctx, "day refreshed", "status", res.Status, "rows", res.Rows, "present", res.Present, "missing", res.Missing,
		"skipped", res.Skipped, "revised", strings.Join(res.Revised, " "), "splitsChecked", res.SplitsFrom+".."+res.SplitsTo,
		"splits", len(res.Splits), "retracted", res.Retracted, "needed", res.Needed, "planned", res.Planned, "calls", res.GroupedCalls+res.SplitsCalls)
	r.Outcome = DayDone
	return r
}

// dayStatus is what the night knows of its day.
func dayStatus(n coverage.Night, st coverage.Session) string {
	switch {
	case n.Fallback:
		return DayFallback
	case st.Status == coverage.Stored:
		return DayStored
	}
	return DayNotPublished
}

// present counts the held tickers with a bar in the day's grouped answer
// (stored), and logs and counts those without one (halted, delisted, or
// unknown to the grouped answer: they are served by their own call once the
// window is complete).
func (p *ProcessTicker) present(ctx context.Context, log *slog.Logger, held []string, stored map[string]bool, res *DayResult) {
	var missing []string
	for _, t := range held {
		if stored[t] {
			res.Present++
		} else {
			missing = append(missing, t)
		}
	}
	res.Missing = len(missing)
	if len(missing) > 0 {
		p.Metrics.Add(deploy.TickersNotInGrouped, float64(len(missing)))
		log.WarnContext(ctx, "held tickers absent from the grouped answer (halted, delisted or unknown to it): they keep their last good row",
			"missing", len(missing), "tickers", strings.Join(missing[:min(len(missing), maxNamesLogged)], " "))
	}
}

// planFill queues, in the day message's group, one fill message per missing
// session (latest first), then the message's tickers again: behind the
// night's own ticker messages, they complete the rows once the window is.
// The messages' run id is the night's with "/fill": sent again (a
// redelivery) they are the same messages to a FIFO queue.
func (p *ProcessTicker) planFill(ctx context.Context, msg queue.Message, missing []string) error {
	runID := msg.RunID
	if len(runID) > 100 {
		runID = runID[:100]
	}
	runID += "/fill"
	at := p.marketNow()
	msgs := make([]queue.Message, 0, len(missing)+len(msg.Tickers))
	for i, d := range missing {
		msgs = append(msgs, queue.NewFill(d, msg.Date, msg.Group, i+1, len(missing), runID, at))
	}
	for _, t := range msg.Tickers {
		msgs = append(msgs, queue.NewTicker(t, msg.Date, runID, at))
	}
	res, err := p.Publisher.Publish(ctx, msgs)
	if err != nil {
		return fmt.Errorf("queue the fill of %s: %w", msg.Date, err)
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("queue the fill of %s: %d of %d messages not accepted (%s: %s)", msg.Date, len(res.Failed), len(msgs), res.Failed[0].Code, res.Failed[0].Message)
	}
	return nil
}
