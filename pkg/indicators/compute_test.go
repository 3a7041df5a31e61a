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

// barsNeeded is the history each optional number needs, from the definitions
// (docs/indicators.md), not from the code: one bar fewer and it is absent.
var barsNeeded = map[string]int{
	"rsi":              15,  // 14 changes
	"ma50":             50,  // 50 closes
	"ma200":            200, // 200 closes
	"high52w":          252, // 252 sessions
	"low52w":           252,
	"return1mPct":      22,  // the close 21 sessions before the last
	"return3mPct":      64,  // 63 sessions before
	"return12mPct":     253, // 252 sessions before
	"volatility20dPct": 21,  // 20 log returns
	"atr":              15,  // a previous close for each of 14 true ranges
}

// Exactly enough history sets each number; one bar fewer leaves it absent.
func TestComputeThresholdsEveryField(t *testing.T) {
	if len(barsNeeded) != len(indicators.Fields) {
		t.Fatalf("barsNeeded lists %d fields, indicators.Fields %d", len(barsNeeded), len(indicators.Fields))
	}
	for _, f := range indicators.Fields {
		need, known := barsNeeded[f.Name]
		if !known {
			t.Errorf("%s: no expected history in this test", f.Name)
			continue
		}
		if f.Bars != need {
			t.Errorf("%s: Field.Bars = %d, the definition needs %d", f.Name, f.Bars, need)
		}
		short, err := indicators.Compute(wavyBars(need - 1))
		if err != nil {
			t.Fatal(err)
		}
		enough, err := indicators.Compute(wavyBars(need))
		if err != nil {
			t.Fatal(err)
		}
		if v := f.Get(short); v != nil {
			t.Errorf("%s with %d bars = %v, want absent", f.Name, need-1, *v)
		}
		if f.Get(enough) == nil {
			t.Errorf("%s with %d bars is absent, want set", f.Name, need)
		}
	}
}

