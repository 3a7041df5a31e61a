package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/zsmseven/backend/pkg/bardb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/symbol"
)

// DayResult is what a day message did, for an Observer.
type DayResult struct {
	// Status is bardb.DayPublished, DayNotPublished or DayFallback.
	Status string
	// AlreadyDone: the message's part was merged before (a redelivery):
	// nothing was asked of the provider.
	AlreadyDone bool
	// Held is the number of tickers the message carried; Merged those whose
	// bar of the day was stored; Missing those absent from the answer.
	Held, Merged, Missing int
	// Rows is the number of rows of the grouped answer; Skipped those left
	// out (bad symbols or prices, duplicates).
	Rows, Skipped int
	// SplitsFrom..SplitsTo is the range of execution dates checked for
	// splits ("" when none was); Splits the tickers marked for a backfill.
	SplitsFrom, SplitsTo string
	Splits               []string
}

// maxNamesLogged bounds the tickers named in one log line; the counts are
// always complete.
const maxNamesLogged = 20

// day refreshes the stored history of the day message's tickers: one
// grouped-daily call for the day, its held tickers' bars merged into their
// history, then one splits call for the execution dates since the last
// check, marking the tickers that split (their history is fetched again
// when their message comes). It records the day's state: published, not
// published yet (the tickers then stay stale until a later run of the
// night), or fallback (the plan has no grouped daily: every ticker fetches
// its own bars tonight, said once in the log and in deploy.GroupedNotAuthorized).
// A redelivered message whose part is recorded costs no call.
func (p *ProcessTicker) day(ctx context.Context, log *slog.Logger, r Record, msg queue.Message, inv *invocation) Record {
	date := msg.Date
	res := &DayResult{Held: len(msg.Tickers)}
	r.Day = res
	if p.Bars == nil || p.Grouped == nil {
		log.InfoContext(ctx, "day message acknowledged: no stored history configured, every ticker fetches its own bars")
		r.Outcome = DayDone
		return r
	}
	fail := func(err error) Record {
		r.Err = err
		r.Outcome = Transient
		if retry.IsPermanent(err) && !refused(err) {
			// A day that cannot be read (our bug, or a plan that forbids
			// the splits): the tickers behind it are not held back.
			log.ErrorContext(ctx, "day not refreshed: permanent error, message acknowledged; tickers fetch their own bars", "error", err.Error())
			r.Outcome = Permanent
			return r
		}
		if !refused(err) {
			log.WarnContext(ctx, "day not refreshed: transient error, message handed back", "error", err.Error())
		}
		return r
	}
	state, known, err := p.Bars.Day(ctx, date)
	if err != nil {
		return fail(fmt.Errorf("state of %s: %w", date, err))
	}
	if !known {
		state = bardb.DayState{Date: date}
	}
	if state.HasPart(msg.PartKey()) {
		inv.days[date] = dayInfo{known: true, state: state}
		res.Status, res.AlreadyDone = state.Status, true
		log.InfoContext(ctx, "day already refreshed by this message: acknowledged without a call", "status", state.Status)
		r.Outcome = DayDone
		return r
	}

	day, err := p.Grouped.GroupedDaily(ctx, date)
	switch {
	case errors.Is(err, marketdata.ErrNotEntitled):
		state.Status = bardb.DayFallback
		state.Parts = append(state.Parts, msg.PartKey())
		if err := p.Bars.PutDay(ctx, state); err != nil {
			return fail(fmt.Errorf("record the fallback of %s: %w", date, err))
		}
		inv.days[date] = dayInfo{known: true, state: state}
		p.Metrics.Add(deploy.GroupedNotAuthorized, 1)
		log.ErrorContext(ctx, "grouped daily not authorized for this key's plan: every ticker fetches its own bars tonight (one call each)",
			"tickers", len(msg.Tickers), "error", err.Error())
		res.Status = bardb.DayFallback
		r.Outcome = DayDone
		return r
	case err != nil:
		return fail(fmt.Errorf("grouped daily %s: %w", date, err))
	}
	res.Rows, res.Skipped = day.Rows, len(day.Skipped)
	if !day.Published() {
		if state.Status != bardb.DayPublished {
			state.Status = bardb.DayNotPublished
		}
		state.Rows = 0
		if err := p.Bars.PutDay(ctx, state); err != nil {
			return fail(fmt.Errorf("record %s as not published: %w", date, err))
		}
		inv.days[date] = dayInfo{known: true, state: state}
		p.Metrics.Add(deploy.GroupedNotPublished, 1)
		log.WarnContext(ctx, "grouped daily has no rows for the day (not published yet): its tickers keep their last good row; the catch-up run later in the night asks again",
			"tickers", len(msg.Tickers))
		res.Status = bardb.DayNotPublished
		r.Outcome = DayDone
		return r
	}

	merge := make(map[string]marketdata.Bar, len(msg.Tickers))
	var missing []string
	for _, t := range msg.Tickers {
		if b, ok := day.Bars[t]; ok {
			merge[t] = b
		} else {
			missing = append(missing, t)
		}
	}
	if len(day.Skipped) > 0 {
		p.Metrics.Add(deploy.GroupedRowsSkipped, float64(len(day.Skipped)))
		var ex []string
		for _, s := range day.Skipped[:min(len(day.Skipped), 5)] {
			ex = append(ex, symbol.Quote(s.Ticker)+": "+s.Reason)
		}
		log.InfoContext(ctx, "grouped daily rows skipped", "skipped", len(day.Skipped), "rows", day.Rows, "examples", strings.Join(ex, "; "))
	}
	if len(missing) > 0 {
		p.Metrics.Add(deploy.TickersNotInGrouped, float64(len(missing)))
		log.WarnContext(ctx, "held tickers absent from the grouped answer (halted, delisted or unknown): they keep their last good row",
			"missing", len(missing), "tickers", strings.Join(missing[:min(len(missing), maxNamesLogged)], " "))
	}
	if err := p.Bars.PutDayBars(ctx, merge); err != nil {
		return fail(fmt.Errorf("merge the bars of %s: %w", date, err))
	}
	res.Merged, res.Missing = len(merge), len(missing)

	if err := p.splits(ctx, log, date, msg.Tickers, res); err != nil {
		return fail(err)
	}

	state.Status = bardb.DayPublished
	state.Parts = append(state.Parts, msg.PartKey())
	state.Rows, state.Skipped = day.Rows, len(day.Skipped)
	state.Merged += len(merge)
	state.Missing += len(missing)
	if err := p.Bars.PutDay(ctx, state); err != nil {
		return fail(fmt.Errorf("record %s as published: %w", date, err))
	}
	inv.days[date] = dayInfo{known: true, state: state}
	res.Status = bardb.DayPublished
	log.InfoContext(ctx, "day refreshed: grouped bars merged into the stored history", "rows", day.Rows, "merged", len(merge),
		"missing", len(missing), "skipped", len(day.Skipped), "splitsChecked", res.SplitsFrom+".."+res.SplitsTo, "splits", len(res.Splits))
	r.Outcome = DayDone
	return r
}

