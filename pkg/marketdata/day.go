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
	// rejects, a price or volume outside the sane range (CheckPrices), a
	// ticker that appears twice, a row of another date.
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

// The range of a usable bar. Polygon's grouped answer carries every US
// stock and OTC row as its sources reported it, garbage included; a row
// outside this range is an error of the source, not a price, and is skipped.
// The bounds are far outside anything real: the highest-priced US share
// (BRK.A) has never reached 10^6 dollars, the smallest quoting increment of
// any US venue is 10^-6 dollars (sub-penny OTC stocks), and the whole US
// market trades about 10^10 to 10^11 shares a day. They also keep every
// number within what DynamoDB stores (magnitudes 10^-130 to 10^126): one
// finite, positive 1e200 would otherwise fail the write of its whole session.
const (
	MinPrice  = 1e-6
	MaxPrice  = 1e9
	MaxVolume = 1e13
)

// CheckPrices reports why a bar's prices cannot be used (an open, high, low
// or close that is not a finite price from MinPrice to MaxPrice, or a volume
// that is not a finite number from 0 to MaxVolume), or "" when they can.
func CheckPrices(b Bar) string {
	for _, p := range []struct {
		name string
		v    float64
	}{{"open", b.Open}, {"high", b.High}, {"low", b.Low}, {"close", b.Close}} {
		if math.IsNaN(p.v) || math.IsInf(p.v, 0) || p.v <= 0 {
			return fmt.Sprintf("%s %v is not a finite positive price", p.name, p.v)
		}
		if p.v < MinPrice || p.v > MaxPrice {
			return fmt.Sprintf("%s %v is outside the sane range of a price (%g to %g)", p.name, p.v, MinPrice, MaxPrice)
		}
	}
	if math.IsNaN(b.Volume) || math.IsInf(b.Volume, 0) || b.Volume < 0 {
		return fmt.Sprintf("volume %v is not a finite non-negative number", b.Volume)
	}
	if b.Volume > MaxVolume {
		return fmt.Sprintf("volume %v is outside the sane range of a day's volume (at most %g)", b.Volume, MaxVolume)
	}
	return ""
}
