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
// night: the execution dates from LedgerDays before the last check's day (D
// itself when the last check is later) through D, so that a split listed up
// to LedgerDays after its execution date is read whenever it is listed — on
// a weekend, or on the last check's day after that check; from the start of
// the window of the indicators when the ledger does not reach back that far
// yet (a cold store), and never before it: after an outage longer than the
// window, the splits executed before the window's first session adjust no
// bar the indicators read. The provider's list is authoritative over that range: a
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
		// The ledger reaches back far enough: the trailing window before
		// the last check's day, which is asked again (a split may have been
		// listed on it after the check).
		from = max(marketdata.AddDays(min(date, m.LedgerThrough), -p.ledgerDays()), windowStart)
	}
	splits, err := p.Market.Splits(ctx, from, date)
	switch {
	case errors.Is(err, marketdata.ErrNotEntitled):
		log.ErrorContext(ctx, "splits not authorized for this key's plan: the ledger is not checked; stored bars are read unadjusted by what it lacks", "error", err.Error())
		return 1, nil
	case err != nil:
		return 1, fmt.Errorf("splits %s..%s: %w", from, date, err)
	}
	// One entry per action: the provider may list a split twice under two
	// ids (the same ticker, date and ratio); the lowest id is kept, so that
	// the choice is the same every night and the other, if stored before,
	// is removed as no longer listed.
	byAction := map[string]marketdata.Adjustment{}
	var twice []string
	for _, s := range splits {
		if s.ExecutionDate > date || s.ExecutionDate < from || !symbol.Valid(s.Ticker) {
			continue // listed ahead of time, or outside what was asked
		}
		a := s.Adjustment()
		k := fmt.Sprintf("%s#%s#%s#%g#%g", a.Ticker, a.Date, a.Kind, a.From, a.To)
		if old, ok := byAction[k]; ok {
			twice = append(twice, fmt.Sprintf("%s %s (ids %q and %q)", a.Ticker, a.Date, old.ID, a.ID))
			if old.ID < a.ID {
				continue
			}
		}
		byAction[k] = a
	}
	listed := make(map[string]marketdata.Adjustment, len(byAction))
	for _, a := range byAction {
		listed[ledgerKey(a)] = a
	}
	if len(twice) > 0 {
		res.SplitsListedTwice = len(twice)
		log.WarnContext(ctx, "splits the provider lists twice under two ids: one entry kept in the ledger, applied once", "twice", len(twice),
			"splits", strings.Join(twice[:min(len(twice), maxNamesLogged)], "; "))
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
	ledgerFrom := m.LedgerFrom
	if ledgerFrom == "" || ledgerFrom > from || m.LedgerThrough < marketdata.AddDays(from, -1) {
		ledgerFrom = from // nothing before from is known to be complete
	}
	return 1, p.setLedger(ctx, inv, ledgerFrom, date)
}

// ledgerKey identifies an adjustment: ticker, date, kind and the provider's
// id (a corrected date is another entry).
func ledgerKey(a marketdata.Adjustment) string {
	return a.Ticker + "#" + a.Date + "#" + string(a.Kind) + "#" + a.ID
}
