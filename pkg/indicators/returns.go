package indicators

import "math"

// ReturnPct returns the change of the last close versus the close n sessions
// earlier, in percent: 100 × (last/earlier − 1), so +5.2 means up 5.2 %. It
// is TA-Lib's ROC(n). It needs n+1 closes and n ≥ 1; otherwise ok is false.
// Closes must be finite and positive (marketdata.Validate ensures it).
func ReturnPct(closes []float64, n int) (pct float64, ok bool) {
	return change(closes, n, func(c float64) float64 { return c })
}

func change[T any](xs []T, n int, closeOf func(T) float64) (float64, bool) {
	if n < 1 || len(xs) < n+1 {
		return 0, false
	}
	last, earlier := closeOf(xs[len(xs)-1]), closeOf(xs[len(xs)-1-n])
	return 100 * (last/earlier - 1), true
}

// VolatilityPct returns the historical volatility of the last n daily log
// returns ln(close/prevClose), annualized and in percent:
// 100 × s × √SessionsPerYear, where s is their sample standard deviation
// (dividing by n−1). It needs n+1 closes and n ≥ 2; otherwise ok is false.
//
// The sample (n−1) form is the historical-volatility convention (Hull,
// "Options, Futures, and Other Derivatives", the section on estimating
// volatility from historical data): the mean return is itself estimated from
// the same n returns. Over 20 returns it reads √(20/19) ≈ 2.6 % higher than
// the population form. A flat series gives exactly 0. Closes must be finite
// and positive (marketdata.Validate ensures it).
func VolatilityPct(closes []float64, n int) (pct float64, ok bool) {
	return logReturnVolatility(closes, n, func(c float64) float64 { return c })
}

// logReturnVolatility uses Welford's update (one pass, no buffer, and no
// cancellation of Σu² − (Σu)²/n when the returns are nearly equal).
func logReturnVolatility[T any](xs []T, n int, closeOf func(T) float64) (float64, bool) {
	if n < 2 || len(xs) < n+1 {
		return 0, false
	}
	window := xs[len(xs)-n-1:]
	var mean, m2 float64
	prev := closeOf(window[0])
	for i := 1; i <= n; i++ {
		c := closeOf(window[i])
		u := math.Log(c / prev)
		d := u - mean
		mean += d / float64(i)
		m2 += d * (u - mean)
		prev = c
	}
	return 100 * math.Sqrt(m2/float64(n-1)*SessionsPerYear), true
}
