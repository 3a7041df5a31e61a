package analysis_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/pkg/analysis"
)

func f(v float64) *float64 { return &v }

// The rules analyst's rule, one row per regime. The expectations are
// computed by hand from the formula in RuleScore's doc:
//
//	score = round(50 + 25·t + (10 + 5·t)·m + 8·l)
//	t = clamp(pct vs MA50 / 10), m = clamp((50 − RSI) / 20), l = clamp(pct vs MA200 / 20)
func TestRuleScore(t *testing.T) {
	cases := []struct {
		name                       string
		price, rsi, ma50, ma200    *float64
		score                      int
		trend, momentum, long      float64
		signal, action, rule, conf string
		says                       string
	}{
		// t = 1 (+25), m = 1 weighted 15 (+15) → 90.
		{"pullback in an uptrend", f(110), f(20), f(100), nil, 90, 25, 15, 0, analysis.StrongBuy, "add", "pullback in an uptrend", "medium", "10.0% above MA50"},
		// t = 1 (+25), m = −1 weighted 15 (−15) → 60.
		{"extended uptrend", f(110), f(80), f(100), nil, 60, 25, -15, 0, analysis.Buy, "add", "extended uptrend (overbought)", "medium", "RSI 80.0"},
		// t = −1 (−25), m = 1 weighted 5 (+5) → 30: oversold in a downtrend is no bargain.
		{"falling knife", f(90), f(20), f(100), nil, 30, -25, 5, 0, analysis.Sell, "trim", "oversold in a downtrend (falling knife)", "medium", "10.0% below MA50"},
		// t = −1 (−25), m = −1 weighted 5 (−5) → 20.
		{"rally in a downtrend", f(90), f(80), f(100), nil, 20, -25, -5, 0, analysis.StrongSell, "exit", "rally in a downtrend (overbought)", "medium", ""},
		// t = 0.5 (+12.5), m = 0 → 62.5 → 63 (half away from zero).
		{"uptrend", f(105), f(50), f(100), nil, 63, 12.5, 0, 0, analysis.Buy, "add", "uptrend", "medium", ""},
		// t = −0.5 (−12.5) → 37.5 → 38.
		{"downtrend", f(95), f(50), f(100), nil, 38, -12.5, 0, 0, analysis.Sell, "trim", "downtrend", "medium", ""},
		// t = 0.1 (+2.5), m = 1 weighted 10.5 (+10.5) → 63.
		{"oversold without a trend", f(101), f(30), f(100), nil, 63, 2.5, 10.5, 0, analysis.Buy, "add", "oversold without a clear trend", "medium", ""},
		// m = −1 weighted 10 → 40.
		{"overbought without a trend", f(100), f(70), f(100), nil, 40, 0, -10, 0, analysis.Sell, "trim", "overbought without a clear trend", "medium", ""},
		{"neutral", f(100), f(50), f(100), nil, 50, 0, 0, 0, analysis.Hold, "hold", "no clear trend or momentum", "medium", ""},
		// MA200 88: 25 % above → l = 1 (+8); RSI 40: m = 0.5 weighted 15 (+7.5) → 90.5 → 91.
		{"uptrend above the MA200", f(110), f(40), f(100), f(88), 91, 25, 7.5, 8, analysis.StrongBuy, "add", "uptrend", "high", "25.0% above MA200"},
		// MA200 125: 20 % below → l = −1 (−8) → 42.
		{"below the MA200", f(100), f(50), f(100), f(125), 42, 0, 0, -8, analysis.Hold, "hold", "no clear trend or momentum", "high", "20.0% below MA200"},
		// No RSI: momentum neutral; t = 0.2 (+5) → 55.
		{"missing RSI", f(102), nil, f(100), nil, 55, 5, 0, 0, analysis.Hold, "hold", "no clear trend or momentum", "low", "RSI unavailable"},
		// No MA50: trend neutral; RSI 25: m = 1 weighted 10 → 60.
		{"missing MA50", f(50), f(25), nil, nil, 60, 0, 10, 0, analysis.Buy, "add", "oversold without a clear trend", "low", "MA50 unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := analysis.Position{Symbol: "AAA", Price: tc.price, RSI: tc.rsi, MA50: tc.ma50, MA200: tc.ma200, AsOf: "2026-11-27", Status: analysis.DataOK}
			r := analysis.RuleScore(p)
			assert.Equal(t, tc.score, r.Score)
			assert.InDelta(t, tc.trend, r.Trend, 1e-9)
			assert.InDelta(t, tc.momentum, r.Momentum, 1e-9)
			assert.InDelta(t, tc.long, r.LongTrend, 1e-9)
			assert.Equal(t, tc.rule, r.Rule)
			assert.Equal(t, tc.conf, r.Confidence)
			res := analysis.Rules(analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27", Positions: []analysis.Position{p}})
			got := res.Tickers[0]
			assert.Equal(t, tc.score, got.Score)
			assert.Equal(t, tc.signal, got.Signal)
			assert.Equal(t, tc.action, got.Action)
			assert.True(t, strings.HasPrefix(got.Rationale, "Rule: "+tc.rule+";"), "the rationale says which rule fired: %q", got.Rationale)
			assert.Contains(t, got.Rationale, tc.says)
			assert.Equal(t, analysis.SourceRules, got.Source)
		})
	}
}