// A single bar: a price, nothing else.
func TestComputeOneBar(t *testing.T) {
	s, err := indicators.Compute(wavyBars(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range indicators.Fields {
		if v := f.Get(s); v != nil {
			t.Errorf("%s = %v from one bar", f.Name, *v)
		}
	}
	if s.Price != 100 || s.Bars != 1 {
		t.Errorf("price %v bars %d", s.Price, s.Bars)
	}
}

// Closes 1, 2, …, n with high = low = close, so every number is arithmetic:
// MA200 of 1…200 is 201/2 = 100.5 and of 2…201 is 101.5; the 52-week range of
// 1…252 is [1, 252] and of 2…253 (the last 252 of 1…253) [2, 253]; the
// 1-month return of 1…22 is 22/1 − 1 = +2100 %, 3-month of 1…64 +6300 %,
// 12-month of 1…253 +25200 %, and of 1…254 it is 254/2 − 1 = +12600 %.
func TestComputeByHand(t *testing.T) {
	rising := func(n int) indicators.Snapshot {
		t.Helper()
		s, err := indicators.Compute(bars(series(n, func(i int) float64 { return float64(i + 1) })))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		n     int
		field func(indicators.Snapshot) *float64
		name  string
		want  float64
	}{
		{200, func(s indicators.Snapshot) *float64 { return s.MA200 }, "MA200", 100.5},
		{201, func(s indicators.Snapshot) *float64 { return s.MA200 }, "MA200", 101.5},
		{252, func(s indicators.Snapshot) *float64 { return s.High52W }, "52W high", 252},
		{252, func(s indicators.Snapshot) *float64 { return s.Low52W }, "52W low", 1},
		{253, func(s indicators.Snapshot) *float64 { return s.High52W }, "52W high", 253},
		{253, func(s indicators.Snapshot) *float64 { return s.Low52W }, "52W low", 2},
		{22, func(s indicators.Snapshot) *float64 { return s.Return1MPct }, "1M return", 2100},
		{64, func(s indicators.Snapshot) *float64 { return s.Return3MPct }, "3M return", 6300},
		{253, func(s indicators.Snapshot) *float64 { return s.Return12MPct }, "12M return", 25200},
		{254, func(s indicators.Snapshot) *float64 { return s.Return12MPct }, "12M return", 12600},
	}
	for _, tt := range tests {
		v := tt.field(rising(tt.n))
		if v == nil || math.Abs(*v-tt.want) > 1e-9*math.Abs(tt.want) {
			t.Errorf("%s of 1…%d = %v, want %v", tt.name, tt.n, v, tt.want)
		}
	}
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

// A flat series moves nothing: no volatility, no true range, no return, a
// range of one price. Exact zeros, not small numbers.
func TestComputeFlat(t *testing.T) {
	s, err := indicators.Compute(bars(series(300, func(int) float64 { return 42.17 })))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*float64{"volatility": s.Volatility20DPct, "ATR": s.ATR,
		"1M return": s.Return1MPct, "3M return": s.Return3MPct, "12M return": s.Return12MPct} {
		if v == nil || *v != 0 {
			t.Errorf("%s = %v, want exactly 0", name, v)
		}
	}
	if s.High52W == nil || *s.High52W != 42.17 || s.Low52W == nil || *s.Low52W != 42.17 {
		t.Errorf("52-week range %v – %v, want 42.17 – 42.17", s.Low52W, s.High52W)
	}
	if s.RSI == nil || *s.RSI != 50 {
		t.Errorf("RSI = %v, want 50", s.RSI)
	}
}

// marketdata.Validate checks closes only. A high or low that is missing
// (decoded as 0), not finite, or inverted must make the numbers that read it
// absent, not wrong, and must not cost the snapshot its other numbers.
func TestComputeUnusableHighLow(t *testing.T) {
	base := wavyBars(300)
	want, err := indicators.Compute(base)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := []struct {
		name string
		fix  func(*marketdata.Bar)
	}{
		{"low 0", func(b *marketdata.Bar) { b.Low = 0 }},
		{"high 0", func(b *marketdata.Bar) { b.High = 0 }},
		{"NaN high", func(b *marketdata.Bar) { b.High = math.NaN() }},
		{"NaN low", func(b *marketdata.Bar) { b.Low = math.NaN() }},
		{"+Inf high", func(b *marketdata.Bar) { b.High = math.Inf(1) }},
		{"-Inf low", func(b *marketdata.Bar) { b.Low = math.Inf(-1) }},
		{"negative low", func(b *marketdata.Bar) { b.Low = -1 }},
		{"low above high", func(b *marketdata.Bar) { b.Low, b.High = b.High+1, b.Low }},
	}
	for _, c := range corrupt {
		for _, at := range []int{299, 290, 100, 40} {
			b := append([]marketdata.Bar(nil), base...)
			c.fix(&b[at])
			s, err := indicators.Compute(b)
			if err != nil {
				t.Fatalf("%s at bar %d: %v", c.name, at, err)
			}
			// The last 252 bars are 48…299.
			inWindow := at >= 300-252
			if (s.High52W == nil) != inWindow || (s.Low52W == nil) != inWindow {
				t.Errorf("%s at bar %d: 52-week high %v low %v, want absent %v", c.name, at, s.High52W, s.Low52W, inWindow)
			}
			if !inWindow && (*s.High52W != *want.High52W || *s.Low52W != *want.Low52W) {
				t.Errorf("%s at bar %d (outside the window): range changed", c.name, at)
			}
			// ATR starts again after the bad bar, whose close still serves
			// as the next previous close: from bar 290 that is 10 bars, too
			// few; from bar 100 it is ATR over bars 100…299 with bar 100's
			// own high and low never read.
			wantATR, wantOK := indicators.ATR(base[at:], indicators.ATRPeriod)
			if (s.ATR != nil) != wantOK || (wantOK && *s.ATR != wantATR) {
				t.Errorf("%s at bar %d: ATR %v, want %v (set %v)", c.name, at, s.ATR, wantATR, wantOK)
			}
			if *s.RSI != *want.RSI || *s.MA200 != *want.MA200 || *s.Volatility20DPct != *want.Volatility20DPct || *s.Return1MPct != *want.Return1MPct {
				t.Errorf("%s at bar %d: a close-based number changed", c.name, at)
			}
		}
	}
	// A bad first bar is harmless to ATR: its high and low are never read.
	b := append([]marketdata.Bar(nil), base...)
	b[0].High, b[0].Low = 0, 0
	if got, ok := indicators.ATR(b, indicators.ATRPeriod); !ok || got != *want.ATR {
		t.Errorf("ATR with a bad first bar = %v (ok %v), want %v", got, ok, *want.ATR)
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