// splits checks the splits executed since the last check, through date, and
// marks the tickers that split and have a stored history (or are held by
// this message) for a backfill. The first night checks date alone: nothing
// is stored yet. A plan without the splits endpoint is logged and skipped
// (the tickers' histories are then trusted as stored).
func (p *ProcessTicker) splits(ctx context.Context, log *slog.Logger, date string, held []string, res *DayResult) error {
	m, err := p.Bars.Market(ctx)
	if err != nil {
		return fmt.Errorf("market state: %w", err)
	}
	from := date
	if m.SplitsThrough != "" {
		if m.SplitsThrough >= date {
			return nil // checked already (another part of the night, or a later night)
		}
		from = marketdata.AddDays(m.SplitsThrough, 1)
		// A split before the window of the indicators changes none of its bars.
		if oldest := marketdata.AddDays(date, -p.historyDays()); from < oldest {
			from = oldest
		}
	}
	list, err := p.Grouped.Splits(ctx, from, date)
	switch {
	case errors.Is(err, marketdata.ErrNotEntitled):
		log.ErrorContext(ctx, "splits not authorized for this key's plan: stored histories are not checked for splits", "error", err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("splits %s..%s: %w", from, date, err)
	}
	res.SplitsFrom, res.SplitsTo = from, date
	var mark []marketdata.Split
	for _, s := range list {
		if s.ExecutionDate > date {
			continue // listed ahead of time: not executed yet
		}
		ok := slices.Contains(held, s.Ticker)
		if !ok {
			if ok, err = p.Bars.HasHistory(ctx, s.Ticker); err != nil {
				return err
			}
		}
		if ok {
			mark = append(mark, s)
			res.Splits = append(res.Splits, s.Ticker)
		}
	}
	if len(mark) > 0 {
		if err := p.Bars.MarkSplits(ctx, mark); err != nil {
			return fmt.Errorf("mark splits: %w", err)
		}
		p.Metrics.Add(deploy.SplitsFound, float64(len(mark)))
		log.InfoContext(ctx, "splits found: those tickers' histories are fetched again", "splits", len(mark),
			"tickers", strings.Join(res.Splits[:min(len(res.Splits), maxNamesLogged)], " "))
	}
	return p.Bars.PutMarket(ctx, bardb.MarketState{SplitsThrough: date})
}
