package polygon

import (
	"encoding/json"
	"fmt"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/symbol"
)

// This file decodes one grouped-daily answer
// (GET /v2/aggs/grouped/locale/us/market/stocks/{date}) and turns it into one
// day of validated bars. Pure: no I/O; the fuzz target guards it.

// Grouped is one grouped-daily answer, field for field as on the wire.
type Grouped struct {
	QueryCount   int    `json:"queryCount"`
	ResultsCount int    `json:"resultsCount"`
	Adjusted     bool   `json:"adjusted"`
	Status       string `json:"status"`
	RequestID    string `json:"request_id"`
	// Results are the rows; nil (absent or null) when resultsCount is 0. A
	// row the decoder could not read at all is nil.
	Results []*GroupedRow `json:"results"`
}

// GroupedRow is one ticker's bar of the day. Every field is optional on the
// wire, so a row without a close or a time is skipped, not read as zero.
type GroupedRow struct {
	// T is the ticker ("T", capital), as Polygon spells it.
	T *string  `json:"T"`
	O *float64 `json:"o"`
	H *float64 `json:"h"`
	L *float64 `json:"l"`
	C *float64 `json:"c"`
	V *float64 `json:"v"`
	// Time is "t": Unix milliseconds of the END of the day's window, 16:00
	// New York (a per-ticker bar's t is its start, midnight New York).
	Time *int64   `json:"t"`
	VW   *float64 `json:"vw"`
	N    *float64 `json:"n"`
	OTC  bool     `json:"otc"`
}

// groupedWire lets rows that are not objects (null, a number) through as
// nil rows instead of failing the whole body.
type groupedWire struct {
	Grouped
	Results []json.RawMessage `json:"results"`
	Error   string            `json:"error"`
	Message string            `json:"message"`
}

// DecodeGrouped decodes one grouped-daily body. It accepts status OK and
// DELAYED with results absent, null or empty; any other status is an error
// wrapping ErrAggregatesStatus. Invalid JSON is an error; a row that cannot
// be read is kept as nil (and skipped by Day).
func DecodeGrouped(data []byte) (*Grouped, error) {
	var w groupedWire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode polygon grouped daily: %w", err)
	}
	switch w.Status {
	case "OK", "DELAYED":
	case "":
		return nil, fmt.Errorf("decode polygon grouped daily: %w missing", ErrAggregatesStatus)
	default:
		text := w.Error
		if text == "" {
			text = w.Message
		}
		return nil, fmt.Errorf("%w %.40q: %.*q", ErrAggregatesStatus, w.Status, maxQuoted, text)
	}
	g := w.Grouped
	g.Results = make([]*GroupedRow, len(w.Results))
	for i, raw := range w.Results {
		var r GroupedRow
		if json.Unmarshal(raw, &r) == nil && string(raw) != "null" {
			g.Results[i] = &r
		}
	}
	return &g, nil
}

// Day turns the rows into the market's day: each valid row becomes a bar
// dated in New York from its t, which must be date; the others are listed in
// Skipped with why. Every row of a ticker that appears more than once is
// skipped: nothing says which one is right.
func (g *Grouped) Day(date string) marketdata.Day {
	d := marketdata.Day{Date: date, Rows: len(g.Results), Bars: make(map[string]marketdata.Bar, len(g.Results))}
	seen := make(map[string]int, len(g.Results))
	for _, r := range g.Results {
		if r != nil && r.T != nil {
			seen[*r.T]++
		}
	}
	start, _ := marketdata.SessionStart(date) // date was checked by the caller
	for _, r := range g.Results {
		ticker, reason := r.check(date, seen)
		if reason != "" {
			d.Skipped = append(d.Skipped, marketdata.SkippedRow{Ticker: ticker, Reason: reason})
			continue
		}
		d.Bars[ticker] = marketdata.Bar{Date: date, Start: start.UTC(), Open: *r.O, High: *r.H, Low: *r.L, Close: *r.C, Volume: *r.V}
	}
	return d
}

// check returns the row's ticker and why it cannot be used ("" if it can).
func (r *GroupedRow) check(date string, seen map[string]int) (string, string) {
	if r == nil {
		return "", "not a row object"
	}
	if r.T == nil || *r.T == "" {
		return "", "no ticker (T)"
	}
	t := *r.T
	n, err := symbol.Normalize(t)
	switch {
	case err != nil:
		return t, "symbol rejected: " + symbol.Reason(err)
	case n != t:
		// Polygon's own spelling is the normalized one; anything else
		// (preferred shares such as "KIMpL") is not a symbol we hold.
		return t, fmt.Sprintf("not a normalized symbol (would be %s)", n)
	case seen[t] > 1:
		return t, fmt.Sprintf("ticker appears %d times", seen[t])
	case r.Time == nil:
		return t, "no time (t)"
	}
	if got := marketdata.TradingDate(*r.Time); got != date {
		return t, fmt.Sprintf("row of %s (t %d), not %s", got, *r.Time, date)
	}
	if r.O == nil || r.H == nil || r.L == nil || r.C == nil || r.V == nil {
		return t, "missing o, h, l, c or v"
	}
	b := marketdata.Bar{Open: *r.O, High: *r.H, Low: *r.L, Close: *r.C, Volume: *r.V}
	if reason := marketdata.CheckPrices(b); reason != "" {
		return t, reason
	}
	return t, ""
}
