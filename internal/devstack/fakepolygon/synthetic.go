package fakepolygon

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
)

// SampleSource is the source recorded in ticker-data rows built from this
// server's synthetic bars (`zsm run` without a Polygon key), so nobody
// mistakes them for market data later.
const SampleSource = "sandbox"

// SampleLabel is the one line every user-facing output shows with synthetic
// prices.
const SampleLabel = "SAMPLE DATA: synthetic prices from the built-in sandbox, not market data"

// Bar is one daily aggregate as Polygon sends it.
type Bar struct {
	O  float64 `json:"o"`
	H  float64 `json:"h"`
	L  float64 `json:"l"`
	C  float64 `json:"c"`
	V  float64 `json:"v"`
	VW float64 `json:"vw"`
	// T is the bar's start in Unix milliseconds: midnight New York of its date.
	T int64 `json:"t"`
	N int64 `json:"n"`
}

// Aggregates is the body of an aggregates answer.
type Aggregates struct {
	Ticker       string `json:"ticker"`
	QueryCount   int    `json:"queryCount"`
	ResultsCount int    `json:"resultsCount"`
	Adjusted     bool   `json:"adjusted"`
	Results      []Bar  `json:"results,omitempty"`
	Status       string `json:"status"`
	RequestID    string `json:"request_id"`
	Count        int    `json:"count,omitempty"`
	NextURL      string `json:"next_url,omitempty"`
}

// Body is the JSON of an OK adjusted aggregates answer carrying bars, with
// next_url when nextURL is not empty. No bars gives resultsCount 0 and no
// results, as Polygon answers an unknown ticker.
func Body(ticker string, bars []Bar, nextURL string) []byte { return body(ticker, bars, nextURL, true) }

func body(ticker string, bars []Bar, nextURL string, adjusted bool) []byte {
	a := Aggregates{
		Ticker: ticker, QueryCount: len(bars), ResultsCount: len(bars), Adjusted: adjusted,
		Results: bars, Status: "OK", RequestID: "fakepolygon-" + ticker, Count: len(bars), NextURL: nextURL,
	}
	b, err := json.Marshal(a)
	if err != nil {
		panic("fakepolygon: " + err.Error()) // plain structs of finite numbers: cannot happen
	}
	return b
}

// SyntheticBars returns the bars the server serves for ticker from one date
// to another (YYYY-MM-DD, both included) in Polygon's wire form: Series, with
// each bar's t at midnight New York of its date.
func SyntheticBars(ticker, from, to string) ([]Bar, error) {
	series, err := Series(ticker, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]Bar, len(series))
	for i, b := range series {
		out[i] = wire(b)
	}
	return out, nil
}

func wire(b marketdata.Bar) Bar {
	return Bar{O: b.Open, H: b.High, L: b.Low, C: b.Close, V: b.Volume,
		VW: round2((b.High + b.Low + b.Close) / 3), T: b.Start.UnixMilli(), N: int64(b.Volume / 90)}
}

// levels are plausible prices of early 2024 for the sample portfolio, so
// the sample output looks like a stock table; other tickers get a level
// derived from their name.
var levels = map[string]float64{
	"AAPL": 185, "MSFT": 370, "GOOGL": 138, "AMZN": 149, "NVDA": 48, "META": 346, "TSLA": 248,
}

// anchor is the date the levels are set at.
var anchor = time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)

// Series returns the synthetic daily bars of ticker from one date to another
// (YYYY-MM-DD, both included): one bar per NYSE trading day (weekends and
// holidays skipped, as package marketdata knows them), starting at midnight
// New York. A bar is a pure function of the ticker and its date — no state,
// no seed, no range — so every run, every page of every range and every
// machine sees the same numbers, and one day of 10,000 tickers costs 10,000
// bar computations, not their histories.
//
// The close is a per-ticker level with a drift of about 25 % a year, two slow
// waves of per-ticker phase and daily noise of about 1.2 % (about 27 % annual
// volatility); open, high and low are drawn around it, so every bar is a
// consistent OHLC bar with positive prices, rounded to cents.
func Series(ticker, from, to string) ([]marketdata.Bar, error) {
	f, err := time.Parse(marketdata.DateLayout, from)
	if err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	t, err := time.Parse(marketdata.DateLayout, to)
	if err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	var bars []marketdata.Bar
	for d := f; !d.After(t); d = d.AddDate(0, 0, 1) {
		date := d.Format(marketdata.DateLayout)
		if marketdata.IsTradingDay(date) {
			bars = append(bars, barOn(ticker, d))
		}
	}
	return bars, nil
}

// barOn is the synthetic bar of ticker on the trading day d (a UTC midnight
// carrying the New York date).
func barOn(ticker string, d time.Time) marketdata.Bar {
	date := d.Format(marketdata.DateLayout)
	u := func(k string) float64 { return (float64(hash(ticker+"/"+date+"/"+k)%1_000_000) + 0.5) / 1_000_000 }
	// A standard normal draw from two uniforms (Box–Muller).
	z := func(k string) float64 { return math.Sqrt(-2*math.Log(u(k+"1"))) * math.Cos(2*math.Pi*u(k+"2")) }

	level, ok := levels[ticker]
	if !ok {
		level = 20 + float64(hash(ticker)%480)
	}
	phase1 := float64(hash(ticker+"/p1")%360) * math.Pi / 180
	phase2 := float64(hash(ticker+"/p2")%360) * math.Pi / 180
	k := d.Sub(anchor).Hours() / 24 // calendar days since the anchor
	logc := 0.0006*k + 0.12*math.Sin(2*math.Pi*k/180+phase1) + 0.05*math.Sin(2*math.Pi*k/47+phase2) + 0.012*z("c")
	c := level * math.Exp(logc)
	o := c * math.Exp(0.006*z("o"))
	h := math.Max(o, c) * (1 + 0.008*u("h"))
	l := math.Min(o, c) * (1 - 0.008*u("l"))
	ny := marketdata.NewYork()
	return marketdata.Bar{
		Date: date, Start: time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, ny),
		// Rounded to cents each on its own, so high and low are clamped to
		// keep the bar consistent (low ≤ open, close ≤ high).
		Open: round2(o), Close: round2(c),
		High:   math.Max(round2(h), math.Max(round2(o), round2(c))),
		Low:    math.Max(0.01, math.Min(round2(l), math.Min(round2(o), round2(c)))),
		Volume: math.Round(2e7 * (0.6 + 0.8*u("v"))),
	}
}

// parseWhen reads a path date, YYYY-MM-DD or Unix milliseconds (Polygon
// accepts both), as the New York date YYYY-MM-DD it falls on or, for an
// instant after midnight, the next date (a next_url cursor points at the
// start of a bar, so this keeps that bar).
func parseWhen(s string) (string, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		t := time.UnixMilli(ms).In(marketdata.NewYork())
		m := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
		if m.Before(t) {
			m = m.AddDate(0, 0, 1)
		}
		return m.Format(marketdata.DateLayout), nil
	}
	t, err := time.Parse(marketdata.DateLayout, s)
	if err != nil {
		return "", err
	}
	return t.Format(marketdata.DateLayout), nil
}

func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
