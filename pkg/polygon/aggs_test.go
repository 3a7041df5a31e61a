package polygon_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/polygon"
)

func aggsSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "aggs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeAggregatesOK(t *testing.T) {
	a, err := polygon.DecodeAggregates(aggsSample(t, "ok.json"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Ticker != "AAPL" || a.Status != "OK" || a.ResultsCount != 5 || a.QueryCount != 5 || !a.Adjusted ||
		a.RequestID != "6a7e466379af0a71039d60cc78e72282" || a.NextURL != "" || len(a.Results) != 5 {
		t.Fatalf("header fields: %+v", a)
	}
	r := a.Results[2]
	if r.O != 240.1 || r.H != 240.66 || r.L != 236.2 || r.C != 237.49 || r.V != 50123456 || r.T != 1772773200000 || r.OTC {
		t.Errorf("result 2: %+v", r)
	}
	if r.VW == nil || *r.VW != 238.1276 || r.N == nil || *r.N != 601234 {
		t.Errorf("result 2 optional fields: vw %v n %v", r.VW, r.N)
	}

	bars, err := a.Bars()
	if err != nil {
		t.Fatal(err)
	}
	// The samples' t values straddle the 2026-03-08 switch to daylight time.
	wantDates := []string{"2026-03-04", "2026-03-05", "2026-03-06", "2026-03-09", "2026-03-10"}
	for i, b := range bars {
		if b.Date != wantDates[i] {
			t.Errorf("bar %d date %s, want %s", i, b.Date, wantDates[i])
		}
	}
	if got := bars[3]; got.Close != 239.62 || got.Open != 237.8 || got.High != 240.05 || got.Low != 237.1 || got.Volume != 45678901 ||
		!got.Start.Equal(time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("bar 3: %+v", got)
	}
	if bars[2].Start != time.Date(2026, 3, 6, 5, 0, 0, 0, time.UTC) {
		t.Errorf("bar 2 start %v, want 2026-03-06T05:00:00Z (midnight EST)", bars[2].Start)
	}
}

func TestDecodeAggregatesSamples(t *testing.T) {
	tests := []struct {
		file       string
		status     string
		wantBars   int
		wantDates  []string
		wantNext   bool
		wantErr    string // substring of the decode error; empty means success
		wantStatus bool   // the error wraps ErrAggregatesStatus
	}{
		{file: "delayed.json", status: "DELAYED", wantBars: 2, wantDates: []string{"2026-10-30", "2026-11-02"}},
		{file: "results_null.json", status: "OK"},
		{file: "results_absent.json", status: "OK"},
		{file: "fractional_v.json", status: "OK", wantBars: 2, wantDates: []string{"2026-11-24", "2026-11-25"}},
		{file: "next_url.json", status: "OK", wantBars: 2, wantNext: true},
		{file: "error_400_missing_key.json", wantErr: `"ERROR": "API Key was not provided"`, wantStatus: true},
		{file: "error_401_unknown_key.json", wantErr: `"ERROR": "Unknown API Key"`, wantStatus: true},
		{file: "error_403_not_authorized.json", wantErr: `"NOT_AUTHORIZED": "You are not entitled to this data.`, wantStatus: true},
		{file: "error_429_rate_limited.json", wantErr: `"ERROR": "You've exceeded the maximum requests per minute`, wantStatus: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			a, err := polygon.DecodeAggregates(aggsSample(t, tt.file))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("decoded %+v, want error %q", a, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if errors.Is(err, polygon.ErrAggregatesStatus) != tt.wantStatus {
					t.Errorf("errors.Is(ErrAggregatesStatus) = %v, want %v", !tt.wantStatus, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != tt.status || (a.NextURL != "") != tt.wantNext {
				t.Errorf("status %q next_url %q", a.Status, a.NextURL)
			}
			bars, err := a.Bars()
			if err != nil {
				t.Fatal(err)
			}
			if len(bars) != tt.wantBars {
				t.Fatalf("%d bars, want %d", len(bars), tt.wantBars)
			}
			for i, d := range tt.wantDates {
				if bars[i].Date != d {
					t.Errorf("bar %d date %s, want %s", i, bars[i].Date, d)
				}
			}
		})
	}
}

func TestDecodeAggregatesFractionalAndOptional(t *testing.T) {
	a, err := polygon.DecodeAggregates(aggsSample(t, "fractional_v.json"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Results[0].V != 3456789.1234 || a.Results[1].V != 2987654.5 {
		t.Errorf("volumes %v, %v", a.Results[0].V, a.Results[1].V)
	}
	if a.Results[0].VW != nil || a.Results[0].N != nil {
		t.Errorf("bar 0 has no vw/n on the wire, decoded vw %v n %v", a.Results[0].VW, a.Results[0].N)
	}
	if a.ResultsCount != 2 || a.QueryCount != 2 {
		t.Errorf("counts %d %d", a.ResultsCount, a.QueryCount)
	}
}

func TestDecodeAggregatesRejects(t *testing.T) {
	const bar = `{"o":1,"h":1,"l":1,"c":1,"v":1,"t":1772773200000}`
	tests := []struct {
		name, body, wantErr string
	}{
		{"empty body", ``, "decode polygon aggregates"},
		{"not JSON", `<html>502 Bad Gateway</html>`, "decode polygon aggregates"},
		{"truncated", `{"status":"OK","results":[` + bar, "decode polygon aggregates"},
		{"trailing garbage", `{"status":"OK"} x`, "decode polygon aggregates"},
		{"array", `[]`, "decode polygon aggregates"},
		{"no status", `{"results":[` + bar + `]}`, "status missing"},
		{"unknown status", `{"status":"NOT_FOUND","message":"Not Found"}`, `"NOT_FOUND": "Not Found"`},
		{"error status without text", `{"status":"ERROR"}`, `status "ERROR"`},
		{"lower-case ok", `{"status":"ok"}`, `status "ok"`},
		{"null bar", `{"status":"OK","results":[` + bar + `,null]}`, "result 1 is null"},
		{"bar without close", `{"status":"OK","results":[{"o":1,"t":1772773200000}]}`, "result 0 has no close (c)"},
		{"bar without t", `{"status":"OK","results":[{"c":1}]}`, "result 0 has no start time (t)"},
		{"close as string", `{"status":"OK","results":[{"c":"1.5","t":1772773200000}]}`, "decode polygon aggregates"},
		{"t fractional", `{"status":"OK","results":[{"c":1,"t":1772773200000.5}]}`, "decode polygon aggregates"},
		{"number out of range", `{"status":"OK","results":[{"c":1e999,"t":1772773200000}]}`, "decode polygon aggregates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := polygon.DecodeAggregates([]byte(tt.body))
			if err == nil {
				t.Fatalf("decoded %+v, want error %q", a, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestDecodeAggregatesQuotesErrorTextSafely(t *testing.T) {
	long := strings.Repeat("x", 5000)
	_, err := polygon.DecodeAggregates([]byte(`{"status":"ERROR","error":"line one\nline two ` + long + `"}`))
	if err == nil {
		t.Fatal("no error")
	}
	if s := err.Error(); strings.ContainsAny(s, "\n\r") || len(s) > 300 {
		t.Errorf("error not one bounded line (%d bytes): %.120q", len(s), s)
	}
}

func TestDecodeAggregatesTradeCount(t *testing.T) {
	a, err := polygon.DecodeAggregates([]byte(`{"status":"OK","results":[
		{"c":1,"t":1772600400000,"n":12},
		{"c":1,"t":1772686800000,"n":12.0},
		{"c":1,"t":1772773200000,"n":12.5},
		{"c":1,"t":1773028800000,"n":1e300}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int64(12), int64(12), nil, nil}
	for i, w := range want {
		n := a.Results[i].N
		switch {
		case w == nil && n != nil:
			t.Errorf("result %d: n = %d, want absent", i, *n)
		case w != nil && (n == nil || *n != w.(int64)):
			t.Errorf("result %d: n = %v, want %v", i, n, w)
		}
	}
}

func TestBarsRejectsInvalidSeries(t *testing.T) {
	const (
		mar06 = "1772773200000"
		mar09 = "1773028800000"
	)
	tests := []struct {
		name, results, wantErr string
	}{
		{"descending", `{"c":1,"t":` + mar09 + `},{"c":2,"t":` + mar06 + `}`, "bar 1 (2026-03-06): out of order"},
		{"same trading date twice", `{"c":1,"t":` + mar06 + `},{"c":2,"t":` + mar06 + `}`, "bar 1 (2026-03-06): second bar for the same trading date"},
		// 05:00Z and 05:30Z on 2026-03-06 are both that New York date.
		{"two instants of one date", `{"c":1,"t":` + mar06 + `},{"c":2,"t":1772775000000}`, "bar 1 (2026-03-06): second bar"},
		// 04:30Z on 2026-03-06 is 23:30 on the 5th in New York: a valid
		// earlier date, even though its UTC date is the 6th.
		{"New York date, not UTC date", `{"c":1,"t":1772771400000},{"c":2,"t":` + mar06 + `},{"c":3,"t":` + mar06 + `}`, "bar 2 (2026-03-06): second bar"},
		{"zero close", `{"c":1,"t":` + mar06 + `},{"c":0,"t":` + mar09 + `}`, "bar 1 (2026-03-09): close 0"},
		{"negative close", `{"c":-3.5,"t":` + mar06 + `}`, "bar 0 (2026-03-06): close -3.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := polygon.DecodeAggregates([]byte(`{"ticker":"AAPL","status":"OK","results":[` + tt.results + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			bars, err := a.Bars()
			if err == nil {
				t.Fatalf("Bars = %+v, want error %q", bars, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, marketdata.ErrInvalidBar) {
				t.Errorf("error %q: want %q wrapping ErrInvalidBar", err, tt.wantErr)
			}
		})
	}
}

func TestBarsEmpty(t *testing.T) {
	for _, f := range []string{"results_null.json", "results_absent.json"} {
		a, err := polygon.DecodeAggregates(aggsSample(t, f))
		if err != nil {
			t.Fatal(err)
		}
		bars, err := a.Bars()
		if err != nil || len(bars) != 0 {
			t.Errorf("%s: Bars = %v, %v; want none, nil", f, bars, err)
		}
	}
}

// aggsCheckBars is what the fuzz target asserts of any accepted body.
func aggsCheckBars(t *testing.T, a *polygon.Aggregates, bars []marketdata.Bar) {
	t.Helper()
	if len(bars) != len(a.Results) {
		t.Fatalf("%d bars from %d results", len(bars), len(a.Results))
	}
	for i, b := range bars {
		if math.IsNaN(b.Close) || math.IsInf(b.Close, 0) || b.Close <= 0 {
			t.Fatalf("bar %d: close %v accepted", i, b.Close)
		}
		if b.Date != marketdata.TradingDate(a.Results[i].T) {
			t.Fatalf("bar %d: date %s, t %d", i, b.Date, a.Results[i].T)
		}
		if i > 0 && b.Date <= bars[i-1].Date {
			t.Fatalf("bar %d: date %s not after %s", i, b.Date, bars[i-1].Date)
		}
	}
}
