// Package memstore holds the stored daily history and the ticker-data rows
// in memory, behind the use case's ports (pipeline.History, pipeline.Rows):
// for the unit tests of the batch's mechanics and for the benchmark of
// 10,000 tickers, where dynalite would take many minutes to hold millions of
// bars. The stored history's own tests run on dynalite (pkg/bardb,
// pkg/pipeline); this reads back what pkg/bardb does after the same writes
// (memstore_test.go holds it to that), refuses what it refuses, and has no
// capacity of its own.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/retry"
)

// History is the daily-bars table in memory.
type History struct {
	mu       sync.Mutex
	bars     map[string]map[string]marketdata.Bar // session → ticker → bar
	ledger   []marketdata.Adjustment
	tickers  map[string]coverage.Ticker
	sessions map[string]coverage.Session
	nights   map[string]coverage.Night
	market   coverage.Market
	claims   map[string]claim
}

// claim is a lease on a piece of work (pipeline.Claims).
type claim struct {
	owner string
	until time.Time
}

var _ pipeline.History = (*History)(nil)

// NewHistory returns an empty store.
func NewHistory() *History {
	return &History{bars: map[string]map[string]marketdata.Bar{}, tickers: map[string]coverage.Ticker{},
		sessions: map[string]coverage.Session{}, nights: map[string]coverage.Night{}, claims: map[string]claim{}}
}

// stored is b as the store keeps it: the prices, and the start of its
// session derived from its date; an invalid bar is refused, as pkg/bardb
// refuses it (a permanent error).
func stored(ticker string, b marketdata.Bar) (marketdata.Bar, error) {
	start, err := marketdata.SessionStart(b.Date)
	if err != nil {
		return marketdata.Bar{}, retry.Permanent(fmt.Errorf("bar of %s: %w", ticker, err))
	}
	if reason := marketdata.CheckPrices(b); reason != "" {
		return marketdata.Bar{}, retry.Permanent(fmt.Errorf("bar of %s on %s: %s", ticker, b.Date, reason))
	}
	b.Start = start.UTC()
	return b, nil
}

