package analysis

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// Data status of a position's market data.
const (
	// DataOK: a ticker-data row of the last trading day exists.
	DataOK = "ok"
	// DataStale: the newest row is older than the last trading day.
	DataStale = "stale"
	// DataMissing: no usable ticker-data row exists for the symbol.
	DataMissing = "missing"
)

// MaxPortfolioNameLen caps a portfolio name (in characters).
const MaxPortfolioNameLen = 100

// MaxPositions caps the positions of one analysis: a portfolio with more is
// analyzed with its MaxPositions largest (by market value), and the others
// are counted as omitted (Input.Omitted).
const MaxPositions = 500

// ErrInvalidName is wrapped by every rejected portfolio name.
var ErrInvalidName = errors.New("invalid portfolio name")

// ValidatePortfolioName trims spaces and checks that name is 1–100
// characters of valid UTF-8 with no control characters. The name never
// reaches the model; the check keeps newlines and other control characters
// out of logs and keys.
func ValidatePortfolioName(name string) (string, error) {
	n := strings.TrimSpace(name)
	switch {
	case n == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	case !utf8.ValidString(n):
		return "", fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	case utf8.RuneCountInString(n) > MaxPortfolioNameLen:
		return "", fmt.Errorf("%w %.40q…: longer than %d characters", ErrInvalidName, n, MaxPortfolioNameLen)
	}
	for _, r := range n {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "", fmt.Errorf("%w %q: control character %U", ErrInvalidName, n, r)
		}
	}
	return n, nil
}

// ErrBadDataDate is wrapped by CheckDataDate's errors.
var ErrBadDataDate = errors.New("not a valid data date")

// CheckDataDate validates the trading date of a market-data row read from a
// table before it reaches a prompt or a stored item: exactly YYYY-MM-DD, an
// NYSE trading day, and not after lastTradingDay (data from the future is
// not data).
func CheckDataDate(asOf, lastTradingDay string) error {
	if len(asOf) != len(time.DateOnly) {
		return fmt.Errorf("%w: %.20q is not YYYY-MM-DD", ErrBadDataDate, asOf)
	}
	if _, err := time.Parse(time.DateOnly, asOf); err != nil {
		return fmt.Errorf("%w: %.20q is not YYYY-MM-DD", ErrBadDataDate, asOf)
	}
	if !marketdata.IsTradingDay(asOf) {
		return fmt.Errorf("%w: %s is not an NYSE trading day", ErrBadDataDate, asOf)
	}
	if asOf > lastTradingDay {
		return fmt.Errorf("%w: %s is after the last trading day %s", ErrBadDataDate, asOf, lastTradingDay)
	}
	return nil
}

// Position is one holding with the market data gathered for it. Symbol is a
// normalized symbol (package symbol).
type Position struct {
	Symbol   string
	Quantity *float64
	// CostBasis is the position's total cost (all lots), not a per-share
	// price: the average cost is CostBasis ÷ Quantity.
	CostBasis *float64
	// Market is the newest ticker-data snapshot of the symbol (its price,
	// its trading date and every indicator of indicators.Fields); nil when
	// there is none (DataMissing).
	Market *indicators.Snapshot
	// Status is DataOK, DataStale or DataMissing.
	Status string
	// StaleSessions is how many trading sessions the snapshot lies before
	// the last trading day (0 unless Status is DataStale).
	StaleSessions int
}

// Price is the last close, nil without market data.
func (p Position) Price() *float64 {
	if p.Market == nil {
		return nil
	}
	v := p.Market.Price
	return &v
}

// AsOf is the trading date of the market data, "" without any.
func (p Position) AsOf() string {
	if p.Market == nil {
		return ""
	}
	return p.Market.AsOf
}

// Excluded is a symbol that failed validation and was left out of the
// analysis; it is reported in the stored result and the logs, never sent to
// the model.
type Excluded struct {
	Value  string
	Reason string
}

// Input is everything one analysis is built from.
type Input struct {
	// Portfolio is the validated portfolio name. It is stored with the
	// analysis and never sent to the model.
	Portfolio string
	// LastTradingDay is the trading date the data is expected to be of
	// (marketdata.LastTradingDay of the run), YYYY-MM-DD.
	LastTradingDay string
	// Positions, one per symbol, sorted by symbol.
	Positions []Position
	// Excluded symbols (invalid), for reporting only.
	Excluded []Excluded
	// Omitted counts the positions beyond MaxPositions left out of the
	// analysis (the smallest by market value); OmittedValue is their market
	// value where known.
	Omitted      int
	OmittedValue *float64
}

// Symbols returns the symbols of the positions, in order.
func (in Input) Symbols() []string {
	out := make([]string, len(in.Positions))
	for i, p := range in.Positions {
		out[i] = p.Symbol
	}
	return out
}

// Flagged returns the symbols whose data is missing and those whose data is stale.
func (in Input) Flagged() (missing, stale []string) {
	missing, stale = []string{}, []string{}
	for _, p := range in.Positions {
		switch p.Status {
		case DataMissing:
			missing = append(missing, p.Symbol)
		case DataStale:
			stale = append(stale, p.Symbol)
		}
	}
	return missing, stale
}

// DataAsOf is the trading date of the market data used: the newest AsOf
// among the positions, or LastTradingDay when no position has data.
func (in Input) DataAsOf() string {
	best := ""
	for _, p := range in.Positions {
		if a := p.AsOf(); a > best {
			best = a
		}
	}
	if best == "" {
		return in.LastTradingDay
	}
	return best
}
