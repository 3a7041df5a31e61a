package indicators

import (
	"math"

	"github.com/zsmseven/backend/pkg/marketdata"
)

// HighLow returns the highest high and the lowest low of the last n bars (the
// 52-week range for n = 252 sessions).
//
// ok is false when n < 1, when there are fewer than n bars, or when one of
// the last n bars has an unusable high or low: not a finite positive price,
// or a low above the high. marketdata.Validate checks closes only, and a
// missing low decoded as 0 must not become a 52-week low of 0.
func HighLow(bars []marketdata.Bar, n int) (high, low float64, ok bool) {
	if n < 1 || len(bars) < n {
		return 0, 0, false
	}
	window := bars[len(bars)-n:]
	high, low = window[0].High, window[0].Low
	for i := range window {
		b := &window[i]
		if !usableRange(b) {
			return 0, 0, false
		}
		high, low = max(high, b.High), min(low, b.Low)
	}
	return high, low, true
}

// ATR returns the Average True Range of bars over period with Wilder
// smoothing, as TA-Lib's TA_ATR computes it (StockCharts and Wilder (1978)
// use the same recursion):
//
//   - the true range of bar i is TR = max(high−low, |high−prevClose|,
//     |low−prevClose|), prevClose being the close of bar i−1, so the first
//     bar has none;
//   - the first ATR is the simple mean of the first period true ranges, those
//     of bars 1…period;
//   - each later bar updates it as ATR = (prevATR×(period−1) + TR) / period.
//
// So it needs period+1 bars (15 for ATR(14)); otherwise, or when period < 1,
// ok is false. StockCharts' worked example instead counts high−low of bar 0
// as a first true range and seeds with bars 0…period−1, one bar earlier;
// the recursion is the same and the difference fades with history.
//
// A bar whose high or low is unusable (see HighLow) cannot give a true range,
// so the average starts again after the last such bar, whose close still
// serves as the next bar's previous close. Closes must be finite and positive
// (marketdata.Validate ensures it). The result is ≥ 0, in price units.
func ATR(bars []marketdata.Bar, period int) (atr float64, ok bool) {
	if period < 1 || len(bars) < period+1 {
		return 0, false
	}
	// One pass: n counts the true ranges since the start or the last bar
	// that could not give one.
	p := float64(period)
	var sum float64
	n := 0
	for i := 1; i < len(bars); i++ {
		b := &bars[i]
		if !usableRange(b) {
			n, sum = 0, 0
			continue
		}
		tr := trueRange(b, bars[i-1].Close)
		n++
		switch {
		case n < period:
			sum += tr
		case n == period:
			atr = (sum + tr) / p
		default:
			atr = (atr*(p-1) + tr) / p
		}
	}
	if n < period {
		return 0, false
	}
	return atr, true
}

// trueRange is max(high−low, |high−prevClose|, |low−prevClose|) written as
// the width of the range that also covers prevClose; for low ≤ high the two
// are the same number, bit for bit (each is one subtraction of two inputs).
func trueRange(b *marketdata.Bar, prevClose float64) float64 {
	return max(b.High, prevClose) - min(b.Low, prevClose)
}

// usableRange reports whether b's high and low are finite positive prices with
// low ≤ high. (Low > 0 is false for NaN; Low ≤ High is false for a NaN high.)
func usableRange(b *marketdata.Bar) bool {
	return b.Low > 0 && b.Low <= b.High && !math.IsInf(b.High, 1)
}
