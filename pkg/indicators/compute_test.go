package indicators_test

import (
	"math"
	"testing"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// wavyBars returns n bars with closes 100 + 10·sin(i/7) + i%5 and a range
// around each close, so every indicator has something to measure.
func wavyBars(n int) []marketdata.Bar {
	closes := series(n, func(i int) float64 { return 100 + 10*math.Sin(float64(i)/7) + float64(i%5) })
	b := bars(closes)
	for i := range b {
		b[i].High = b[i].Close + 0.5 + float64(i%3)*0.25
		b[i].Low = b[i].Close - 0.75 + float64(i%2)*0.25
	}
	return b
}

// Closes alternating 100, 110, 100, … give log returns ±ln 1.1, ten of each
// over 20 returns: mean 0, sample variance 20·(ln 1.1)²/19, so the volatility
// is 100 × ln 1.1 × √(20/19) × √252 = 100 × 0.0953102 × 1.0259784 × 15.8745079
// = 155.2308 %.
func TestVolatilityByHand(t *testing.T) {
	closes := series(21, func(i int) float64 { return 100 + 10*float64(i%2) })
	got, ok := indicators.VolatilityPct(closes, 20)
	want := 100 * math.Log(1.1) * math.Sqrt(20.0/19) * math.Sqrt(252)
	if !ok || math.Abs(got-want) > 1e-9 || math.Abs(want-155.2308) > 5e-5 {
		t.Errorf("volatility = %v (ok %v), want %v", got, ok, want)
	}
	if _, ok := indicators.VolatilityPct(closes[:20], 20); ok {
		t.Error("20 closes: ok, want 21 needed")
	}
	if _, ok := indicators.VolatilityPct(closes, 1); ok {
		t.Error("one return has no sample deviation: ok")
	}
}

// ATR(2) by hand, with a gap each way (true ranges use the previous close):
//
//	bar  high  low   close  true range
//	0    10    10    10     —
//	1    11    9     10.5   max(11, 10)   − min(9, 10)     = 2
//	2    12    11    11.5   max(12, 10.5) − min(11, 10.5)  = 1.5  (gap up: low above 10.5)
//	3    11    10    10.2   max(11, 11.5) − min(10, 11.5)  = 1.5  (high below 11.5)
//	4    9     8.5   8.8    max(9, 10.2)  − min(8.5, 10.2) = 1.7  (gap down: high below 10.2)
//
// Seed (2 + 1.5)/2 = 1.75 at bar 2; then (1.75·1 + 1.5)/2 = 1.625 and
// (1.625 + 1.7)/2 = 1.6625.
func TestATRByHand(t *testing.T) {
	b := ohlcBars(
		[]float64{10, 10.5, 11.5, 10.2, 8.8},
		[]float64{10, 11, 12, 11, 9},
		[]float64{10, 9, 11, 10, 8.5},
		[]float64{10, 10.5, 11.5, 10.2, 8.8})
	for n, want := range map[int]float64{3: 1.75, 4: 1.625, 5: 1.6625} {
		if got, ok := indicators.ATR(b[:n], 2); !ok || math.Abs(got-want) > 1e-12 {
			t.Errorf("ATR(2) of %d bars = %v (ok %v), want %v", n, got, ok, want)
		}
	}
	if _, ok := indicators.ATR(b[:2], 2); ok {
		t.Error("ATR(2) of 2 bars: ok, want 3 needed")
	}
	for _, p := range []int{0, -1} {
		if _, ok := indicators.ATR(b, p); ok {
			t.Errorf("ATR with period %d: ok", p)
		}
	}
}

// The true range against the previous close (10), one case per branch.
func TestTrueRangeGaps(t *testing.T) {
	tests := []struct {
		name      string
		high, low float64
		want      float64
	}{
		{"inside: high − low", 11, 9, 2},
		{"gap up: high − prevClose", 13, 12, 3},
		{"gap down: prevClose − low", 8, 7, 3},
		{"low at prevClose", 12, 10, 2},
		{"high at prevClose", 10, 9.5, 0.5},
		{"flat at prevClose", 10, 10, 0},
	}
	for _, tt := range tests {
		b := ohlcBars([]float64{10, tt.low}, []float64{10, tt.high}, []float64{10, tt.low}, []float64{10, tt.low})
		if got, ok := indicators.ATR(b, 1); !ok || got != tt.want {
			t.Errorf("%s: TR = %v (ok %v), want %v", tt.name, got, ok, tt.want)
		}
	}
}

func TestHighLowAndReturnArguments(t *testing.T) {
	b := wavyBars(10)
	for _, n := range []int{0, -1, 11} {
		if _, _, ok := indicators.HighLow(b, n); ok {
			t.Errorf("HighLow(10 bars, %d): ok", n)
		}
		if _, ok := indicators.ReturnPct(marketdata.Closes(b), n); ok {
			t.Errorf("ReturnPct(10 closes, %d): ok", n)
		}
	}
	if _, ok := indicators.ReturnPct(marketdata.Closes(b), 10); ok {
		t.Error("ReturnPct(10 closes, 10): ok, needs 11")
	}
	if got, ok := indicators.ReturnPct([]float64{80, 100}, 1); !ok || got != 25 {
		t.Errorf("ReturnPct(80 → 100) = %v, want +25", got)
	}
	if got, ok := indicators.ReturnPct([]float64{100, 75}, 1); !ok || got != -25 {
		t.Errorf("ReturnPct(100 → 75) = %v, want −25", got)
	}
}
