package fakepolygon_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/polygon"
)

// now is a fixed instant: Friday 2026-11-27 22:00 New York, after the close
// of the half-day following Thanksgiving (2026-11-26, a holiday).
var now = time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)

func sampleServer(t testing.TB) *fakepolygon.Server {
	t.Helper()
	return fakepolygon.New(t, fakepolygon.Options{Key: "test-key", Now: func() time.Time { return now }})
}

func TestServesValidDeterministicBarsOnTradingDays(t *testing.T) {
	s := sampleServer(t)
	path := "/v2/aggs/ticker/AAPL/range/1/day/2025-10-24/2026-11-28?adjusted=true&sort=asc&limit=50000"
	resp, body, err := get(t, s, path, "test-key")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%v %v: %s", resp, err, body)
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
	// The last bar is the last trading day by the server's clock, never later.
	if last := bars[len(bars)-1].Date; last != "2026-11-27" {
		t.Errorf("last bar %s, want 2026-11-27", last)
	}
	if first := bars[0].Date; first != "2025-10-24" {
		t.Errorf("first bar %s, want 2025-10-24", first)
	}
	if len(bars) < 250 {
		t.Errorf("%d bars over 400 days, want ≥ 250", len(bars))
	}
	have := map[string]bool{}
	for _, b := range bars {
		have[b.Date] = true
		if !(b.Low <= b.Open && b.Low <= b.Close && b.High >= b.Open && b.High >= b.Close && b.Low > 0) {
			t.Errorf("bar %s inconsistent: %+v", b.Date, b)
		}
	}
	for _, d := range []string{"2025-11-27" /* Thanksgiving */, "2025-12-25", "2026-01-01", "2026-07-03" /* observed */, "2026-11-26", "2025-11-29" /* Saturday */, "2026-11-22" /* Sunday */} {
		if have[d] {
			t.Errorf("bar on %s, a weekend or NYSE holiday", d)
		}
	}
	// Same request twice, and a second server: byte-identical answers.
	_, again, _ := get(t, s, path, "test-key")
	_, other, _ := get(t, sampleServer(t), path, "test-key")
	if string(again) != string(body) || string(other) != string(body) {
		t.Error("the same request is answered differently")
	}
}

func TestSeriesIsAFunctionOfTickerAndDate(t *testing.T) {
	a, err := fakepolygon.Series("AAPL", "2024-01-01", "2026-11-27")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := fakepolygon.Series("MSFT", "2024-01-01", "2026-11-27")
	if len(a) < 700 || a[0].Date != "2024-01-02" || a[len(a)-1].Date != "2026-11-27" {
		t.Fatalf("%d bars %s..%s", len(a), a[0].Date, a[len(a)-1].Date)
	}
	if a[len(a)-1].Close == m[len(m)-1].Close {
		t.Error("AAPL and MSFT end at the same price")
	}
	short, _ := fakepolygon.Series("AAPL", "2025-06-02", "2025-06-30")
	i := 0
	for a[i].Date != short[0].Date {
		i++
	}
	for j, b := range short {
		if a[i+j] != b {
			t.Fatalf("bar %s differs between ranges: %+v vs %+v", b.Date, a[i+j], b)
		}
	}
	if err := marketdata.Validate(a); err != nil {
		t.Fatal(err)
	}
	// Plausible as a stock: daily moves mostly within a few percent.
	big := 0
	for i := 1; i < len(a); i++ {
		if r := a[i].Close / a[i-1].Close; r > 1.06 || r < 0.94 {
			big++
		}
	}
	if big > len(a)/50 {
		t.Errorf("%d of %d daily moves beyond 6 %%", big, len(a))
	}
}

func TestSampleErrorsAnswerLikePolygon(t *testing.T) {
	s := sampleServer(t)
	ok := "/v2/aggs/ticker/MSFT/range/1/day/2026-01-01/2026-02-01"
	tests := []struct {
		name, path, key string
		status          int
		contains        string
	}{
		{"no key", ok, "", 400, "API Key was not provided"},
		{"wrong key", ok, "nope", 401, "Unknown API Key"},
		{"other path", "/v3/reference/tickers", "test-key", 404, "NOT_FOUND"},
		{"bad date", "/v2/aggs/ticker/MSFT/range/1/day/yesterday/2026-02-01", "test-key", 400, "YYYY-MM-DD"},
		{"invalid symbol has no data", "/v2/aggs/ticker/aapl%3B/range/1/day/2026-01-01/2026-02-01", "test-key", 200, `"resultsCount":0`},
		{"future range has no data", "/v2/aggs/ticker/MSFT/range/1/day/2027-01-01/2027-02-01", "test-key", 200, `"resultsCount":0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := get(t, s, tt.path, tt.key)
			if err != nil || resp.StatusCode != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Errorf("%v %s %v; want %d containing %q", resp.Status, body, err, tt.status, tt.contains)
			}
		})
	}
}

// FuzzServe requests arbitrary paths: every 200 answer must decode as
// Polygon aggregates whose bars validate; anything else is one of Polygon's
// error statuses. Never a panic.
func FuzzServe(f *testing.F) {
	for _, p := range []string{
		"/v2/aggs/ticker/AAPL/range/1/day/2025-01-01/2026-11-27",
		"/v2/aggs/ticker/BRK.B/range/1/day/2026-11-27/2026-11-27",
		"/v2/aggs/ticker/AAPL/range/1/day/2026-12-01/2026-01-01",
		"/v2/aggs/ticker//range/1/day/2025-01-01/2026-11-27",
		"/v2/aggs/ticker/AAPL/range/1/day/1700000000000/1764000000000",
		"/v2/aggs/ticker/%E2%80%AE/range/1/day/2025-01-01/2026-11-27",
		"/",
	} {
		f.Add(p)
	}
	srv := sampleServer(f)
	f.Fuzz(func(t *testing.T, path string) {
		req, err := http.NewRequest(http.MethodGet, "http://fakepolygon"+path, nil)
		if err != nil {
			return // not a URL a client could send
		}
		req.Header.Set("Authorization", "Bearer test-key")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			aggs, err := polygon.DecodeAggregates(w.Body.Bytes())
			if err != nil {
				t.Fatalf("200 that does not decode: %v: %s", err, w.Body.String())
			}
			if aggs.ResultsCount > 0 {
				if _, err := aggs.Bars(); err != nil {
					t.Fatalf("bars do not validate: %v", err)
				}
			}
		case http.StatusBadRequest, http.StatusNotFound:
		default:
			t.Fatalf("status %d for %q", w.Code, path)
		}
	})
}
