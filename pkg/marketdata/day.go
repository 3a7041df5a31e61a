package marketdata

import (
	"errors"
	"fmt"
	"math"
)

// Errors a market-data source wraps when it refuses access, so that the use
// cases can tell a failure of the whole run from a failure of one ticker
// without knowing the provider.
var (
	// ErrKeyRefused: the provider does not accept the API key (missing,
	// unknown, revoked). Nothing will work until the key is fixed.
	ErrKeyRefused = errors.New("market data: API key refused")
	// ErrNotEntitled: the key is valid but its plan does not include the
	// data asked for (Polygon's 403 NOT_AUTHORIZED).
	ErrNotEntitled = errors.New("market data: the plan does not include this data")
	// ErrOutsidePlan: the plan includes the data but not that far back
	// (Polygon's 403 "Your plan doesn't include this data timeframe"): the
	// dates asked for are out of reach, not the key or the plan as a whole.
	// It does not wrap ErrNotEntitled.
	ErrOutsidePlan = errors.New("market data: the plan's history does not reach that date")
)

// Day is one trading day of the whole market as the grouped-daily answer
// gives it: the valid bars by normalized ticker, and the rows that were
// skipped.
type Day struct {
	// Date is the trading date asked for, YYYY-MM-DD.
	Date string
	// Rows is the number of rows the answer carried (resultsCount): 0 means
	// the day is not published (yet), or was not a session.
	Rows int
	// Bars are the valid rows, by ticker, each dated Date.
	Bars map[string]Bar
	// Skipped are the rows left out, with why: a symbol the validator
	// rejects, a non-finite or non-positive price, a ticker that appears
	// twice, a row of another date.
	Skipped []SkippedRow
}

// Published reports whether the answer carried the day.
func (d Day) Published() bool { return d.Rows > 0 }

// SkippedRow is a row of a grouped answer that was not used.
type SkippedRow struct {
	// Ticker is the row's symbol as sent (untrusted: quote it in logs).
	Ticker string
	// Reason says why, in a few words.
	Reason string
}

// Split is a stock split as the provider lists it: SplitTo new shares for
// every SplitFrom old ones (a 4-for-1 split is from 1, to 4), effective at
// the open of ExecutionDate. Prices adjusted for it are divided by
// SplitTo/SplitFrom on the dates before. ID is the provider's id of the
// entry ("" when it gives none).
type Split struct {
	Ticker        string
	ExecutionDate string
	From, To      float64
	ID            string
}

// Ratio is the number of new shares per old share (4 for a 4-for-1 split).
func (s Split) Ratio() float64 { return s.To / s.From }

// ValidateSplit checks that a split can be used: a real date and finite
// positive share counts.
func ValidateSplit(s Split) error {
	if !isDate(s.ExecutionDate) {
		return fmt.Errorf("split of %q: execution date %q is not YYYY-MM-DD", s.Ticker, s.ExecutionDate)
	}
	for _, v := range []float64{s.From, s.To} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return fmt.Errorf("split of %q on %s: %v-for-%v is not a ratio of positive numbers", s.Ticker, s.ExecutionDate, s.To, s.From)
		}
	}
	return nil
}

// CheckPrices reports why a bar's prices cannot be used (a non-finite or
// non-positive open, high, low or close, or a negative or non-finite
// volume), or "" when they can.
func CheckPrices(b Bar) string {
	for _, p := range []struct {
		name string
		v    float64
	}{{"open", b.Open}, {"high", b.High}, {"low", b.Low}, {"close", b.Close}} {
		if math.IsNaN(p.v) || math.IsInf(p.v, 0) || p.v <= 0 {
			return fmt.Sprintf("%s %v is not a finite positive price", p.name, p.v)
		}
	}
	if math.IsNaN(b.Volume) || math.IsInf(b.Volume, 0) || b.Volume < 0 {
		return fmt.Sprintf("volume %v is not a finite non-negative number", b.Volume)
	}
	return ""
}
