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
			p := analysis.Position{Symbol: "AAA", Market: snap("2026-11-27", *tc.price, tc.rsi, tc.ma50, tc.ma200), Status: analysis.DataOK}
			r := analysis.RuleScore(p)
			assert.Equal(t, tc.score, r.Score)
			assert.InDelta(t, tc.trend, r.Trend, 1e-9)
			assert.InDelta(t, tc.momentum, r.Momentum, 1e-9)
			assert.InDelta(t, tc.long, r.LongTrend, 1e-9)
			assert.Equal(t, tc.rule, r.Rule)
			assert.Equal(t, tc.conf, r.Confidence)
			got := analysis.RulesTicker(p)
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
		return analysis.RuleScore(analysis.Position{Market: snap("2026-11-27", price, f(rsi), f(100), nil), Status: analysis.DataOK}).Score
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
		s := analysis.RuleScore(analysis.Position{Market: snap("2026-11-27", 103, f(rsi), f(100), nil), Status: analysis.DataOK}).Score
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
// verdicts as for the rules analyst's.
func TestFinalize(t *testing.T) {
	in := analysis.Input{Portfolio: "P", LastTradingDay: "2026-11-27", Positions: []analysis.Position{
		{Symbol: "AAA", Status: analysis.DataMissing},
		{Symbol: "BBB", Market: snap("2026-11-20", 1, nil, nil, nil), Status: analysis.DataStale, StaleSessions: 4},
		{Symbol: "CCC", Market: snap("2026-11-26", 1, nil, nil, nil), Status: analysis.DataStale, StaleSessions: 1},
		{Symbol: "DDD", Market: snap("2026-11-25", 1, nil, nil, nil), Status: analysis.DataStale, StaleSessions: 2},
		{Symbol: "EEE", Market: snap("2026-11-27", 1, nil, nil, nil), Status: analysis.DataOK},
	}}
	v := func(sym string, score int, conf, action string) analysis.TickerScore {
		return analysis.TickerScore{Ticker: sym, Score: score, Signal: analysis.SignalFor(score), Rationale: "r.", Confidence: conf, KeyRisk: "k", Action: action}
	}
	model := []analysis.TickerScore{
		v("AAA", 80, "high", "add"), // a confident score for a symbol without data
		v("BBB", 80, "high", "add"), // 4 sessions old
		v("CCC", 90, "high", "add"), // 1 session old
		v("DDD", 20, "high", "exit"),
		v("EEE", 70, "high", "hold"),
	}
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
		g := got[i]
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
	assert.Contains(t, got[0].Rationale, "No market data")
	assert.Contains(t, got[1].Rationale, "Data is 4 sessions old (as of 2026-11-20)")
	assert.Equal(t, 80, model[0].Score, "the input is not modified")
	assert.Equal(t, got, analysis.Finalize(in, got), "idempotent")
}

// The rules analyst's ticker verdict depends on the ticker's own data
// alone: the same in every portfolio, whatever the position's size.
func TestRulesTickerIsTheTickersOwn(t *testing.T) {
	in := sampleInput()
	big := sampleInput()
	big.Positions[0].Quantity = f(10000)
	assert.Equal(t, analysis.RulesTicker(in.Positions[0]), analysis.RulesTicker(big.Positions[0]))
	got := analysis.RulesTicker(in.Positions[0])
	assert.Equal(t, "market risk: 24.6% annualized volatility over 20 days", got.KeyRisk, "3.8 % below its 52-week high is not within 3 %")
	missing := analysis.RulesTicker(in.Positions[2])
	assert.Equal(t, 50, missing.Score)
	assert.Equal(t, "No market data available; neutral score.", missing.Rationale)
	assert.Equal(t, "low", missing.Confidence)
}