// PutSessionBars stores one session's bars of many tickers.
func (h *History) PutSessionBars(_ context.Context, date string, bars map[string]marketdata.Bar) error {
	keep := make(map[string]marketdata.Bar, len(bars))
	for t, b := range bars {
		if b.Date != date {
			return retry.Permanent(fmt.Errorf("bar of %s dated %s in the session of %s", t, b.Date, date))
		}
		var err error
		if keep[t], err = stored(t, b); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.bars[date]
	if s == nil {
		s = make(map[string]marketdata.Bar, len(bars))
		h.bars[date] = s
	}
	for t, b := range keep {
		s[t] = b
	}
	return nil
}

// PutTickerBars stores bars of one ticker.
func (h *History) PutTickerBars(_ context.Context, ticker string, bars []marketdata.Bar) error {
	keep := make([]marketdata.Bar, 0, len(bars))
	for _, b := range bars {
		b, err := stored(ticker, b)
		if err != nil {
			return err
		}
		keep = append(keep, b)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range keep {
		if h.bars[b.Date] == nil {
			h.bars[b.Date] = map[string]marketdata.Bar{}
		}
		h.bars[b.Date][ticker] = b
	}
	return nil
}

// TickerHistory reads ticker's bars from one date to another, its ledger
// and its record.
func (h *History) TickerHistory(_ context.Context, ticker, from, to string) (coverage.History, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out coverage.History
	for date, bars := range h.bars {
		if date < from || date > to {
			continue
		}
		if b, ok := bars[ticker]; ok {
			out.Bars = append(out.Bars, b)
		}
	}
	slices.SortFunc(out.Bars, func(a, b marketdata.Bar) int { return strings.Compare(a.Date, b.Date) })
	for _, a := range h.ledger {
		if a.Ticker == ticker {
			out.Ledger = append(out.Ledger, a)
		}
	}
	// In its partition's order: date, kind, id.
	slices.SortFunc(out.Ledger, func(a, b marketdata.Adjustment) int {
		return strings.Compare(a.Date+"#"+string(a.Kind)+"#"+a.ID, b.Date+"#"+string(b.Kind)+"#"+b.ID)
	})
	out.Ticker = h.tickers[ticker]
	return out, nil
}

// Ledger lists the adjustments dated from one date to another.
func (h *History) Ledger(_ context.Context, from, to string) ([]marketdata.Adjustment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []marketdata.Adjustment
	for _, a := range h.ledger {
		if a.Date >= from && a.Date <= to {
			out = append(out, a)
		}
	}
	// In the ledger's order by date: date, ticker, kind, id.
	slices.SortFunc(out, func(a, b marketdata.Adjustment) int { return strings.Compare(indexKey(a), indexKey(b)) })
	return out, nil
}

func indexKey(a marketdata.Adjustment) string {
	return a.Date + "#" + a.Ticker + "#" + string(a.Kind) + "#" + a.ID
}

// ChangeLedger adds (or overwrites) and removes adjustments, keyed by
// ticker, date, kind and id; an invalid adjustment is refused.
func (h *History) ChangeLedger(_ context.Context, add, remove []marketdata.Adjustment) error {
	for _, a := range add {
		if err := marketdata.ValidateAdjustment(a); err != nil {
			return retry.Permanent(fmt.Errorf("ledger entry %+v: %w", a, err))
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	same := func(a, b marketdata.Adjustment) bool {
		return a.Ticker == b.Ticker && a.Date == b.Date && a.Kind == b.Kind && a.ID == b.ID
	}
	h.ledger = slices.DeleteFunc(h.ledger, func(a marketdata.Adjustment) bool {
		return slices.ContainsFunc(add, func(b marketdata.Adjustment) bool { return same(a, b) }) ||
			slices.ContainsFunc(remove, func(b marketdata.Adjustment) bool { return same(a, b) })
	})
	for _, a := range add {
		if !slices.ContainsFunc(h.ledger, func(b marketdata.Adjustment) bool { return same(a, b) }) {
			h.ledger = append(h.ledger, a)
		}
	}
	return nil
}

// Night returns a night's state.
func (h *History) Night(_ context.Context, date string) (coverage.Night, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.nights[date]
	return n, ok, nil
}

// AddNightPart records a day message's part done.
func (h *History) AddNightPart(_ context.Context, date, part string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.night(date)
	if !slices.Contains(n.Parts, part) {
		n.Parts = append(n.Parts, part)
		slices.Sort(n.Parts)
	}
	h.nights[date] = n
	return nil
}

// SetFallback records a night without a grouped answer.
func (h *History) SetFallback(_ context.Context, date string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.night(date)
	n.Fallback = true
	h.nights[date] = n
	return nil
}

// TakeTickerCall counts one per-ticker call unless bound are counted.
func (h *History) TakeTickerCall(_ context.Context, date string, bound int) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.night(date)
	if n.TickerCalls >= bound {
		return false, nil
	}
	n.TickerCalls++
	h.nights[date] = n
	return true, nil
}

// night is the night of date, stamped as written now (h.mu held).
func (h *History) night(date string) coverage.Night {
	n, ok := h.nights[date]
	if !ok {
		n = coverage.Night{Date: date}
	}
	n.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	return n
}

// Session returns a session's state.
func (h *History) Session(_ context.Context, date string) (coverage.Session, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[date]
	return s, ok, nil
}

// Sessions returns the states of the sessions from one date to another.
func (h *History) Sessions(_ context.Context, from, to string) (map[string]coverage.Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]coverage.Session{}
	for d, s := range h.sessions {
		if d >= from && d <= to {
			out[d] = s
		}
	}
	return out, nil
}

// PutSession writes a session's state.
func (h *History) PutSession(_ context.Context, s coverage.Session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.FetchedAt = s.FetchedAt.UTC().Truncate(time.Second) // stored to the second
	h.sessions[s.Date] = s
	return nil
}

// Market returns the market's state.
func (h *History) Market(context.Context) (coverage.Market, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.market, nil
}

// SetLedger records how far the ledger is complete, never back.
func (h *History) SetLedger(_ context.Context, from, through string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.market.LedgerThrough == "" || h.market.LedgerThrough <= through {
		h.market.LedgerFrom, h.market.LedgerThrough = from, through
	}
	return nil
}

// MovePlanFrom records the plan's first session, never back.
func (h *History) MovePlanFrom(_ context.Context, date string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.market.PlanFrom < date {
		h.market.PlanFrom = date
	}
	return nil
}

// AddClosure records a closure learnt, by its date.
func (h *History) AddClosure(_ context.Context, c marketdata.Closure) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cl := slices.DeleteFunc(slices.Clone(h.market.Closures), func(o marketdata.Closure) bool { return o.Date == c.Date })
	cl = append(cl, c)
	slices.SortFunc(cl, func(a, b marketdata.Closure) int { return strings.Compare(a.Date, b.Date) })
	h.market.Closures = cl
	return nil
}

// Claim takes, or renews, owner's lease on name until a time, unless
// another owner's runs at now.
func (h *History) Claim(_ context.Context, name, owner string, now, until time.Time) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.claims[name]; ok && c.owner != owner && !c.until.Before(now) {
		return false, nil
	}
	h.claims[name] = claim{owner: owner, until: until}
	return true, nil
}

// Release ends owner's lease on name, if it holds it.
func (h *History) Release(_ context.Context, name, owner string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claims[name].owner == owner {
		delete(h.claims, name)
	}
	return nil
}

// PutTicker writes a ticker's record.
func (h *History) PutTicker(_ context.Context, ticker string, rec coverage.Ticker) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tickers[ticker] = rec
	return nil
}

// Rows is the ticker-data table in memory: one row per ticker and trading
// day.
type Rows struct {
	mu   sync.Mutex
	rows map[string]pipeline.Row // ticker|asOf
	last map[string]string       // ticker → newest asOf
}

var _ pipeline.Rows = (*Rows)(nil)

// NewRows returns an empty table.
func NewRows() *Rows { return &Rows{rows: map[string]pipeline.Row{}, last: map[string]string{}} }

// PutRow writes r over the row of its ticker and day.
func (r *Rows) PutRow(_ context.Context, row pipeline.Row) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows[row.Ticker+"|"+row.AsOf] = row
	r.last[row.Ticker] = max(r.last[row.Ticker], row.AsOf)
	return nil
}

// HasRow reports whether ticker's complete row of date is stored.
func (r *Rows) HasRow(_ context.Context, ticker, date string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	row, ok := r.rows[ticker+"|"+date]
	return ok && !row.Partial, nil
}

// Latest returns ticker's newest row.
func (r *Rows) Latest(ticker string) (pipeline.Row, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	row, ok := r.rows[ticker+"|"+r.last[ticker]]
	return row, ok
}
