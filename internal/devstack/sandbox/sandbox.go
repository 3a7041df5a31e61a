// Package sandbox is the built-in market-data source of `zsm run` when no
// Polygon key is set: an HTTP server speaking the Polygon.io aggregates wire
// format (same path, same JSON) that serves SAMPLE DATA — deterministic
// synthetic daily bars, not market prices.
//
// Each ticker's series is a geometric random walk seeded by the ticker name,
// starting on the first trading day of 2024 at a plausible price level and
// stepping once per NYSE trading day (weekends and holidays skipped, as
// package marketdata knows them) up to the last trading day. A bar depends
// only on the ticker and its date, so every run, every range and every
// machine sees the same numbers.
//
// The server requires its own bearer token (Options.Key), so the Polygon
// client's authentication path is exercised exactly as against Polygon.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/symbol"
)

// Source is the name the pipeline records for rows built from this server.
const Source = "sandbox"

// Label is the one line every user-facing output shows with sandbox prices.
const Label = "SAMPLE DATA: synthetic prices from the built-in sandbox, not market data"

// Epoch is the first bar of every series: the first NYSE trading day of 2024.
const Epoch = "2024-01-02"

// Options configure a Server.
type Options struct {
	// Key is the bearer token the server accepts; empty generates a random one
	// (read it back from Server.Key).
	Key string
	// Now is the clock that decides the last trading day served (default
	// time.Now).
	Now func() time.Time
}

// Server is a running sandbox.
type Server struct {
	// URL is the base URL for POLYGON_BASE_URL (no trailing slash).
	URL string
	// Key is the bearer token to send (POLYGON_API_KEY).
	Key string

	now func() time.Time
	ln  net.Listener
	srv *http.Server
}

// Start serves the sandbox on addr (e.g. "127.0.0.1:0") until Close.
func Start(addr string, opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Key == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("sandbox key: %w", err)
		}
		opts.Key = "sandbox-" + hex.EncodeToString(b[:])
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox listen %s: %w", addr, err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), Key: opts.Key, now: opts.Now, ln: ln}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// wireBar is one result as Polygon sends it.
type wireBar struct {
	V  float64 `json:"v"`
	VW float64 `json:"vw"`
	O  float64 `json:"o"`
	C  float64 `json:"c"`
	H  float64 `json:"h"`
	L  float64 `json:"l"`
	T  int64   `json:"t"`
	N  int64   `json:"n"`
}

// wireAggs is an aggregates answer as Polygon sends it.
type wireAggs struct {
	Ticker       string    `json:"ticker"`
	QueryCount   int       `json:"queryCount"`
	ResultsCount int       `json:"resultsCount"`
	Adjusted     bool      `json:"adjusted"`
	Results      []wireBar `json:"results,omitempty"`
	Status       string    `json:"status"`
	RequestID    string    `json:"request_id"`
	Count        int       `json:"count,omitempty"`
}

// ServeHTTP answers GET /v2/aggs/ticker/{T}/range/1/day/{from}/{to} as
// Polygon does, including its error bodies for a missing or unknown key.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Sandbox", "sample data")
	auth := r.Header.Get("Authorization")
	switch {
	case auth == "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"status": "ERROR", "request_id": "sandbox", "error": "API Key was not provided"})
		return
	case auth != "Bearer "+s.Key:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"status": "ERROR", "request_id": "sandbox", "error": "Unknown API Key"})
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"status": "ERROR", "request_id": "sandbox", "error": "only GET is supported"})
		return
	}
	ticker, from, to, ok := parsePath(r.URL.Path)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"status": "NOT_FOUND", "request_id": "sandbox", "message": "the sandbox serves only /v2/aggs/ticker/{T}/range/1/day/{from}/{to}"})
		return
	}
	f, errF := time.Parse(marketdata.DateLayout, from)
	t, errT := time.Parse(marketdata.DateLayout, to)
	if errF != nil || errT != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"status": "ERROR", "request_id": "sandbox", "error": "Could not parse the time parameter: from and to must be YYYY-MM-DD"})
		return
	}
	out := wireAggs{Ticker: ticker, Adjusted: true, Status: "OK", RequestID: "sandbox-" + ticker}
	if norm, err := symbol.Normalize(ticker); err == nil && norm == ticker {
		bars := Bars(ticker, marketdata.LastTradingDay(s.now()))
		for _, b := range bars {
			if b.Date < f.Format(marketdata.DateLayout) || b.Date > t.Format(marketdata.DateLayout) {
				continue
			}
			out.Results = append(out.Results, wireBar{V: b.Volume, VW: round2((b.High + b.Low + b.Close) / 3),
				O: b.Open, C: b.Close, H: b.High, L: b.Low, T: b.Start.UnixMilli(), N: int64(b.Volume / 90)})
		}
	}
	// An invalid symbol gets Polygon's answer for an unknown ticker: 200 with
	// resultsCount 0 and no results.
	out.QueryCount, out.ResultsCount, out.Count = len(out.Results), len(out.Results), len(out.Results)
	writeJSON(w, http.StatusOK, out)
}

