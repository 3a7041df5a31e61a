package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
)

// Why a ticker has no row of its day (Record.Err of a Stale record).
var (
	// ErrDayNotPublished: the provider has not published the day yet.
	ErrDayNotPublished = errors.New("the day is not published yet")
	// ErrNoBarOfDay: the provider has no bar of the ticker on that day
	// (halted, delisted, not traded).
	ErrNoBarOfDay = errors.New("no bar of the ticker on that day")
	// ErrTickerCallsSpent: the ticker needs its own call (the grouped
	// answers lack it, or no grouped answer was asked for its day) and the
	// night's per-ticker calls are spent; a later run or night calls for it.
	ErrTickerCallsSpent = errors.New("needs its own call, and the night's per-ticker calls are spent")
)

// ticker writes one ticker's row of its trading day D. A complete row of D
// already stored costs nothing (a redelivery). Otherwise the row is computed
// from the ticker's stored bars of the window (the last Sessions sessions to
// D), adjusted on read as of D by its entries in the ledger. While the
// window is being filled the row is computed from the stretch of stored
// sessions ending on D and marked partial: an indicator that needs what is
// missing is absent, and the row is computed again once the fill completes.
// The ticker's own call (see tickerCall) replaces the stored bars only when
// the grouped answers lack it. A history without a bar of D is not stored as
// if fresh: the record is Stale, the last good row stays.
func (p *ProcessTicker) ticker(ctx context.Context, log *slog.Logger, r Record, msg queue.Message, inv *invocation) Record {
	t, d := msg.Ticker, r.Date
	start := p.now()
	fail := func(err error) Record {
		if ctx.Err() != nil && !retry.IsPermanent(err) {
			err = errors.Join(err, ctx.Err())
		}
		r.Err = err
		switch {
		case refused(err):
			r.Outcome = Transient // Handle stops the run
		case retry.IsPermanent(err):
			log.ErrorContext(ctx, "ticker not refreshed: permanent error, message acknowledged", "error", err.Error())
			r.Outcome = Permanent
		default:
			log.WarnContext(ctx, "ticker not refreshed: transient error", "error", err.Error())
			r.Outcome = Transient
		}
		return r
	}
	done, err := p.Rows.HasRow(ctx, t, d)
	if err != nil {
		return fail(fmt.Errorf("row of %s on %s: %w", t, d, err))
	}
	if done {
		log.InfoContext(ctx, "row of the day already stored: acknowledged without a call", "asOf", d)
		r.Outcome = Current
		return r
	}
	info, err := p.nightState(ctx, inv, d)
	if err != nil {
		return fail(err)
	}
	w, sessions, err := p.window(ctx, inv, d)
	if err != nil {
		return fail(err)
	}
	m, err := p.marketState(ctx, inv)
	if err != nil {
		return fail(err)
	}
	h, err := p.History.TickerHistory(ctx, t, w[0], d)
	if err != nil {
		return fail(fmt.Errorf("stored history of %s: %w", t, err))
	}
	stretch := coverage.Stretch(w, sessions, m.PlanFrom)
	ledger := m.LedgerFrom != "" && m.LedgerFrom <= w[0] && m.LedgerThrough >= d
	partial := len(stretch) < len(w) || !ledger
	bars := h.Bars
	if len(stretch) > 0 {
		bars = from(bars, stretch[0])
	}
	// What became of the day's grouped call is in the session's state,
	// whatever became of the day message after it.
	dayAsked, dayStored := sessions[d].Status != "", sessions[d].Status == coverage.Stored
	fallback := info.night.Fallback

	if reason := tickerCallReason(fallback, dayAsked, dayStored, partial, bars, h.Ticker, d); reason != "" {
		if h.Ticker.NoDataAt != "" && dayStored && !hasDay(bars, d) {
			// Unknown to the provider when last asked, and absent from the
			// grouped answers for the whole market: not worth a call a night.
			return fail(retry.Permanent(fmt.Errorf("%s: no data at the provider (none on %s, none in the grouped answers)", t, h.Ticker.NoDataAt)))
		}
		fetched, err := p.tickerCall(ctx, log, fallback, dayAsked, t, d, max(w[0], m.PlanFrom), bars, h.Ticker, reason)
		switch {
		case errors.Is(err, ErrTickerCallsSpent):
			r.Err, r.Outcome = err, Stale
			log.WarnContext(ctx, "ticker not refreshed: the last good row is kept", "date", d, "reason", err.Error())
			return r
		case err != nil:
			r.TickerCall = reason
			return fail(err)
		}
		r.TickerCall, bars = reason, fetched
		if !dayAsked || fallback {
			// The call returned the whole window: the row is as complete as
			// this night makes it (no fill will follow).
			partial = false
		}
	}

	if !hasDay(bars, d) {
		r.Err = ErrNoBarOfDay
		if dayAsked && !fallback && !dayStored {
			r.Err = ErrDayNotPublished
		}
		last := "none"
		if len(bars) > 0 {
			last = bars[len(bars)-1].Date
		}
		log.WarnContext(ctx, "ticker not refreshed: no bar of its day yet; the last good row is kept (a later run of the night retries)",
			"date", d, "lastBar", last, "reason", r.Err.Error())
		r.Outcome = Stale
		return r
	}
	adjusted := marketdata.Adjust(bars, h.Ledger, d)
	if found := marketdata.CheckContinuity(t, adjusted, h.Ledger, d); len(found) > 0 {
		p.Metrics.Add(deploy.PriceDiscontinuities, float64(len(found)))
		for _, f := range found {
			log.WarnContext(ctx, "price continuity: "+f.String(), "explained", f.Explained(), "move", f.Move, "prev", f.Prev)
		}
		r.Discontinuities = found
	}
	snap, err := indicators.Compute(adjusted)
	if err != nil {
		// The same bars would give the same error: not worth a retry.
		return fail(retry.Permanent(fmt.Errorf("indicators of %s: %w", t, err)))
	}
	ts, err := marketdata.CloseInstant(snap.AsOf)
	if err != nil {
		return fail(retry.Permanent(fmt.Errorf("close of %s: %w", t, err)))
	}
	row := Row{Ticker: t, Timestamp: ts, Snapshot: snap, FetchedAt: p.marketNow().UTC(), Source: p.Source, Partial: partial}
	if err := p.Rows.PutRow(ctx, row); err != nil {
		return fail(err)
	}
	log.InfoContext(ctx, "ticker refreshed", "asOf", row.AsOf, "price", row.Price, "rsi", deref(row.RSI), "ma50", deref(row.MA50),
		"bars", row.Bars, "partial", row.Partial, "durationMs", p.now().Sub(start).Milliseconds())
	r.Outcome, r.Row = Stored, &row
	return r
}

