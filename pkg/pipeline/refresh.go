package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// Why a ticker has no row of its day (Record.Err of a Stale record).
var (
	// ErrDayNotPublished: the provider has not published the day yet.
	ErrDayNotPublished = errors.New("the day is not published yet")
	// ErrNoBarOfDay: the provider has no bar of the ticker on that day
	// (halted, delisted, not traded).
	ErrNoBarOfDay = errors.New("no bar of the ticker on that day")
)

// ticker writes one ticker's row of its trading day D. A row of D already
// stored costs nothing (a redelivery). Otherwise the row is computed from the
// stored history of the HistoryDays before D, fetched with the ticker's own
// call only when needed (see backfillReason) — or, without stored history,
// from the ticker's own call every time. A history still without a bar of D
// is not stored as if fresh: the record is Stale, the last good row stays.
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
	done, err := p.Store.Has(ctx, t, d)
	if err != nil {
		return fail(fmt.Errorf("row of %s on %s: %w", t, d, err))
	}
	if done {
		log.InfoContext(ctx, "row of the day already stored: acknowledged without a call", "asOf", d)
		r.Outcome = Current
		return r
	}
	from := marketdata.AddDays(d, -p.historyDays())

	var bars []marketdata.Bar
	if p.Bars == nil {
		// The per-ticker design: the ticker's own bars, every night.
		if bars, err = p.Market.DailyBars(ctx, t, from, d); err != nil {
			return fail(fmt.Errorf("daily bars %s %s..%s: %w", t, from, d, err))
		}
	} else {
		info, err := p.dayState(ctx, d, inv)
		if err != nil {
			return fail(err)
		}
		h, err := p.Bars.History(ctx, t, from)
		if err != nil {
			return fail(fmt.Errorf("stored history of %s: %w", t, err))
		}
		// Bars after d (a night run again after later ones) are not part of
		// d's history.
		h.Bars = h.Bars[:sortedUpTo(h.Bars, d)]
		reason := p.backfillReason(h, d, info)
		if reason == "" && h.Last() < d && !info.grouped() && !info.notPublished() {
			// Fallback (the plan has no grouped daily), or no day message
			// processed for d (a v1 message): the ticker's own call.
			reason = "no grouped answer tonight (" + info.status() + ")"
		}
		if reason != "" && len(h.Bars) == 0 && h.Meta.NoDataAt != "" && info.grouped() {
			// Unknown to the provider when last asked, and absent from
			// tonight's answer for the whole market: not worth a call a night.
			return fail(retry.Permanent(fmt.Errorf("%s: no data at the provider (none on %s, none in the grouped answer of %s)", t, h.Meta.NoDataAt, d)))
		}
		if reason != "" {
			r.Backfill = reason
			fetched, err := p.Market.DailyBars(ctx, t, from, d)
			if err != nil {
				if retry.IsPermanent(err) && !refused(err) {
					// Remember it, so the next nights do not ask again while
					// the grouped answer does not carry the ticker either.
					if perr := p.Bars.PutMeta(ctx, t, bardb.Meta{VerifiedThrough: h.Meta.VerifiedThrough, HistoryStart: h.Meta.HistoryStart, NoDataAt: d}); perr != nil {
						log.WarnContext(ctx, "could not record the ticker as unknown", "error", perr.Error())
					}
				}
				return fail(fmt.Errorf("backfill (%s): daily bars %s %s..%s: %w", reason, t, from, d, err))
			}
			if err := p.Bars.ReplaceHistory(ctx, t, replacement(h, fetched, from, d)); err != nil {
				return fail(fmt.Errorf("store the backfill of %s: %w", t, err))
			}
			p.Metrics.Add(deploy.TickersBackfilled, 1)
			log.InfoContext(ctx, "history backfilled with the ticker's own bars", "reason", reason, "bars", len(fetched))
			h.Bars = fetched
		}
		bars = h.Bars
	}

	if len(bars) == 0 || bars[len(bars)-1].Date < d {
		r.Err = ErrNoBarOfDay
		if info, _ := p.dayState(ctx, d, inv); info.known && info.state.Status == bardb.DayNotPublished {
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
	snap, err := indicators.Compute(bars)
	if err != nil {
		// The same request would return the same series: not worth a retry.
		return fail(retry.Permanent(fmt.Errorf("indicators of %s: %w", t, err)))
	}
	ts, err := marketdata.CloseInstant(snap.AsOf)
	if err != nil {
		return fail(retry.Permanent(fmt.Errorf("close of %s: %w", t, err)))
	}
	row := tickerdb.Row{Ticker: t, Timestamp: ts, Snapshot: snap, FetchedAt: p.now().UTC(), Source: p.Source}
	if err := p.Store.Put(ctx, row); err != nil {
		return fail(err)
	}
	log.InfoContext(ctx, "ticker refreshed", "asOf", row.AsOf, "price", row.Price, "rsi", deref(row.RSI), "ma50", deref(row.MA50),
		"bars", row.Bars, "durationMs", p.now().Sub(start).Milliseconds())
	r.Outcome, r.Row = Stored, &row
	return r
}

// grouped reports whether tonight's grouped answer was merged for the day.
func (d dayInfo) grouped() bool { return d.known && d.state.Status == bardb.DayPublished }

// notPublished reports whether the day's grouped answer had no rows yet.
func (d dayInfo) notPublished() bool { return d.known && d.state.Status == bardb.DayNotPublished }

func (d dayInfo) status() string {
	if !d.known {
		return "no day message processed"
	}
	return d.state.Status
}

// dayState reads the recorded state of a trading day once per invocation
// (a day message of this invocation updates it).
func (p *ProcessTicker) dayState(ctx context.Context, date string, inv *invocation) (dayInfo, error) {
	if info, ok := inv.days[date]; ok {
		return info, nil
	}
	if p.Bars == nil {
		return dayInfo{}, nil
	}
	st, known, err := p.Bars.Day(ctx, date)
	if err != nil {
		return dayInfo{}, fmt.Errorf("state of %s: %w", date, err)
	}
	info := dayInfo{known: known, state: st}
	inv.days[date] = info
	return info, nil
}

// backfillReason says why a ticker's stored history must be fetched again
// before its row of day d is computed, or "" when it can be used as stored:
// a split since it was stored; no history; fewer than MinHistory sessions
// (unless the provider has none older); or a gap — a NYSE trading day before
// d without a bar, after the last date the history was checked against the
// provider's (a day the provider itself has no bar of is not a gap once
// checked). On a night whose day is not published yet only those reasons
// count; the missing bar of d itself is not a gap.
func (p *ProcessTicker) backfillReason(h bardb.History, d string, info dayInfo) string {
	switch {
	case h.Split != nil:
		return fmt.Sprintf("split executed %s (%g-for-1)", h.Split.ExecutionDate, h.Split.Ratio())
	case len(h.Bars) == 0:
		return "no stored history"
	}
	first := h.Bars[0].Date
	if len(h.Bars) < p.minHistory() && (h.Meta.HistoryStart == "" || first > h.Meta.HistoryStart) {
		if len(h.Bars) == 1 {
			return fmt.Sprintf("new ticker (only the day's bar stored, fewer than %d sessions)", p.minHistory())
		}
		return fmt.Sprintf("short history (%d sessions, fewer than %d)", len(h.Bars), p.minHistory())
	}
	check := first
	if v := h.Meta.VerifiedThrough; v >= check {
		check = marketdata.AddDays(v, 1)
	}
	stored := make(map[string]bool, len(h.Bars))
	for _, b := range h.Bars {
		stored[b.Date] = true
	}
	for _, day := range marketdata.TradingDays(check, marketdata.PreviousTradingDay(d)) {
		if !stored[day] {
			return "gap: no bar of " + day
		}
	}
	return ""
}

// replacement is the backfill of a history: the fetched bars, the stored
// dates of the window the provider does not have (removed), and the record:
// checked through d, and where the provider's history starts when it starts
// inside the window (a recent listing, so a short history is complete).
func replacement(h bardb.History, fetched []marketdata.Bar, from, d string) bardb.Replace {
	have := make(map[string]bool, len(fetched))
	for _, b := range fetched {
		have[b.Date] = true
	}
	var remove []string
	for _, b := range h.Bars {
		if b.Date >= from && b.Date <= d && !have[b.Date] {
			remove = append(remove, b.Date)
		}
	}
	meta := bardb.Meta{VerifiedThrough: d}
	if days := marketdata.TradingDays(from, d); len(fetched) > 0 && len(days) > 0 && fetched[0].Date > days[0] {
		meta.HistoryStart = fetched[0].Date
	}
	slices.Sort(remove)
	return bardb.Replace{Bars: fetched, Remove: remove, Meta: meta}
}

// sortedUpTo is the number of ascending bars dated up to d.
func sortedUpTo(bars []marketdata.Bar, d string) int {
	n, _ := slices.BinarySearchFunc(bars, d, func(b marketdata.Bar, d string) int {
		if b.Date <= d {
			return -1
		}
		return 1
	})
	return n
}
