// Package analysis is the pure core of the portfolio analysis: the prompt
// given to the language model (a versioned template plus one JSON data
// block), the response schema built per request, the parsing and validation
// of the model's answer, the repair message, and the deterministic rules
// analyst used as a fallback. It imports no AWS or HTTP code.
package analysis

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Data status of a position's market data.
const (
	// DataOK: a ticker-data row of the last trading day exists.
	DataOK = "ok"
	// DataStale: the newest row is older than the last trading day.
	DataStale = "stale"
	// DataMissing: no ticker-data row exists for the symbol.
	DataMissing = "missing"
)

// MaxPortfolioNameLen caps a portfolio name (in characters).
const MaxPortfolioNameLen = 100

// MaxPositions caps the number of symbols of one analysis. Portfolios of
// more than BatchSize positions are analyzed in ticker batches plus one
// portfolio-level call (BuildPrompt), so that every answer fits its
// completion cap.
const MaxPositions = 500

// BatchSize is the most positions one model call rates.
const BatchSize = 50

// ErrInvalidName is wrapped by every rejected portfolio name.
var ErrInvalidName = errors.New("invalid portfolio name")

// ValidatePortfolioName trims spaces and checks that name is 1–100
// characters of valid UTF-8 with no control characters. The name is user
// controlled: it only ever reaches the model inside the JSON data block, and
// this check keeps newlines and other control characters out of logs too.
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

// Position is one holding with the market data gathered for it. Symbol is a
// normalized symbol (package symbol); the pointers are nil when unknown.
type Position struct {
	Symbol   string
	Quantity *float64
	// CostBasis is the position's total cost (all lots), not a per-share
	// price: the average cost is CostBasis ÷ Quantity.
	CostBasis *float64
	// The market numbers come from the newest ticker-data row (package
	// indicators defines them): the last close, RSI(14), the 50- and
	// 200-day means, the 52-week high and low, the 1-, 3- and 12-month
	// returns and the 20-day annualized volatility in percent, and ATR(14).
	Price, RSI, MA50, MA200                *float64
	High52W, Low52W                        *float64
	Return1MPct, Return3MPct, Return12MPct *float64
	Volatility20DPct, ATR                  *float64
	// AsOf is the trading date of that row, "" when missing.
	AsOf string
	// Status is DataOK, DataStale or DataMissing.
	Status string
	// StaleSessions is how many trading sessions AsOf lies before the last
	// trading day (0 unless Status is DataStale).
	StaleSessions int
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
	// Portfolio is the validated portfolio name.
	Portfolio string
	// LastTradingDay is the trading date the data is expected to be of
	// (marketdata.LastTradingDay of the run), YYYY-MM-DD.
	LastTradingDay string
	// Positions, one per symbol, sorted by symbol.
	Positions []Position
	// Excluded symbols (invalid), for reporting only.
	Excluded []Excluded
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
		if p.AsOf > best {
			best = p.AsOf
		}
	}
	if best == "" {
		return in.LastTradingDay
	}
	return best
}
