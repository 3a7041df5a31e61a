package sandbox_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/internal/devstack/sandbox"
)

// now is a fixed instant: Friday 2026-11-27 22:00 New York, after the close
// of the half-day following Thanksgiving (2026-11-26, a holiday).
var now = time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)

func start(t *testing.T) *sandbox.Server {
	t.Helper()
	s, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Key: "test-key", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func get(t *testing.T, url, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestServesValidDeterministicBars(t *testing.T) {
	s := start(t)
	url := s.URL + "/v2/aggs/ticker/AAPL/range/1/day/2025-10-24/2026-11-28?adjusted=true&sort=asc&limit=50000"
	status, body := get(t, url, "Bearer test-key")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	aggs, err := polygon.DecodeAggregates(body)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	bars, err := aggs.Bars()
	if err != nil {
		t.Fatalf("bars: %v", err)
	}
	if err := marketdata.Validate(bars); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if aggs.Ticker != "AAPL" || aggs.Status != "OK" || aggs.ResultsCount != len(bars) {
		t.Errorf("ticker %q status %q resultsCount %d bars %d", aggs.Ticker, aggs.Status, aggs.ResultsCount, len(bars))
	}
	// The last bar is the last trading day, never a later date.
	if last := bars[len(bars)-1].Date; last != "2026-11-27" {
		t.Errorf("last bar %s, want 2026-11-27", last)
	}
	if first := bars[0].Date; first != "2025-10-24" {
		t.Errorf("first bar %s, want 2025-10-24", first)
	}
	// Enough history for RSI(14) and MA50 over a 400-day request.
	if len(bars) < 250 {
		t.Errorf("%d bars over 400 days, want ≥ 250", len(bars))
	}
	for _, b := range bars {
		if !marketdata.IsTradingDay(b.Date) {
			t.Errorf("bar on %s, not a trading day", b.Date)
		}
		if !(b.Low <= b.Open && b.Low <= b.Close && b.High >= b.Open && b.High >= b.Close && b.Low > 0) {
			t.Errorf("bar %s inconsistent: %+v", b.Date, b)
		}
	}
	// Known non-trading days inside the range are absent.
	have := map[string]bool{}
	for _, b := range bars {
		have[b.Date] = true
	}
	for _, d := range []string{"2025-11-27" /* Thanksgiving */, "2025-12-25", "2026-01-01", "2026-07-03" /* observed */, "2026-11-26", "2025-11-29" /* Saturday */, "2026-11-22" /* Sunday */} {
		if have[d] {
			t.Errorf("bar on %s, a weekend or NYSE holiday", d)
		}
	}

	// Same request twice, and a second server: byte-identical answers.
	_, again := get(t, url, "Bearer test-key")
	if string(again) != string(body) {
		t.Error("second answer differs from the first")
	}
	_, other := get(t, start(t).URL+strings.TrimPrefix(url, s.URL), "Bearer test-key")
	if string(other) != string(body) {
		t.Error("another server answers differently")
	}
}

func TestSeriesHasHistoryAndDiffersPerTicker(t *testing.T) {
	through := marketdata.LastTradingDay(now)
	a := sandbox.Bars("AAPL", through)
	m := sandbox.Bars("MSFT", through)
	if len(a) < 300 {
		t.Fatalf("%d bars, want ≥ 300", len(a))
	}
	if a[0].Date != sandbox.Epoch || a[len(a)-1].Date != through {
		t.Errorf("series %s..%s, want %s..%s", a[0].Date, a[len(a)-1].Date, sandbox.Epoch, through)
	}
	if a[len(a)-1].Close == m[len(m)-1].Close {
		t.Error("AAPL and MSFT end at the same price")
	}
	// A prefix of a longer series equals the shorter series: the bar of a
	// date does not depend on when it is asked for.
	short := sandbox.Bars("AAPL", "2025-06-30")
	for i, b := range short {
		if a[i] != b {
			t.Fatalf("bar %d differs between ranges: %+v vs %+v", i, a[i], b)
		}
	}
	if err := marketdata.Validate(a); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	s := start(t)
	ok := "/v2/aggs/ticker/MSFT/range/1/day/2026-01-01/2026-02-01"
	tests := []struct {
		name, path, auth string
		status           int
		contains         string
	}{
		{"no key", ok, "", 400, "API Key was not provided"},
		{"wrong key", ok, "Bearer nope", 401, "Unknown API Key"},
		{"other path", "/v3/reference/tickers", "Bearer test-key", 404, "NOT_FOUND"},
		{"bad date", "/v2/aggs/ticker/MSFT/range/1/day/yesterday/2026-02-01", "Bearer test-key", 400, "YYYY-MM-DD"},
		{"invalid symbol has no data", "/v2/aggs/ticker/aapl%3B/range/1/day/2026-01-01/2026-02-01", "Bearer test-key", 200, `"resultsCount":0`},
		{"future range has no data", "/v2/aggs/ticker/MSFT/range/1/day/2027-01-01/2027-02-01", "Bearer test-key", 200, `"resultsCount":0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, s.URL+tt.path, tt.auth)
			if status != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Errorf("status %d body %s; want %d containing %q", status, body, tt.status, tt.contains)
			}
		})
	}
	// An unknown ticker decodes as Polygon's "no data" answer.
	_, body := get(t, s.URL+"/v2/aggs/ticker/MSFT/range/1/day/2027-01-01/2027-02-01", "Bearer test-key")
	aggs, err := polygon.DecodeAggregates(body)
	if err != nil {
		t.Fatal(err)
	}
	if aggs.ResultsCount != 0 || len(aggs.Results) != 0 {
		t.Errorf("future range: %+v", aggs)
	}
}

func TestGeneratedKey(t *testing.T) {
	s, err := sandbox.Start("127.0.0.1:0", sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Key, "sandbox-") || len(s.Key) < 20 {
		t.Errorf("generated key %q", s.Key)
	}
	if status, _ := get(t, s.URL+"/v2/aggs/ticker/MSFT/range/1/day/2026-01-01/2026-02-01", "Bearer "+s.Key); status != 200 {
		t.Errorf("own key refused: %d", status)
	}
}
