// Package coverage is what the stored daily history holds of the market, in
// the words the nightly refresh (pkg/pipeline) and its store (pkg/bardb)
// share: the window of sessions the indicators need, ending on a night's
// trading day; each session's state (stored, not published, closed, before
// the plan's history); the market's (how far the ledger of adjustments
// reaches, where the plan's history begins, the closures learnt); each
// night's and each ticker's record; and which sessions of a window are still
// to be fetched. Pure: no I/O.
package coverage

import (
	"slices"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
)

// Status is what the store holds of one session.
type Status string

// The states of a session.
const (
	// Stored: the grouped answer carried the session; every valid row of it
	// is stored as a raw bar.
	Stored Status = "stored"
	// Empty: the grouped answer had no rows; the session may not be
	// published yet, and is asked again.
	Empty Status = "empty"
	// Closed: the session stayed empty, on two different nights, while a
	// later one was published: the exchange did not trade that day (a
	// closure the rule calendar does not know). Never asked again.
	Closed Status = "closed"
	// OutsidePlan: the plan's history does not reach the session (the
	// provider refused that timeframe). Never asked again.
	OutsidePlan Status = "outsidePlan"
)

// Session is what the store knows of one trading session.
type Session struct {
	Date   string
	Status Status
	// Rows is the number of rows of its last grouped answer; Bars the valid
	// ones stored.
	Rows, Bars int
	// FetchedAt is when its grouped answer was last fetched.
	FetchedAt time.Time
	// Final: it was fetched after the next session's close, so the
	// provider's revisions of it (volumes, VWAPs revised after the close)
	// are in. A session fetched on its own night is fetched once more.
	Final bool
	// Night is the night (its trading day) whose work last asked the
	// provider for the session: an empty answer is asked again on a later
	// night, not the same one, and a session is learnt closed only when it
	// is empty on two different nights while a later one is published.
	Night string
}

// Covered reports whether nothing more is to be fetched of the session to
// complete a window: stored, closed, or before the plan's history.
func (s Session) Covered() bool {
	switch s.Status {
	case Stored, Closed, OutsidePlan:
		return true
	}
	return false
}

// FinalAt reports whether a session fetched at fetchedAt is final: fetched
// at or after the close of the next session of cal.
func FinalAt(cal marketdata.Calendar, date string, fetchedAt time.Time) bool {
	next := cal.NextTradingDay(date)
	if next == "" {
		return false
	}
	close, err := cal.SessionClose(next)
	return err == nil && !fetchedAt.Before(close)
}

// Market is what the store knows of the market across sessions.
type Market struct {
	// LedgerFrom and LedgerThrough bound the execution dates over which the
	// ledger holds every split the provider lists ("" before the first
	// check).
	LedgerFrom, LedgerThrough string
	// PlanFrom is the first session the plan's history reaches: the session
	// after the newest one the provider refused as outside the plan's
	// timeframe ("" when none was refused).
	PlanFrom string
	// Closures are the sessions learnt closed, which the rule calendar does
	// not know.
	Closures []marketdata.Closure
}

// Calendar returns the NYSE calendar with the closures learnt. A closure
// the calendar refuses (a weekend, a date before its first year) is left
// out: it closes nothing the rules do not.
func (m Market) Calendar() marketdata.Calendar {
	cal := marketdata.NYSE()
	for _, c := range m.Closures {
		if next, err := cal.WithClosures(c); err == nil {
			cal = next
		}
	}
	return cal
}

// Closed reports whether date is a learnt closure.
func (m Market) Closed(date string) bool {
	return slices.ContainsFunc(m.Closures, func(c marketdata.Closure) bool { return c.Date == date })
}

// Night is what the store knows of one night's work, by its trading day.
// Its parts are written by the consumers of every message group at once, so
// each is merged into the stored night, never written whole.
type Night struct {
	Date string
	// Parts are the keys of the day messages done: a redelivered one costs
	// no call.
	Parts []string
	// Fallback: the plan does not include the grouped answer; every ticker
	// fetched its own bars that night.
	Fallback bool
	// TickerCalls counts the per-ticker calls of the night (held tickers
	// the grouped answers lack, or no grouped answer asked), bounded.
	TickerCalls int
	UpdatedAt   time.Time
}

// HasPart reports whether the day message part key is done.
func (n Night) HasPart(key string) bool { return slices.Contains(n.Parts, key) }

// Ticker is what the store knows of one ticker besides its bars and its
// adjustments.
type Ticker struct {
	// PerTicker is the last trading day whose bars a per-ticker call
	// fetched because the grouped answers lack the ticker ("" never).
	PerTicker string
	// NoDataAt is the last trading day a per-ticker call found no data of
	// it at all: an unknown symbol ("" when it found some).
	NoDataAt string
}

// Window returns the sessions the indicators read for trading day date: the
// last n trading days of cal up to and including date, ascending (fewer when
// the calendar begins later). Nil when date is not a trading day of cal.
func Window(cal marketdata.Calendar, date string, n int) []string {
	if n < 1 || !cal.IsTradingDay(date) {
		return nil
	}
	// n sessions span at most n × 7/5 calendar days plus the holidays and
	// closures in them: two weeks more are plenty.
	days := cal.TradingDays(marketdata.AddDays(date, -(n*7/5+20)), date)
	for len(days) < n {
		from := marketdata.AddDays(date, -(n*7/5 + 20 + 2*(n-len(days))))
		more := cal.TradingDays(from, date)
		if len(more) == len(days) {
			break // the calendar's first year
		}
		days = more
	}
	return days[max(0, len(days)-n):]
}

// Missing returns the sessions of window that are not covered (no state, or
// empty), latest first. Sessions before planFrom are out of the plan's reach
// and not missing.
func Missing(window []string, sessions map[string]Session, planFrom string) []string {
	var out []string
	for i := len(window) - 1; i >= 0; i-- {
		d := window[i]
		if planFrom != "" && d < planFrom {
			continue
		}
		if !sessions[d].Covered() {
			out = append(out, d)
		}
	}
	return out
}

// Stretch returns the sessions of window the indicators can read now: from
// the one after the newest session not covered (before planFrom counts as
// covered) through the end, ascending. It is the whole window when nothing is
// missing; bars of sessions before a missing one would leave a hole in the
// series.
func Stretch(window []string, sessions map[string]Session, planFrom string) []string {
	for i := len(window) - 1; i >= 0; i-- {
		d := window[i]
		if (planFrom == "" || d >= planFrom) && !sessions[d].Covered() {
			return window[i+1:]
		}
	}
	return window
}

// History is what the store holds of one ticker for a window: its printed
// bars (ascending), every adjustment of it in the ledger, and its record.
type History struct {
	Bars   []marketdata.Bar
	Ledger []marketdata.Adjustment
	Ticker Ticker
}
