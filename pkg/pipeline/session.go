package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/symbol"
)

// SessionResult is what one grouped call did to a session of the store.
type SessionResult struct {
	Date string
	// Status is the session's state after the call: coverage.Stored, Empty
	// (not published yet), Closed (learnt) or OutsidePlan.
	Status coverage.Status
	// Rows is the number of rows of the answer; Bars those stored, Skipped
	// those left out (bad symbols or prices, duplicates).
	Rows, Bars, Skipped int
	// Tickers are the tickers whose bar was stored (Stored only).
	Tickers map[string]bool
}

// fetchSession asks the provider for one session of the whole market (one
// grouped call) for the work of the night of night, and records what it
// learnt: every valid row stored as a printed bar and the session stored; an
// empty answer, the session empty — or closed, when it was empty on an
// earlier night too and a later session is stored (a closure the rule
// calendar does not know, learnt and kept so that it is never asked again;
// one empty answer is not enough: the provider may have failed to serve it
// once); a 403 for a date before the plan's history, the session outside the
// plan and the plan's first session moved after it. Any other error is
// returned as the provider classified it. The caller holds the session's
// claim, and has read its state afresh.
func (p *ProcessTicker) fetchSession(ctx context.Context, log *slog.Logger, inv *invocation, date, night string) (SessionResult, error) {
	res := SessionResult{Date: date}
	prev := inv.sessions[date]
	day, err := p.Market.GroupedDaily(ctx, date)
	if errors.Is(err, marketdata.ErrOutsidePlan) {
		m, merr := p.marketState(ctx, inv)
		if merr != nil {
			return res, merr
		}
		if next := m.Calendar().NextTradingDay(date); next > m.PlanFrom {
			if err := p.movePlanFrom(ctx, inv, next); err != nil {
				return res, err
			}
			m.PlanFrom = next
		}
		if err := p.putSession(ctx, inv, coverage.Session{Date: date, Status: coverage.OutsidePlan, FetchedAt: p.marketNow().UTC(), Night: night}); err != nil {
			return res, err
		}
		log.WarnContext(ctx, "session before the plan's history (the provider refused that timeframe): the history starts after it; nothing older is asked",
			"session", date, "planFrom", m.PlanFrom, "error", err.Error())
		res.Status = coverage.OutsidePlan
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("grouped daily %s: %w", date, err)
	}
	res.Rows, res.Skipped = day.Rows, len(day.Skipped)
	if len(day.Skipped) > 0 {
		p.Metrics.Add(deploy.GroupedRowsSkipped, float64(len(day.Skipped)))
		var ex []string
		for _, s := range day.Skipped[:min(len(day.Skipped), 5)] {
			ex = append(ex, symbol.Quote(s.Ticker)+": "+s.Reason)
		}
		log.InfoContext(ctx, "grouped daily rows skipped", "session", date, "skipped", len(day.Skipped), "rows", day.Rows, "examples", strings.Join(ex, "; "))
	}
	now := p.marketNow().UTC()
	if !day.Published() {
		switch {
		case prev.Status == coverage.Stored:
			// Stored before: an empty answer now takes nothing away.
			log.WarnContext(ctx, "grouped daily empty for a session stored before: the stored bars are kept", "session", date)
			res.Status, res.Bars = coverage.Stored, prev.Bars
			return res, nil
		case prev.Status == coverage.Empty && prev.Night != "" && prev.Night < night && laterStored(inv, date):
			if err := p.learnClosure(ctx, inv, date); err != nil {
				return res, err
			}
			if err := p.putSession(ctx, inv, coverage.Session{Date: date, Status: coverage.Closed, FetchedAt: now, Night: night}); err != nil {
				return res, err
			}
			p.Metrics.Add(deploy.SessionsClosed, 1)
			log.WarnContext(ctx, "session empty on two nights while a later one is published: recorded as a closure of the exchange, never asked again",
				"session", date, "emptyBefore", prev.Night)
			res.Status = coverage.Closed
			return res, nil
		case laterStored(inv, date):
			log.WarnContext(ctx, "session empty while a later one is published: asked again on a later night, a closure if it is still empty then", "session", date)
		}
		if err := p.putSession(ctx, inv, coverage.Session{Date: date, Status: coverage.Empty, FetchedAt: now, Night: night}); err != nil {
			return res, err
		}
		res.Status = coverage.Empty
		return res, nil
	}
	if err := p.History.PutSessionBars(ctx, date, day.Bars); err != nil {
		return res, fmt.Errorf("store the bars of %s: %w", date, err)
	}
	m, err := p.marketState(ctx, inv)
	if err != nil {
		return res, err
	}
	st := coverage.Session{Date: date, Status: coverage.Stored, Rows: day.Rows, Bars: len(day.Bars), FetchedAt: now,
		Final: coverage.FinalAt(m.Calendar(), date, now), Night: night}
	if err := p.putSession(ctx, inv, st); err != nil {
		return res, err
	}
	res.Status, res.Bars = coverage.Stored, len(day.Bars)
	res.Tickers = make(map[string]bool, len(day.Bars))
	for t := range day.Bars {
		res.Tickers[t] = true
	}
	return res, nil
}
