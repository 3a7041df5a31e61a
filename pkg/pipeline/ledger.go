package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/symbol"
)

// checkLedger reads the splits of a trailing window into the ledger, once a
// night: the execution dates from LedgerDays before the night's day D (or
// from the last check, if that is older) through D — from the start of the
// window of the indicators when the ledger does not reach back that far yet
// (a cold store). The provider's list is authoritative over that range: a
// split it lists that the ledger lacks (listed late), or lists differently
// (another ratio, a corrected date), is written; an entry of the ledger it
// no longer lists is removed. Nothing stored is rewritten but the ledger:
// the bars are adjusted when they are read. It returns the calls made. A
// plan without the splits endpoint is logged and skipped.
func (p *ProcessTicker) checkLedger(ctx context.Context, log *slog.Logger, inv *invocation, date, windowStart string, res *DayResult) (int, error) {
	m, err := p.marketState(ctx, inv)
	if err != nil {
		return 0, err
	}
	if m.LedgerThrough >= date && m.LedgerFrom != "" && m.LedgerFrom <= windowStart {
		return 0, nil // checked tonight already (another part, or a later night)
	}
	from := windowStart
	if m.LedgerFrom != "" && m.LedgerFrom <= windowStart {
		// The ledger reaches back far enough: the trailing window, or the
		// days since the last check if they are more.
		from = min(marketdata.AddDays(date, -p.ledgerDays()), marketdata.AddDays(m.LedgerThrough, 1))
		from = max(from, windowStart)
	}
	splits, err := p.Market.Splits(ctx, from, date)
	switch {
	case errors.Is(err, marketdata.ErrNotEntitled):
		log.ErrorContext(ctx, "splits not authorized for this key's plan: the ledger is not checked; stored bars are read unadjusted by what it lacks", "error", err.Error())
		return 1, nil
	case err != nil:
		return 1, fmt.Errorf("splits %s..%s: %w", from, date, err)
	}
	listed := map[string]marketdata.Adjustment{}
	for _, s := range splits {
		if s.ExecutionDate > date || s.ExecutionDate < from || !symbol.Valid(s.Ticker) {
			continue // listed ahead of time, or outside what was asked
		}
		a := s.Adjustment()
		listed[ledgerKey(a)] = a
	}
	stored, err := p.History.Ledger(ctx, from, date)
	if err != nil {
		return 1, fmt.Errorf("ledger %s..%s: %w", from, date, err)
	}
	var add, remove []marketdata.Adjustment
	have := map[string]marketdata.Adjustment{}
	for _, a := range stored {
		have[ledgerKey(a)] = a
		if _, ok := listed[ledgerKey(a)]; !ok {
			remove = append(remove, a)
		}
	}
	for k, a := range listed {
		if old, ok := have[k]; !ok || old != a {
			add = append(add, a)
		}
	}
	if len(add) > 0 || len(remove) > 0 {
		if err := p.History.ChangeLedger(ctx, add, remove); err != nil {
			return 1, fmt.Errorf("ledger: %w", err)
		}
	}
	res.SplitsFrom, res.SplitsTo, res.Retracted = from, date, len(remove)
	for _, a := range add {
		res.Splits = append(res.Splits, a.Ticker)
	}
	if len(add) > 0 {
		p.Metrics.Add(deploy.SplitsFound, float64(len(add)))
		var names []string
		for _, a := range add[:min(len(add), maxNamesLogged)] {
			names = append(names, fmt.Sprintf("%s %s %g-for-%g", a.Ticker, a.Date, a.To, a.From))
		}
		log.InfoContext(ctx, "splits added to the ledger: the histories of those tickers read adjusted from now on", "added", len(add), "splits", strings.Join(names, "; "))
	}
	if len(remove) > 0 {
		var names []string
		for _, a := range remove[:min(len(remove), maxNamesLogged)] {
			names = append(names, fmt.Sprintf("%s %s (id %q)", a.Ticker, a.Date, a.ID))
		}
		log.WarnContext(ctx, "ledger entries the provider no longer lists (withdrawn, or their date corrected): removed", "removed", len(remove), "entries", strings.Join(names, "; "))
	}
	if m.LedgerFrom == "" || m.LedgerFrom > from || m.LedgerThrough < marketdata.AddDays(from, -1) {
		m.LedgerFrom = from // nothing before from is known to be complete
	}
	m.LedgerThrough = date
	return 1, p.putMarket(ctx, inv, m)
}

// ledgerKey identifies an adjustment: ticker, date, kind and the provider's
// id (a corrected date is another entry).
func ledgerKey(a marketdata.Adjustment) string {
	return a.Ticker + "#" + a.Date + "#" + string(a.Kind) + "#" + a.ID
}
