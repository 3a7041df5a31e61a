package indicators_test

import (
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/zsmseven/backend/pkg/indicators"
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
