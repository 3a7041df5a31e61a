// Package indicators computes the market numbers stored per ticker: the last
// price and the optional indicators listed in Fields — RSI(14) with Wilder
// smoothing, the 50- and 200-day simple moving averages, the 52-week high and
// low, the 1-, 3- and 12-month returns, the 20-day annualized volatility and
// ATR(14).
//
// An optional number is absent (a nil pointer), never zero, when the history
// is too short for it. Fields is the one list of them: a store or a printer
// iterates it instead of naming each indicator, so adding one touches only
// this package. docs/indicators.md gives every definition and its reference.
//
// Everything here is a pure function of the bars: no I/O, no clock, no AWS.
package indicators

import (
	"errors"
	"fmt"

	"github.com/zsmseven/backend/pkg/marketdata"
)

const (
	// RSIPeriod is the RSI look-back used for stored rows (Wilder's 14).
	RSIPeriod = 14
	// MAPeriod is the simple moving average length used for stored rows.
	MAPeriod = 50
	// LongMAPeriod is the length of the long simple moving average (MA200).
	LongMAPeriod = 200
	// RangeSessions is the 52-week window of the high and low, in sessions.
	RangeSessions = 252
	// Sessions1M, Sessions3M and Sessions12M are how many sessions back the
	// 1-, 3- and 12-month returns compare the last close with.
	Sessions1M, Sessions3M, Sessions12M = 21, 63, 252
	// VolatilityReturns is how many daily log returns the volatility uses.
	VolatilityReturns = 20
	// SessionsPerYear annualizes a daily volatility: σ_year = σ_day × √252.
	SessionsPerYear = 252
	// ATRPeriod is the ATR look-back used for stored rows (Wilder's 14).
	ATRPeriod = 14
	// Lookback is the most bars any indicator needs (the 12-month return's
	// 253 closes): a history of the last Lookback sessions gives every
	// indicator of Fields, and the stored history is kept complete over it.
	Lookback = Sessions12M + 1
)

// RSI returns the Relative Strength Index of closes over period, with Wilder
// smoothing as defined by Wilder (1978) and used by TA-Lib, TradingView and
// StockCharts: the first average gain and loss are the simple means of the
// first period changes; each later change updates them as
// avg = (prev×(period−1) + current) / period; RSI = 100 − 100/(1 + avgGain/avgLoss).
//
// It needs period+1 closes (period changes) and period ≥ 1; otherwise ok is
// false. When there are no losses RSI is 100, when there are no gains 0, and
// a flat series is 50. Closes must be finite (marketdata.Validate ensures it).
func RSI(closes []float64, period int) (rsi float64, ok bool) {
	return wilderRSI(closes, period, func(c float64) float64 { return c })
}

// wilderRSI is RSI over any series of values carrying a close, so Compute can
// read bars in place instead of copying their closes.
func wilderRSI[T any](xs []T, period int, closeOf func(T) float64) (float64, bool) {
	if period < 1 || len(xs) < period+1 {
		return 0, false
	}
	var gain, loss float64
	prev := closeOf(xs[0])
	for i := 1; i <= period; i++ {
		c := closeOf(xs[i])
		if d := c - prev; d > 0 {
			gain += d
		} else {
			loss -= d
		}
		prev = c
	}
	p := float64(period)
	avgGain, avgLoss := gain/p, loss/p
	for i := period + 1; i < len(xs); i++ {
		c := closeOf(xs[i])
		var g, l float64
		if d := c - prev; d > 0 {
			g = d
		} else {
			l = -d
		}
		avgGain = (avgGain*(p-1) + g) / p
		avgLoss = (avgLoss*(p-1) + l) / p
		prev = c
	}
	switch {
	case avgGain == 0 && avgLoss == 0:
		return 50, true
	case avgLoss == 0:
		return 100, true
	}
	// 100·G/(G+L) equals 100 − 100/(1+G/L) but does not cancel
	// catastrophically when G/L is tiny, and stays within [0, 100].
	return 100 * avgGain / (avgGain + avgLoss), true
}

// SMA returns the simple mean of the last n closes; ok is false when n < 1 or
// there are fewer than n closes.
func SMA(closes []float64, n int) (mean float64, ok bool) {
	return simpleMean(closes, n, func(c float64) float64 { return c })
}