// The old rule's two terms cancelled at the extremes: RSI 20 at 10 % below
// the MA50 and RSI 80 at 10 % above both scored 50, hold. Now they fall in
// different bands, and so do the two other corners.
func TestRuleExtremesSpreadAcrossBands(t *testing.T) {
	score := func(price, rsi float64) int {
		return analysis.RuleScore(analysis.Position{Price: f(price), RSI: f(rsi), MA50: f(100), Status: analysis.DataOK}).Score
	}
	corners := map[string]int{"RSI 20, −10 %": score(90, 20), "RSI 80, +10 %": score(110, 80), "RSI 20, +10 %": score(110, 20), "RSI 80, −10 %": score(90, 80)}
	bands := map[string]bool{}
	for name, s := range corners {
		bands[analysis.SignalFor(s)] = true
		assert.NotEqual(t, 50, s, name)
	}
	assert.Len(t, bands, 4, "four corners, four bands: %v", corners)
}

func TestRuleScoreIsContinuous(t *testing.T) {
	prev := -1
	for rsi := 0.0; rsi <= 100; rsi += 0.5 {
		s := analysis.RuleScore(analysis.Position{Price: f(103), RSI: f(rsi), MA50: f(100), Status: analysis.DataOK}).Score
		if prev >= 0 {
			assert.LessOrEqual(t, abs(s-prev), 1, "RSI %.1f jumps from %d to %d", rsi, prev, s)
		}
		prev = s
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestSignalBands(t *testing.T) {
	for score, want := range map[int]string{0: analysis.StrongSell, 25: analysis.StrongSell, 26: analysis.Sell, 40: analysis.Sell,
		41: analysis.Hold, 59: analysis.Hold, 60: analysis.Buy, 74: analysis.Buy, 75: analysis.StrongBuy, 100: analysis.StrongBuy} {
		assert.Equal(t, want, analysis.SignalFor(score), "score %d", score)
	}
	for sig, want := range map[string][]string{analysis.StrongBuy: {"add"}, analysis.Buy: {"add", "hold"}, analysis.Hold: {"hold", "trim"},
		analysis.Sell: {"trim", "exit"}, analysis.StrongSell: {"exit"}} {
		assert.Equal(t, want, analysis.ActionsFor(sig), sig)
	}
}

func TestStaleFactor(t *testing.T) {
	for sessions, want := range map[int]float64{0: 0.85, 1: 0.85, 2: 0.70, 3: 0.55, 4: 0.40, 5: 0.25, 12: 0.25} {
		assert.InDelta(t, want, analysis.StaleFactor(sessions), 1e-9, "%d sessions", sessions)
	}
}

// Finalize holds the data-quality rules by construction, for the model's
// result as for the rules analyst's.
func TestFinalize(t *testing.T) {
	in := analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27", Positions: []analysis.Position{
		{Symbol: "AAA", Status: analysis.DataMissing},
		{Symbol: "BBB", Price: f(1), AsOf: "2026-11-20", Status: analysis.DataStale, StaleSessions: 4},
		{Symbol: "CCC", Price: f(1), AsOf: "2026-11-26", Status: analysis.DataStale, StaleSessions: 1},
		{Symbol: "DDD", Price: f(1), AsOf: "2026-11-25", Status: analysis.DataStale, StaleSessions: 2},
		{Symbol: "EEE", Price: f(1), AsOf: "2026-11-27", Status: analysis.DataOK},
	}}
	v := func(sym string, score int, conf, action string) analysis.TickerScore {
		return analysis.TickerScore{Ticker: sym, Score: score, Signal: analysis.SignalFor(score), Rationale: "r.", Confidence: conf, KeyRisk: "k", Action: action}
	}
	model := analysis.Result{Tickers: []analysis.TickerScore{
		v("AAA", 80, "high", "add"), // a confident score for a symbol without data
		v("BBB", 80, "high", "add"), // 4 sessions old
		v("CCC", 90, "high", "add"), // 1 session old
		v("DDD", 20, "high", "exit"),
		v("EEE", 70, "high", "hold"),
	}, TopActions: []analysis.TopAction{{Ticker: "AAA", Action: "add", Reason: "x"}, {Ticker: "DDD", Action: "exit", Reason: "y"}, {Ticker: "EEE", Action: "hold", Reason: "z"}}}
	got := analysis.Finalize(in, model)
	type want struct {
		score     int
		signal    string
		conf, act string
		raw       int // 0: not adjusted
	}
	for i, w := range []want{
		{50, analysis.Hold, "low", "hold", 80},        // missing: neutral, low, hold
		{62, analysis.Buy, "low", "add", 80},          // 50 + 30 × 0.40 = 62; 4 sessions: low
		{84, analysis.StrongBuy, "medium", "add", 90}, // 50 + 40 × 0.85 = 84; at most medium
		{29, analysis.Sell, "medium", "exit", 20},     // 50 − 30 × 0.70 = 29; exit still fits sell
		{70, analysis.Buy, "high", "hold", 0},         // fresh: untouched
	} {
		g := got.Tickers[i]
		assert.Equal(t, w.score, g.Score, g.Ticker)
		assert.Equal(t, w.signal, g.Signal, g.Ticker)
		assert.Equal(t, w.conf, g.Confidence, g.Ticker)
		assert.Equal(t, w.act, g.Action, g.Ticker)
		if w.raw == 0 {
			assert.Nil(t, g.RawScore, g.Ticker)
			assert.Equal(t, "r.", g.Rationale)
		} else {
			require.NotNil(t, g.RawScore, g.Ticker)
			assert.Equal(t, w.raw, *g.RawScore, g.Ticker)
			assert.Contains(t, g.Rationale, "score pulled toward neutral from")
		}
	}
	assert.Contains(t, got.Tickers[0].Rationale, "No market data")
	assert.Contains(t, got.Tickers[1].Rationale, "Data is 4 sessions old (as of 2026-11-20)")
	assert.Equal(t, "hold", got.TopActions[0].Action, "a top action follows its ticker's final action")
	assert.Equal(t, 80, model.Tickers[0].Score, "the input is not modified")
	assert.Equal(t, got, analysis.Finalize(in, got), "idempotent")
}

