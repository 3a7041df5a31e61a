package indicators_test

import (
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// priceSeries draws 15–400 prices between 0.01 and 100,000 in whole cents,
// the range real quotes live in. The upper bound is drawn too, so narrow
// ranges (many repeated prices, flat stretches) occur as well as wild jumps.
func priceSeries() *rapid.Generator[[]float64] {
	return rapid.Custom(func(t *rapid.T) []float64 {
		hi := rapid.IntRange(1, 10_000_000).Draw(t, "maxCents")
		cents := rapid.SliceOfN(rapid.IntRange(1, hi), 15, 400).Draw(t, "cents")
		out := make([]float64, len(cents))
		for i, c := range cents {
			out[i] = float64(c) / 100
		}
		return out
	})
}

func TestPropertyRSIWithinBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		closes := priceSeries().Draw(t, "closes")
		rsi, ok := indicators.RSI(closes, indicators.RSIPeriod)
		if !ok {
			t.Fatalf("RSI of %d closes: not ok", len(closes))
		}
		if !(rsi >= 0 && rsi <= 100) {
			t.Fatalf("RSI = %v, outside [0, 100]", rsi)
		}
	})
}

// RSI is a ratio of price changes, so it does not depend on the unit of the
// price: a split-adjusted series or a quote in cents gives the same reading.
func TestPropertyRSIScaleInvariant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		closes := priceSeries().Draw(t, "closes")
		k := rapid.Float64Range(0.001, 1000).Draw(t, "k")
		scaled := make([]float64, len(closes))
		for i, c := range closes {
			scaled[i] = c * k
		}
		a, _ := indicators.RSI(closes, indicators.RSIPeriod)
		b, _ := indicators.RSI(scaled, indicators.RSIPeriod)
		if math.Abs(a-b) > 1e-9*math.Max(math.Abs(a), 1e-300) && math.Abs(a-b) > 1e-12 {
			t.Fatalf("RSI %v, after scaling by %v: %v", a, k, b)
		}
	})
}

// The mean of the last 50 closes lies between their minimum and maximum.
// Floating-point summation may land a few units in the last place outside
// (50 equal closes of 0.1 sum to slightly more than 5), hence the 1e-12
// relative slack, far below a cent.
func TestPropertyMA50WithinWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cents := rapid.SliceOfN(rapid.IntRange(1, 10_000_000), 50, 400).Draw(t, "cents")
		closes := make([]float64, len(cents))
		for i, c := range cents {
			closes[i] = float64(c) / 100
		}
		ma, ok := indicators.SMA(closes, indicators.MAPeriod)
		if !ok {
			t.Fatalf("SMA of %d closes: not ok", len(closes))
		}
		window := closes[len(closes)-indicators.MAPeriod:]
		lo, hi := slices.Min(window), slices.Max(window)
		if ma < lo*(1-1e-12) || ma > hi*(1+1e-12) {
			t.Fatalf("MA50 = %v outside [%v, %v]", ma, lo, hi)
		}
	})
}

// barSeries draws 1–400 daily bars in whole cents between 0.01 and 100,000:
// a close, and a high and low around it (low ≥ 0.01), so every bar is
// usable and low ≤ close ≤ high. Short series exercise the absent numbers,
// long ones every indicator.
func barSeries(minBars int) *rapid.Generator[[]marketdata.Bar] {
	return rapid.Custom(func(t *rapid.T) []marketdata.Bar {
		hi := rapid.IntRange(1, 10_000_000).Draw(t, "maxCents")
		n := rapid.IntRange(minBars, 400).Draw(t, "bars")
		spread := rapid.IntRange(0, hi).Draw(t, "maxSpreadCents")
		closes := make([]float64, n)
		b := bars(closes)
		for i := range b {
			c := rapid.IntRange(1, hi).Draw(t, "closeCents")
			up := rapid.IntRange(0, spread).Draw(t, "upCents")
			down := rapid.IntRange(0, min(spread, c-1)).Draw(t, "downCents")
			b[i].Close, b[i].Open = float64(c)/100, float64(c)/100
			b[i].High, b[i].Low = float64(c+up)/100, float64(c-down)/100
		}
		return b
	})
}

