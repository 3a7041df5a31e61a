package polygon

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
)

// This file is the pure half of the package: decoding one aggregates response
// body (GET /v2/aggs/ticker/{T}/range/1/day/{from}/{to}) and turning it into
// validated daily bars. It does no I/O, so the CLI, the sandbox and the
// client share it and the fuzz target guards it.

// Aggregates is one aggregates response body, field for field as on the wire.
type Aggregates struct {
	// Ticker is the symbol the answer is for.
	Ticker string `json:"ticker"`
	// QueryCount is the number of aggregates Polygon looked at.
	QueryCount int `json:"queryCount"`
	// ResultsCount is the number of bars in Results (0 for an unknown ticker
	// or one with no trades in the range).
	ResultsCount int `json:"resultsCount"`
	// Adjusted reports whether prices are split-adjusted.
	Adjusted bool `json:"adjusted"`
	// Results are the bars, oldest first when requested with sort=asc.
	// Absent or null when there are none.
	Results []Agg `json:"results"`
	// Status is "OK", or "DELAYED" when the plan serves delayed data.
	Status string `json:"status"`
	// RequestID identifies the request for Polygon's support.
	RequestID string `json:"request_id"`
	// NextURL, when set, is the next page of results (the key is not in it).
	NextURL string `json:"next_url"`
	// Error and Message carry the explanation of an error answer: Polygon
	// uses "error" for ERROR statuses and "message" for NOT_AUTHORIZED.
	Error   string `json:"error"`
	Message string `json:"message"`
}

// Agg is one bar of an aggregates response.
type Agg struct {
	// O, H, L, C are the open, high, low and close prices.
	O float64 `json:"o"`
	H float64 `json:"h"`
	L float64 `json:"l"`
	C float64 `json:"c"`
	// V is the volume; fractional when fractional shares traded.
	V float64 `json:"v"`
	// VW is the volume-weighted average price, when present.
	VW *float64 `json:"vw"`
	// T is the bar's start in Unix milliseconds: midnight America/New_York of
	// the trading date for daily bars.
	T int64 `json:"t"`
	// N is the number of trades, when present.
	N *int64 `json:"n"`
	// OTC is true for over-the-counter securities.
	OTC bool `json:"otc"`
}

// ErrAggregatesStatus is wrapped when a body decodes but its status is not
// one that carries data (OK, DELAYED): ERROR, NOT_AUTHORIZED, NOT_FOUND, ...
var ErrAggregatesStatus = errors.New("polygon aggregates status")

// aggsWire is the body as it may arrive: every bar field optional, so a bar
// without a close or a start time is an error instead of a silent zero, and
// `n` as a number of any form (it is informational and must not sink a
// response whose prices are fine).
type aggsWire struct {
	Ticker       string     `json:"ticker"`
	QueryCount   int        `json:"queryCount"`
	ResultsCount int        `json:"resultsCount"`
	Adjusted     bool       `json:"adjusted"`
	Results      []*aggWire `json:"results"`
	Status       *string    `json:"status"`
	RequestID    string     `json:"request_id"`
	NextURL      string     `json:"next_url"`
	Error        string     `json:"error"`
	Message      string     `json:"message"`
}

type aggWire struct {
	O   float64  `json:"o"`
	H   float64  `json:"h"`
	L   float64  `json:"l"`
	C   *float64 `json:"c"`
	V   float64  `json:"v"`
	VW  *float64 `json:"vw"`
	T   *int64   `json:"t"`
	N   *float64 `json:"n"`
	OTC bool     `json:"otc"`
}

// maxQuoted bounds the text quoted from a response in an error message.
const maxQuoted = 200

// DecodeAggregates decodes one aggregates response body. It accepts status
// OK and DELAYED, with results absent, null or empty; any other status is an
// error wrapping ErrAggregatesStatus that quotes the body's error or message.
// Invalid JSON, a null bar, or a bar without a close (c) or start (t) is an
// error naming the bar. It does not check the bars' order or prices: Bars does.
func DecodeAggregates(data []byte) (*Aggregates, error) {
	var w aggsWire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode polygon aggregates: %w", err)
	}
	if w.Status == nil {
		return nil, fmt.Errorf("decode polygon aggregates: %w missing", ErrAggregatesStatus)
	}
	switch status := *w.Status; status {
	case "OK", "DELAYED":
	default:
		text := w.Error
		if text == "" {
			text = w.Message
		}
		if text == "" {
			return nil, fmt.Errorf("%w %.40q", ErrAggregatesStatus, status)
		}
		return nil, fmt.Errorf("%w %.40q: %.*q", ErrAggregatesStatus, status, maxQuoted, text)
	}
	a := &Aggregates{
		Ticker: w.Ticker, QueryCount: w.QueryCount, ResultsCount: w.ResultsCount, Adjusted: w.Adjusted,
		Status: *w.Status, RequestID: w.RequestID, NextURL: w.NextURL, Error: w.Error, Message: w.Message,
	}
	if len(w.Results) > 0 {
		a.Results = make([]Agg, len(w.Results))
	}
	for i, r := range w.Results {
		switch {
		case r == nil:
			return nil, fmt.Errorf("decode polygon aggregates: result %d is null", i)
		case r.C == nil:
			return nil, fmt.Errorf("decode polygon aggregates: result %d has no close (c)", i)
		case r.T == nil:
			return nil, fmt.Errorf("decode polygon aggregates: result %d has no start time (t)", i)
		}
		a.Results[i] = Agg{O: r.O, H: r.H, L: r.L, C: *r.C, V: r.V, VW: r.VW, T: *r.T, N: tradeCount(r.N), OTC: r.OTC}
	}
	return a, nil
}

// tradeCount keeps n when it is a whole number that fits an int64.
func tradeCount(n *float64) *int64 {
	if n == nil || *n != math.Trunc(*n) || math.Abs(*n) >= 1<<63 {
		return nil
	}
	v := int64(*n)
	return &v
}

// Bars converts the results to daily bars, dated in New York, and validates
// them with marketdata.Validate (ascending, one per trading date, finite
// positive closes); the error names the offending bar. No results give an
// empty slice and no error: whether that is a failure is the caller's call.
func (a *Aggregates) Bars() ([]marketdata.Bar, error) {
	bars := make([]marketdata.Bar, len(a.Results))
	for i, r := range a.Results {
		bars[i] = marketdata.Bar{
			Date:  marketdata.TradingDate(r.T),
			Start: time.UnixMilli(r.T).UTC(),
			Open:  r.O, High: r.H, Low: r.L, Close: r.C, Volume: r.V,
		}
	}
	if err := marketdata.Validate(bars); err != nil {
		return nil, fmt.Errorf("polygon aggregates %.20q: %w", a.Ticker, err)
	}
	return bars, nil
}