func TestRulesMissingAndStale(t *testing.T) {
	in := analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27", Positions: []analysis.Position{
		{Symbol: "AAA", Status: analysis.DataMissing},
		{Symbol: "BBB", Price: f(110), RSI: f(20), MA50: f(100), AsOf: "2026-11-20", Status: analysis.DataStale, StaleSessions: 5},
	}}
	res := analysis.Rules(in)
	assert.Equal(t, 50, res.Tickers[0].Score)
	assert.Equal(t, analysis.Hold, res.Tickers[0].Signal)
	assert.Equal(t, "low", res.Tickers[0].Confidence)
	assert.Contains(t, res.Tickers[0].Rationale, "No market data")
	// The rule gives 90 on fresh data; 5 sessions old keep a quarter of the
	// distance from 50: 50 + 40 × 0.25 = 60.
	assert.Equal(t, 60, res.Tickers[1].Score)
	require.NotNil(t, res.Tickers[1].RawScore)
	assert.Equal(t, 90, *res.Tickers[1].RawScore)
	assert.Equal(t, "low", res.Tickers[1].Confidence)
	assert.Contains(t, res.Tickers[1].Rationale, "Data is 5 sessions old (as of 2026-11-20)")
	assert.Contains(t, res.Summary, "No market data for AAA")
	assert.Contains(t, res.Summary, "Stale market data for BBB")
	assert.Contains(t, res.Summary, "Average score 55.0")
	assert.Equal(t, "high", res.OverallRisk, "half the positions lack current data")
	assert.Equal(t, res, analysis.Rules(in), "deterministic")
}