func simpleMean[T any](xs []T, n int, closeOf func(T) float64) (float64, bool) {
	if n < 1 || len(xs) < n {
		return 0, false
	}
	var sum float64
	for _, x := range xs[len(xs)-n:] {
		sum += closeOf(x)
	}
	return sum / float64(n), true
}

// Snapshot is what is stored for a ticker on a trading day.
//
// Every *float64 field is an optional indicator: nil when the history is too
// short for it (absent, never zero). Each one is listed in Fields, which is
// how stores and printers reach them; a test fails if one is missing there.
type Snapshot struct {
	// Price is the last close.
	Price float64
	// RSI is RSI(14); nil when there are fewer than 15 closes.
	RSI *float64
	// MA50 is the mean of the last 50 closes; nil when there are fewer than 50.
	MA50 *float64
	// MA200 is the mean of the last 200 closes; nil when there are fewer than 200.
	MA200 *float64
	// High52W and Low52W are the highest high and the lowest low of the last
	// 252 bars; nil when there are fewer than 252 bars or one of them has an
	// unusable high or low (see HighLow).
	High52W, Low52W *float64
	// Return1MPct, Return3MPct and Return12MPct are the last close versus the
	// close 21, 63 and 252 sessions earlier, in percent (5.2 means +5.2 %);
	// nil when there are fewer than 22, 64 and 253 closes.
	Return1MPct, Return3MPct, Return12MPct *float64
	// Volatility20DPct is the annualized sample standard deviation of the
	// last 20 daily log returns, in percent (see VolatilityPct); nil when
	// there are fewer than 21 closes.
	Volatility20DPct *float64
	// ATR is ATR(14), Wilder, as TA-Lib computes it (see ATR); nil when there
	// are fewer than 15 bars, or fewer than 14 with usable highs and lows
	// after the last bar without.
	ATR *float64
	// AsOf is the New York trading date of the last bar, YYYY-MM-DD.
	AsOf string
	// Bars is the number of bars the numbers were computed from.
	Bars int
}

// ErrNoBars is returned by Compute for an empty series.
var ErrNoBars = errors.New("no bars")

// Compute validates bars (see marketdata.Validate) and returns the snapshot of
// the last bar. Errors wrap ErrNoBars or marketdata.ErrInvalidBar.
//
// Validate checks dates and closes only; an indicator that reads highs and
// lows (52-week range, ATR) is absent rather than wrong when those it needs
// are unusable.
func Compute(bars []marketdata.Bar) (Snapshot, error) {
	if len(bars) == 0 {
		return Snapshot{}, fmt.Errorf("compute indicators: %w", ErrNoBars)
	}
	if err := marketdata.Validate(bars); err != nil {
		return Snapshot{}, fmt.Errorf("compute indicators: %w", err)
	}
	last := bars[len(bars)-1]
	s := Snapshot{Price: last.Close, AsOf: last.Date, Bars: len(bars)}
	// Every number lives in one backing array: one allocation per snapshot
	// rather than one per indicator. Its capacity is the number of optional
	// fields, so append never moves what earlier pointers point to (and if a
	// new field outgrew it, append would copy and the old pointers would
	// still hold their values).
	vals := make([]float64, 0, len(Fields))
	put := func(v float64, ok bool) *float64 {
		if !ok {
			return nil
		}
		vals = append(vals, v)
		return &vals[len(vals)-1]
	}
	s.RSI = put(wilderRSI(bars, RSIPeriod, barClose))
	s.MA50 = put(simpleMean(bars, MAPeriod, barClose))
	s.MA200 = put(simpleMean(bars, LongMAPeriod, barClose))
	hi, lo, ok := HighLow(bars, RangeSessions)
	s.High52W, s.Low52W = put(hi, ok), put(lo, ok)
	s.Return1MPct = put(change(bars, Sessions1M, barClose))
	s.Return3MPct = put(change(bars, Sessions3M, barClose))
	s.Return12MPct = put(change(bars, Sessions12M, barClose))
	s.Volatility20DPct = put(logReturnVolatility(bars, VolatilityReturns, barClose))
	s.ATR = put(ATR(bars, ATRPeriod))
	return s, nil
}

func barClose(b marketdata.Bar) float64 { return b.Close }