// parsePath splits /v2/aggs/ticker/{T}/range/1/day/{from}/{to}.
func parsePath(p string) (ticker, from, to string, ok bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) != 9 || parts[0] != "v2" || parts[1] != "aggs" || parts[2] != "ticker" ||
		parts[4] != "range" || parts[5] != "1" || parts[6] != "day" {
		return "", "", "", false
	}
	return parts[3], parts[7], parts[8], true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// levels are plausible starting prices (early 2024) for the sample
// portfolio, so the sample output looks like a stock table; other tickers
// start at a level derived from their name.
var levels = map[string]float64{
	"AAPL": 185, "MSFT": 370, "GOOGL": 138, "AMZN": 149, "NVDA": 48, "META": 346, "TSLA": 248,
}

var cache sync.Map // ticker -> []marketdata.Bar from Epoch through the newest date generated

// Bars returns the sandbox series of ticker from Epoch through the trading
// day through (YYYY-MM-DD), one bar per NYSE trading day. It is a pure
// function of its arguments.
func Bars(ticker, through string) []marketdata.Bar {
	var all []marketdata.Bar
	if v, ok := cache.Load(ticker); ok {
		all = v.([]marketdata.Bar)
	}
	if len(all) == 0 || all[len(all)-1].Date < through {
		all = walk(ticker, through)
		cache.Store(ticker, all)
	}
	n := len(all)
	for n > 0 && all[n-1].Date > through {
		n--
	}
	return all[:n:n]
}

// walk generates the series from Epoch through the given date.
func walk(ticker, through string) []marketdata.Bar {
	seed := fnv.New64a()
	_, _ = seed.Write([]byte(ticker))
	rng := mrand.New(mrand.NewPCG(seed.Sum64(), 0x5a5d))
	price, ok := levels[ticker]
	if !ok {
		price = 20 + float64(seed.Sum64()%480)
	}
	// About 25 % annual drift and 30 % annual volatility: a lively large cap.
	const mu, sigma = 0.0009, 0.019
	ny := marketdata.NewYork()
	start, _ := time.Parse(marketdata.DateLayout, Epoch)
	end, err := time.Parse(marketdata.DateLayout, through)
	if err != nil {
		return nil
	}
	var bars []marketdata.Bar
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		date := d.Format(marketdata.DateLayout)
		if !marketdata.IsTradingDay(date) {
			continue
		}
		open := price * math.Exp(0.004*rng.NormFloat64())
		price *= math.Exp(mu - sigma*sigma/2 + sigma*rng.NormFloat64())
		hi := math.Max(open, price) * (1 + 0.008*rng.Float64())
		lo := math.Min(open, price) * (1 - 0.008*rng.Float64())
		vol := math.Round(2e7 * (0.6 + 0.8*rng.Float64()))
		bars = append(bars, marketdata.Bar{
			Date: date, Start: time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, ny),
			Open: round2(open), High: round2(hi), Low: round2(lo), Close: round2(price), Volume: vol,
		})
	}
	return bars
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