// The rules analyst's result meets every rule the model's answer must meet.
func TestRulesResultIsValid(t *testing.T) {
	for _, in := range []analysis.Input{sampleInput(), bigInput(7), bigInput(analysis.MaxPositions)} {
		res := analysis.Rules(in)
		require.Len(t, res.Tickers, len(in.Positions))
		actions := map[string]string{}
		for i, ts := range res.Tickers {
			assert.Equal(t, in.Positions[i].Symbol, ts.Ticker)
			assert.Equal(t, analysis.SignalFor(ts.Score), ts.Signal)
			assert.Contains(t, analysis.ActionsFor(ts.Signal), ts.Action)
			assert.Contains(t, analysis.Levels, ts.Confidence)
			assert.NotEmpty(t, ts.KeyRisk)
			assert.LessOrEqual(t, utf8.RuneCountInString(ts.KeyRisk), analysis.MaxKeyRiskLen)
			actions[ts.Ticker] = ts.Action
		}
		require.Len(t, res.TopActions, min(3, len(in.Positions)))
		for _, a := range res.TopActions {
			assert.Equal(t, actions[a.Ticker], a.Action)
		}
		assert.Contains(t, analysis.Levels, res.OverallRisk)
		assert.LessOrEqual(t, len(res.ConcentrationFlags), analysis.MaxFlags)
		assert.LessOrEqual(t, utf8.RuneCountInString(res.Summary), analysis.MaxSummaryLen)
		assert.LessOrEqual(t, utf8.RuneCountInString(res.Analysis), analysis.MaxAnalysisLen)
	}
}

// The sample portfolio: AAPL is 64.8 % of the weighted value, MSFT has no
// price, BRK.B is stale.
func TestRulesPortfolioLevel(t *testing.T) {
	res := analysis.Rules(sampleInput())
	assert.Equal(t, []string{
		"AAPL is 64.8% of the weighted value",
		"weights cover 2 of 3 positions: no quantity or price for MSFT",
	}, res.ConcentrationFlags)
	assert.Equal(t, "high", res.OverallRisk, "two of three positions without current data, and AAPL 64.8 %")
	assert.Equal(t, "concentration: 64.8% of the weighted value", res.Tickers[0].KeyRisk)
	assert.Equal(t, "AAPL", res.TopActions[0].Ticker, "the score furthest from neutral first")
	assert.Contains(t, res.Summary, "Market value 4303.80 over the 2 of 3 positions with a quantity and a price; unrealized P&L +1286.00 (+85.6%) on a cost of 1502.50 over 1 of them.")
	assert.True(t, slices.ContainsFunc(res.Tickers, func(ts analysis.TickerScore) bool { return ts.Ticker == "MSFT" && ts.Score == 50 }))
}

func TestFigures(t *testing.T) {
	in := analysis.Input{Positions: []analysis.Position{
		{Symbol: "A", Quantity: f(1), Price: f(50), Volatility20DPct: f(10)},
		{Symbol: "B", Quantity: f(1), Price: f(30), Volatility20DPct: f(40)},
		{Symbol: "C", Quantity: f(1), Price: f(10)},
		{Symbol: "D", Quantity: f(1), Price: f(10), CostBasis: f(20)},
		{Symbol: "E", Price: f(10)},
	}}
	fg := analysis.ComputeFigures(in)
	assert.Equal(t, 4, fg.Weighted)
	assert.Equal(t, []string{"E"}, fg.Unweighted)
	assert.InDelta(t, 100, *fg.MarketValue, 1e-9)
	assert.Equal(t, "A", fg.Largest)
	assert.InDelta(t, 50, *fg.LargestPct, 1e-9)
	assert.InDelta(t, 90, *fg.Top3Pct, 1e-9, "50 + 30 + 10")
	assert.InDelta(t, (10*50+40*30)/80.0, *fg.AvgVolatilityPct, 1e-9, "weighted by value over those with a volatility")
	assert.Equal(t, 1, fg.WithCost)
	assert.InDelta(t, -10, *fg.UnrealizedPnL, 1e-9)
	assert.InDelta(t, -50, *fg.UnrealizedPnLPct, 1e-9)
	assert.InDelta(t, 20, *fg.Positions[3].AvgCost, 1e-9)
}
