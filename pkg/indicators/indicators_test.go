package indicators_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// StockCharts ChartSchool, "Relative Strength Index (RSI)", the worked
// example spreadsheet cs-rsi.xls (QQQQ daily closes):
// https://chartschool.stockcharts.com/table-of-contents/technical-indicators-and-overlays/technical-indicators/relative-strength-index-rsi
//
// The spreadsheet holds closes to four decimals and shows them rounded to two
// (44.34, 44.09, …); its RSI column is computed from the four-decimal closes.
// The published RSI values are rounded to two decimals, hence the tolerance.
var (
	stockChartsCloses = []float64{
		44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
		45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
		46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
		43.4205, 42.6628, 43.1314,
	}
	// stockChartsRSI[i] is the published RSI(14) at close 15+i.
	stockChartsRSI = []float64{
		70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38,
		54.71, 50.42, 39.99, 41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
	}
)

const stockChartsTolerance = 0.005 + 1e-9 // half a unit of the published second decimal

func TestRSIStockChartsReference(t *testing.T) {
	if len(stockChartsCloses)-indicators.RSIPeriod != len(stockChartsRSI) {
		t.Fatalf("reference data: %d closes, %d RSI values", len(stockChartsCloses), len(stockChartsRSI))
	}
	for i, want := range stockChartsRSI {
		n := indicators.RSIPeriod + 1 + i
		got, ok := indicators.RSI(stockChartsCloses[:n], indicators.RSIPeriod)
		if !ok {
			t.Fatalf("RSI of %d closes: not ok", n)
		}
		if math.Abs(got-want) > stockChartsTolerance {
			t.Errorf("RSI at close %d = %.4f, StockCharts publishes %.2f", n, got, want)
		}
	}
}

// With the closes rounded to two decimals (as the spreadsheet displays them)
// the first RSI is no longer 70.53. By hand: the 14 changes
// −0.25 +0.06 −0.54 +0.72 +0.50 +0.27 +0.32 +0.42 +0.24 −0.19 +0.14 −0.42 +0.67 0.00
// sum to gains 3.34 and losses 1.40, so RSI = 100 − 100/(1 + 3.34/1.40) =
// 100·3.34/4.74 = 70.4641…
func TestRSIFirstValueByHand(t *testing.T) {
	closes := []float64{44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28}
	got, ok := indicators.RSI(closes, 14)
	if !ok {
		t.Fatal("RSI of 15 closes: not ok")
	}
	if want := 100 * 3.34 / 4.74; math.Abs(got-want) > 1e-9 {
		t.Errorf("RSI = %.10f, want %.10f", got, want)
	}
}

// One Wilder update, by hand, with period 2: closes 10, 11, 10.5, 11.5 give
// changes +1, −0.5, +1. Seed avgGain = (1+0)/2 = 0.5, avgLoss = (0+0.5)/2 = 0.25;
// then avgGain = (0.5·1 + 1)/2 = 0.75, avgLoss = (0.25·1 + 0)/2 = 0.125;
// RSI = 100 − 100/(1 + 6) = 600/7.
func TestRSIWilderUpdateByHand(t *testing.T) {
	got, ok := indicators.RSI([]float64{10, 11, 10.5, 11.5}, 2)
	if !ok {
		t.Fatal("not ok")
	}
	if want := 600.0 / 7; math.Abs(got-want) > 1e-12 {
		t.Errorf("RSI = %v, want %v", got, want)
	}
}

func series(n int, f func(i int) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func TestRSIEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		closes []float64
		want   float64
		wantOK bool
	}{
		{"no closes", nil, 0, false},
		{"one close", []float64{10}, 0, false},
		{"exactly 14 closes", series(14, func(i int) float64 { return 10 + float64(i) }), 0, false},
		{"exactly 15 closes, only gains", series(15, func(i int) float64 { return 10 + float64(i) }), 100, true},
		{"exactly 15 closes, only losses", series(15, func(i int) float64 { return 30 - float64(i) }), 0, true},
		{"flat 15", series(15, func(int) float64 { return 42 }), 50, true},
		{"flat 300", series(300, func(int) float64 { return 42 }), 50, true},
		{"only gains 250", series(250, func(i int) float64 { return 1 + float64(i) }), 100, true},
		{"only losses 250", series(250, func(i int) float64 { return 300 - float64(i) }), 0, true},
		// Gains and losses of the same size, alternating, over an even number
		// of changes: seed averages are equal (7 each of ±1 → 0.5 and 0.5).
		{"alternating 15", series(15, func(i int) float64 { return 10 + float64(i%2) }), 50, true},
		// Flat, then one rise at the very end: avgLoss stays 0 → 100.
		{"flat then one gain", append(series(20, func(int) float64 { return 5 }), 6), 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := indicators.RSI(tt.closes, 14)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && got != tt.want {
				t.Errorf("RSI = %v, want %v", got, tt.want)
			}
		})
	}
	for _, p := range []int{0, -1} {
		if _, ok := indicators.RSI(series(30, func(i int) float64 { return float64(i + 1) }), p); ok {
			t.Errorf("RSI with period %d: ok", p)
		}
	}
}