// Each number is present exactly when the history reaches its Field.Bars,
// and Compute stores what the exported functions compute (one definition).
func TestPropertyComputePresenceAndDefinitions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := barSeries(1).Draw(t, "bars")
		s, err := indicators.Compute(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range indicators.Fields {
			if (f.Get(s) != nil) != (len(b) >= f.Bars) {
				t.Fatalf("%s with %d bars: present %v, Field.Bars %d", f.Name, len(b), f.Get(s) != nil, f.Bars)
			}
		}
		closes := marketdata.Closes(b)
		same := func(name string, got *float64, want float64, ok bool) {
			if (got != nil) != ok || (ok && *got != want) {
				t.Fatalf("%s: Compute %v, function %v (ok %v)", name, got, want, ok)
			}
		}
		atr, ok := indicators.ATR(b, indicators.ATRPeriod)
		same("ATR", s.ATR, atr, ok)
		vol, ok := indicators.VolatilityPct(closes, indicators.VolatilityReturns)
		same("volatility", s.Volatility20DPct, vol, ok)
		r, ok := indicators.ReturnPct(closes, indicators.Sessions12M)
		same("12M return", s.Return12MPct, r, ok)
		ma, ok := indicators.SMA(closes, indicators.LongMAPeriod)
		same("MA200", s.MA200, ma, ok)
		hi, lo, ok := indicators.HighLow(b, indicators.RangeSessions)
		same("52W high", s.High52W, hi, ok)
		same("52W low", s.Low52W, lo, ok)
	})
}

// With a year of bars every close of the last 252 sessions lies within the
// 52-week range, the price included; volatility and ATR are never negative,
// and ATR, a weighted average of true ranges, lies between the smallest and
// the largest of them.
func TestPropertyRangesAndBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := barSeries(indicators.RangeSessions).Draw(t, "bars")
		s, err := indicators.Compute(b)
		if err != nil {
			t.Fatal(err)
		}
		if s.High52W == nil || s.Low52W == nil {
			t.Fatalf("52-week range absent with %d bars", len(b))
		}
		for _, x := range b[len(b)-indicators.RangeSessions:] {
			if x.Close < *s.Low52W || x.Close > *s.High52W {
				t.Fatalf("close %v outside the 52-week range [%v, %v]", x.Close, *s.Low52W, *s.High52W)
			}
		}
		if !(s.Price >= *s.Low52W && s.Price <= *s.High52W) {
			t.Fatalf("price %v outside [%v, %v]", s.Price, *s.Low52W, *s.High52W)
		}
		if !(*s.Volatility20DPct >= 0) || !(*s.ATR >= 0) {
			t.Fatalf("volatility %v, ATR %v: want ≥ 0", *s.Volatility20DPct, *s.ATR)
		}
		lo, hi := math.Inf(1), 0.0
		for i := 1; i < len(b); i++ {
			tr := max(b[i].High, b[i-1].Close) - min(b[i].Low, b[i-1].Close)
			lo, hi = min(lo, tr), max(hi, tr)
		}
		if *s.ATR < lo*(1-1e-12) || *s.ATR > hi*(1+1e-12) {
			t.Fatalf("ATR %v outside the true ranges' [%v, %v]", *s.ATR, lo, hi)
		}
	})
}

// Prices are in an arbitrary unit (a split-adjusted series, a quote in
// cents): multiplying every price by k multiplies the price-valued numbers
// by k and leaves the percentages and RSI as they were. The 52-week range
// scales exactly (rounding k·x is monotonic, so the extremes stay the
// extremes); sums and ratios to within a few units in the last place.
func TestPropertyScaleInvariance(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := barSeries(1).Draw(t, "bars")
		k := rapid.Float64Range(0.001, 1000).Draw(t, "k")
		scaled := append([]marketdata.Bar(nil), b...)
		for i := range scaled {
			x := &scaled[i]
			x.Open, x.High, x.Low, x.Close = x.Open*k, x.High*k, x.Low*k, x.Close*k
		}
		s, err := indicators.Compute(b)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := indicators.Compute(scaled)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range indicators.Fields {
			a, c := f.Get(s), f.Get(sk)
			if (a == nil) != (c == nil) {
				t.Fatalf("%s: present %v, scaled present %v", f.Name, a != nil, c != nil)
			}
			if a == nil {
				continue
			}
			want, tol := *a, 1e-9*math.Abs(*a)+1e-9
			switch {
			case f.Name == "high52w" || f.Name == "low52w":
				want, tol = *a*k, 0
			case f.Unit == indicators.UnitPrice:
				want, tol = *a*k, 1e-12*math.Abs(*a*k)
			}
			if math.Abs(*c-want) > tol {
				t.Fatalf("%s = %v; prices × %v: %v, want %v", f.Name, *a, k, *c, want)
			}
		}
	})
}