// tickerCallReason says why ticker's own bars must be fetched for day d, or
// "" when the stored ones serve: a night in fallback (the plan has no grouped
// answer), no grouped answer asked for d (a v1 message, or a day message
// that failed or was dead-lettered before its call), a ticker the grouped
// answers lack and that its own call served before (absent from d's answer
// again), or one with no bar in a complete window although d is stored
// (absent from every grouped answer). A day asked and not published yet
// needs no call: its catch-up run asks again.
func tickerCallReason(fallback, dayAsked, dayStored, partial bool, bars []marketdata.Bar, rec coverage.Ticker, d string) string {
	switch {
	case fallback:
		return "no grouped answer tonight (the plan does not include it)"
	case hasDay(bars, d):
		return ""
	case !dayAsked:
		return "no day message asked for " + d
	case !dayStored:
		return ""
	case rec.PerTicker != "":
		return "the grouped answers lack it: served by its own call since " + rec.PerTicker
	case !partial && len(bars) == 0:
		return "absent from every grouped answer of the window"
	}
	return ""
}

// tickerCall fetches ticker's own bars, as printed, stores them, and
// returns its bars of the window: from start (the window's first session,
// or the plan's) to d — or, for a ticker its own calls serve already, only
// the days after the stored ones (which it keeps). The calls are bounded
// per night (TickerCalls, counted in the night's state by every consumer at
// once), whatever became of the night's day message: beyond the bound it
// makes no call and returns ErrTickerCallsSpent. Only a night in fallback
// (the plan has no grouped answer) calls for every ticker. What the call
// finds is remembered in the ticker's record: served by its own call, or
// unknown to the provider (no data at all).
func (p *ProcessTicker) tickerCall(ctx context.Context, log *slog.Logger, fallback, dayAsked bool, t, d, start string,
	stored []marketdata.Bar, rec coverage.Ticker, reason string) ([]marketdata.Bar, error) {
	if !fallback {
		ok, err := p.History.TakeTickerCall(ctx, d, p.tickerCalls())
		if err != nil {
			return nil, fmt.Errorf("per-ticker calls of the night of %s: %w", d, err)
		}
		if !ok {
			return nil, ErrTickerCallsSpent
		}
	}
	// Served by its own calls: its stored bars are its own series.
	own := !fallback && dayAsked && rec.PerTicker != ""
	from, keep := start, []marketdata.Bar(nil)
	if own && len(stored) > 0 {
		keep = stored
		from = marketdata.AddDays(stored[len(stored)-1].Date, 1)
	}
	fetched, err := p.Market.DailyBars(ctx, t, from, d)
	p.Metrics.Add(deploy.TickersBackfilled, 1)
	if err != nil {
		if retry.IsPermanent(err) && !refused(err) && !fallback {
			if keep != nil {
				// Nothing since the stored bars (halted): no bar of d; a
				// later night asks again.
				log.InfoContext(ctx, "ticker's own call has nothing after its stored bars", "from", from, "error", err.Error())
				return keep, nil
			}
			// Remember it, so the next nights do not ask again while the
			// grouped answers do not carry the ticker either.
			if perr := p.History.PutTicker(ctx, t, coverage.Ticker{PerTicker: rec.PerTicker, NoDataAt: d}); perr != nil {
				log.WarnContext(ctx, "could not record the ticker as unknown to the provider", "error", perr.Error())
			}
		}
		return nil, fmt.Errorf("own call (%s): daily bars %s %s..%s: %w", reason, t, from, d, err)
	}
	if err := p.History.PutTickerBars(ctx, t, fetched); err != nil {
		return nil, fmt.Errorf("store the bars of %s: %w", t, err)
	}
	if !fallback && dayAsked && rec.PerTicker != d {
		if err := p.History.PutTicker(ctx, t, coverage.Ticker{PerTicker: d}); err != nil {
			return nil, fmt.Errorf("record of %s: %w", t, err)
		}
	}
	log.InfoContext(ctx, "ticker's own bars fetched and stored", "reason", reason, "bars", len(fetched), "from", from)
	return append(keep, fetched...), nil
}

// from returns the bars (ascending) dated from date on.
func from(bars []marketdata.Bar, date string) []marketdata.Bar {
	for i, b := range bars {
		if b.Date >= date {
			return bars[i:]
		}
	}
	return nil
}

// hasDay reports whether the last of the ascending bars is dated d.
func hasDay(bars []marketdata.Bar, d string) bool {
	return len(bars) > 0 && bars[len(bars)-1].Date == d
}

// deref returns *v, or nil for a log attribute of an absent indicator.
func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