func TestSMA(t *testing.T) {
	tests := []struct {
		name   string
		closes []float64
		n      int
		want   float64
		wantOK bool
	}{
		{"49 closes", series(49, func(i int) float64 { return float64(i + 1) }), 50, 0, false},
		{"50 closes 1..50", series(50, func(i int) float64 { return float64(i + 1) }), 50, 25.5, true},
		{"51 closes 1..51: mean of 2..51", series(51, func(i int) float64 { return float64(i + 1) }), 50, 26.5, true},
		{"flat", series(60, func(int) float64 { return 7.25 }), 50, 7.25, true},
		{"n=1 is the last close", []float64{1, 2, 3}, 1, 3, true},
		{"n=0", []float64{1, 2, 3}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := indicators.SMA(tt.closes, tt.n)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && got != tt.want {
				t.Errorf("SMA = %v, want %v", got, tt.want)
			}
		})
	}
}

// bars turns closes into consecutive-calendar-day bars starting 2026-01-05.
// Indicators do not care about weekends, only about order.
func bars(closes []float64) []marketdata.Bar {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	out := make([]marketdata.Bar, len(closes))
	for i, c := range closes {
		out[i] = marketdata.Bar{Date: start.AddDate(0, 0, i).Format(time.DateOnly), Close: c, Open: c, High: c, Low: c}
	}
	return out
}

func TestComputeThresholds(t *testing.T) {
	tests := []struct {
		n                int
		wantRSI, wantMA  bool
		wantMA50, wantPx float64
	}{
		{1, false, false, 0, 1},
		{14, false, false, 0, 14},
		{15, true, false, 0, 15},
		{49, true, false, 0, 49},
		{50, true, true, 25.5, 50},
		{51, true, true, 26.5, 51},
	}
	for _, tt := range tests {
		closes := series(tt.n, func(i int) float64 { return float64(i + 1) })
		s, err := indicators.Compute(bars(closes))
		if err != nil {
			t.Fatalf("%d bars: %v", tt.n, err)
		}
		if (s.RSI != nil) != tt.wantRSI || (s.MA50 != nil) != tt.wantMA {
			t.Errorf("%d bars: RSI set %v, MA50 set %v; want %v, %v", tt.n, s.RSI != nil, s.MA50 != nil, tt.wantRSI, tt.wantMA)
		}
		if s.RSI != nil && *s.RSI != 100 {
			t.Errorf("%d rising bars: RSI %v, want 100", tt.n, *s.RSI)
		}
		if s.MA50 != nil && *s.MA50 != tt.wantMA50 {
			t.Errorf("%d bars: MA50 %v, want %v", tt.n, *s.MA50, tt.wantMA50)
		}
		if s.Price != tt.wantPx || s.Bars != tt.n || s.AsOf != bars(closes)[tt.n-1].Date {
			t.Errorf("%d bars: price %v bars %d asOf %s", tt.n, s.Price, s.Bars, s.AsOf)
		}
	}
}

func TestComputeStockCharts(t *testing.T) {
	s, err := indicators.Compute(bars(stockChartsCloses))
	if err != nil {
		t.Fatal(err)
	}
	if s.RSI == nil || math.Abs(*s.RSI-37.77) > stockChartsTolerance {
		t.Errorf("RSI = %v, StockCharts publishes 37.77", s.RSI)
	}
	if s.MA50 != nil {
		t.Errorf("MA50 = %v with 33 bars, want nil", *s.MA50)
	}
	if s.Price != 43.1314 || s.Bars != 33 {
		t.Errorf("price %v bars %d", s.Price, s.Bars)
	}
}

func TestComputeRejects(t *testing.T) {
	if _, err := indicators.Compute(nil); !errors.Is(err, indicators.ErrNoBars) {
		t.Errorf("Compute(nil) = %v, want ErrNoBars", err)
	}
	b := bars([]float64{1, 2, 3})
	b[2].Date = b[1].Date
	if _, err := indicators.Compute(b); !errors.Is(err, marketdata.ErrInvalidBar) {
		t.Errorf("duplicate date: %v, want ErrInvalidBar", err)
	}
	b = bars([]float64{1, math.NaN(), 3})
	if _, err := indicators.Compute(b); !errors.Is(err, marketdata.ErrInvalidBar) {
		t.Errorf("NaN close: %v, want ErrInvalidBar", err)
	}
}