// The rules manager over the sample portfolio: AAPL is 64.8 % of the
// weighted value, MSFT has no price, BRK.B is stale.
func TestRulesOverview(t *testing.T) {
	in := sampleInput()
	verdicts := sampleVerdicts(in)
	ov := analysis.RulesOverview(in, verdicts)
	assert.Equal(t, []string{
		"AAPL is 64.8% of the weighted value",
		"weights cover 2 of 3 positions: no quantity or price for MSFT",
	}, ov.ConcentrationFlags)
	assert.Equal(t, "high", ov.OverallRisk, "two of three positions without current data, and AAPL 64.8 %")
	require.Len(t, ov.TopActions, 3)
	assert.Equal(t, "AAPL", ov.TopActions[0].Ticker, "the score furthest from neutral first")
	assert.Equal(t, "hold", ov.TopActions[0].Action, "AAPL rated buy is 64.8 %: held rather than added to")
	assert.Contains(t, ov.TopActions[0].Reason, "already 64.8% of the weighted value")
	assert.Equal(t, "trim", ov.TopActions[1].Action, "BRK.B rated hold is 35.2 %: trimmed")
	assert.Contains(t, ov.Summary, "Market value 4303.80 over the 2 of 3 positions with a quantity and a price; unrealized P&L +1286.00 (+85.6%) on a cost of 1502.50 over 1 of them.")
	assert.Contains(t, ov.Summary, "No market data for MSFT.")
	assert.Equal(t, ov, analysis.RulesOverview(in, verdicts), "deterministic")
}

// The rules' parts meet every rule a model's answer must meet.
func TestRulesOverviewIsValid(t *testing.T) {
	for _, in := range []analysis.Input{sampleInput(), bigInput(7), bigInput(analysis.MaxPositions)} {
		verdicts := make([]analysis.TickerScore, len(in.Positions))
		for i, p := range in.Positions {
			verdicts[i] = analysis.RulesTicker(p)
			assert.Equal(t, analysis.SignalFor(verdicts[i].Score), verdicts[i].Signal)
			assert.Contains(t, analysis.ActionsFor(verdicts[i].Signal), verdicts[i].Action)
			assert.LessOrEqual(t, utf8.RuneCountInString(verdicts[i].Rationale), analysis.MaxRationaleLen)
			assert.LessOrEqual(t, utf8.RuneCountInString(verdicts[i].KeyRisk), analysis.MaxKeyRiskLen)
		}
		verdicts = analysis.Finalize(in, verdicts)
		ov := analysis.RulesOverview(in, verdicts)
		mi, err := analysis.NewManagerInput(in, verdicts)
		require.NoError(t, err)
		// The rules' answer, written as the model would, validates.
		tops := []string{}
		for _, ta := range ov.TopActions {
			tops = append(tops, `{"ticker":"`+ta.Ticker+`","action":"`+ta.Action+`","reason":`+quoteJSON(ta.Reason)+`}`)
		}
		flags := []string{}
		for _, fl := range ov.ConcentrationFlags {
			flags = append(flags, quoteJSON(fl))
		}
		content := `{"summary":` + quoteJSON(ov.Summary) + `,"overall_risk":"` + ov.OverallRisk + `","concentration_flags":[` + strings.Join(flags, ",") +
			`],"top_actions":[` + strings.Join(tops, ",") + `]}`
		a := analysis.ParseOverview(mi, analysis.OverviewParts, []byte(content))
		assert.Empty(t, a.Faulty, "%v", a.Problems)
		assert.True(t, slices.Equal(analysis.OverviewParts, a.Valid))
	}
}

func TestFigures(t *testing.T) {
	pos := func(sym string, qty, price, vol, cost *float64) analysis.Position {
		p := analysis.Position{Symbol: sym, Quantity: qty, CostBasis: cost, Status: analysis.DataOK}
		if price != nil {
			p.Market = snap("2026-11-27", *price, nil, nil, nil)
			p.Market.Volatility20DPct = vol
		}
		return p
	}
	in := analysis.Input{Positions: []analysis.Position{
		pos("A", f(1), f(50), f(10), nil),
		pos("B", f(1), f(30), f(40), nil),
		pos("C", f(1), f(10), nil, nil),
		pos("D", f(1), f(10), nil, f(20)),
		pos("E", nil, f(10), nil, nil),
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
