package analysis_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/zsmseven/backend/pkg/analysis"
)

func f(v float64) *float64 { return &v }

// The expectations are computed by hand from the formula in RuleScore's doc:
// score = round(50 + rsiTerm + maTerm).
func TestRuleScore(t *testing.T) {
	cases := []struct {
		name            string
		price, rsi, ma  *float64
		score           int
		rsiTerm, maTerm float64
		signal          string
		says            string
	}{
		// RSI 20: 10 + (30 − 20) = +20; price = MA50: 0 → 70, buy.
		{"oversold", f(100), f(20), f(100), 70, 20, 0, analysis.Buy, "oversold"},
		// RSI 5: 10 + 25 = 35 → capped +30; price 5% above: +10 → 90, strong_buy.
		{"deeply oversold, above MA50", f(105), f(5), f(100), 90, 30, 10, analysis.StrongBuy, "5.0% above"},
		// RSI 80: −10 − 10 = −20 → 30, sell.
		{"overbought", f(100), f(80), f(100), 30, -20, 0, analysis.Sell, "overbought"},
		// RSI 85: −25; price 10% below MA50: −20 → 5, strong_sell.
		{"overbought, below MA50", f(90), f(85), f(100), 5, -25, -20, analysis.StrongSell, "10.0% below"},
		// RSI 50: 0; 10% above: 2 × 10 = +20 → 70.
		{"above MA50", f(110), f(50), f(100), 70, 0, 20, analysis.Buy, "above MA50"},
		// 30% above is bounded to +20.
		{"far above MA50 is bounded", f(130), f(50), f(100), 70, 0, 20, analysis.Buy, "30.0% above"},
		// RSI 50: 0; 5% below: −10 → 40, sell.
		{"below MA50", f(95), f(50), f(100), 40, 0, -10, analysis.Sell, "below MA50"},
		// RSI 40 (neutral zone): (50 − 40) × 0.5 = +5; MA50 120, price 123: 2.5% → +5 → 60, buy.
		{"neutral zone", f(123), f(40), f(120), 60, 5, 5, analysis.Buy, "neutral"},
		// RSI 69: −9.5; price 101 vs 100: +2 → 42.5 → rounds half away from zero → 43, hold.
		{"rounding", f(101), f(69), f(100), 43, -9.5, 2, analysis.Hold, "RSI 69.0"},
		// No RSI: neutral term; 2% above → +4 → 54, hold.
		{"missing RSI", f(102), nil, f(100), 54, 0, 4, analysis.Hold, "RSI unavailable"},
		// No MA50: neutral term; RSI 25: +15 → 65.
		{"missing MA50", f(50), f(25), nil, 65, 15, 0, analysis.Buy, "MA50 unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := analysis.Position{Symbol: "AAA", Price: tc.price, RSI: tc.rsi, MA50: tc.ma, AsOf: "2026-11-27", Status: analysis.DataOK}
			score, rt, mt := analysis.RuleScore(p)
			assert.Equal(t, tc.score, score)
			assert.InDelta(t, tc.rsiTerm, rt, 1e-9)
			assert.InDelta(t, tc.maTerm, mt, 1e-9)
			res := analysis.Rules(analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27", Positions: []analysis.Position{p}})
			assert.Equal(t, []analysis.TickerScore{{Ticker: "AAA", Score: tc.score, Signal: tc.signal, Rationale: res.Tickers[0].Rationale}}, res.Tickers)
			assert.Contains(t, res.Tickers[0].Rationale, tc.says)
		})
	}
}

func TestSignalBands(t *testing.T) {
	for score, want := range map[int]string{0: analysis.StrongSell, 25: analysis.StrongSell, 26: analysis.Sell, 40: analysis.Sell,
		41: analysis.Hold, 59: analysis.Hold, 60: analysis.Buy, 74: analysis.Buy, 75: analysis.StrongBuy, 100: analysis.StrongBuy} {
		assert.Equal(t, want, analysis.SignalFor(score), "score %d", score)
	}
}

func TestRulesMissingAndStale(t *testing.T) {
	in := analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27", Positions: []analysis.Position{
		{Symbol: "AAA", Status: analysis.DataMissing},
		{Symbol: "BBB", Price: f(100), RSI: f(20), MA50: f(100), AsOf: "2026-11-20", Status: analysis.DataStale},
	}}
	res := analysis.Rules(in)
	assert.Equal(t, 50, res.Tickers[0].Score)
	assert.Equal(t, analysis.Hold, res.Tickers[0].Signal)
	assert.Contains(t, res.Tickers[0].Rationale, "No market data")
	assert.Equal(t, 70, res.Tickers[1].Score)
	assert.Contains(t, res.Tickers[1].Rationale, "stale (as of 2026-11-20)")
	assert.Contains(t, res.Summary, "No market data for AAA")
	assert.Contains(t, res.Summary, "Stale market data for BBB")
	assert.Contains(t, res.Summary, "Average score 60.0")
	assert.Equal(t, res, analysis.Rules(in), "deterministic")

	// The rules analyst's output passes the same validation as the model's.
	_, err := analysis.Parse(mustJSON(t, res), in.Symbols())
	assert.NoError(t, err)
}
