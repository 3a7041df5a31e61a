package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// RulesName is the model name recorded for analyses of the rules analyst.
// It names the rule: a changed rule gets a new name.
const RulesName = "rules-v2"

// Reading is how the rules analyst scored one position.
type Reading struct {
	Score int
	// Trend, Momentum and LongTrend are the three terms of the score.
	Trend, Momentum, LongTrend float64
	// Rule is the rule that fired, in words ("pullback in an uptrend", …).
	Rule string
	// Confidence follows from which indicators are known.
	Confidence string
}

// The rule's thresholds, on the normalized readings t (trend) and m
// (momentum), both in [−1, 1].
const (
	trendClear    = 0.3  // |t| ≥ 0.3: price at least 3 % from its MA50
	momentumClear = 0.75 // |m| ≥ 0.75: RSI at most 35 or at least 65
)

// RuleScore is the rules analyst's opportunity score for one position:
// trend first, RSI as the timing within the trend, so that extreme readings
// spread across the bands instead of cancelling out:
//
//	t = clamp((price − MA50) / MA50 × 100 / 10, −1, 1)   trend: ±10 % from the MA50 is full
//	m = clamp((50 − RSI) / 20, −1, 1)                    momentum: RSI 30 is +1 (oversold), 70 is −1
//	l = clamp((price − MA200) / MA200 × 100 / 20, −1, 1)  long trend: ±20 % from the MA200 is full
//
//	score = clamp(round(50 + 25·t + (10 + 5·t)·m + 8·l), 0, 100)   (round half away from zero)
//
// The momentum weight 10 + 5·t is 15 in a full uptrend (a pullback there is
// the best opportunity), 10 without a trend and 5 in a full downtrend (an
// oversold reading there is a falling knife, not a bargain). An unknown
// indicator contributes 0 (its reading is neutral). Examples: RSI 20 at
// 10 % above the MA50 scores 90 (strong_buy), RSI 80 there 60 (buy), RSI 20
// at 10 % below 30 (sell), RSI 80 there 20 (strong_sell). Every term is
// continuous, so a small change in the data never jumps the score. A
// position without market data scores 50. The signal comes from the score's
// band (SignalFor), the action is the band's default (ActionsFor).
func RuleScore(p Position) Reading {
	if p.Status == DataMissing || p.Price == nil {
		return Reading{Score: 50, Rule: "no market data", Confidence: LevelLow}
	}
	var t, m, l float64
	known := 0
	if pct, ok := PriceVsMA50Pct(p); ok {
		t = clamp(pct/10, -1, 1)
		known++
	}
	if p.RSI != nil {
		m = clamp((50-*p.RSI)/20, -1, 1)
		known++
	}
	if pct := pctFrom(p.Price, p.MA200); pct != nil {
		l = clamp(*pct/20, -1, 1)
		known++
	}
	r := Reading{Trend: 25 * t, Momentum: (10 + 5*t) * m, LongTrend: 8 * l}
	r.Score = int(clamp(math.Round(50+r.Trend+r.Momentum+r.LongTrend), 0, 100))
	r.Rule = ruleName(t, m, p.MA50 != nil && p.Price != nil, p.RSI != nil)
	switch {
	case known == 3:
		r.Confidence = LevelHigh
	case known == 2 && p.RSI != nil && p.MA50 != nil:
		r.Confidence = LevelMedium
	default:
		r.Confidence = LevelLow
	}
	return r
}

func ruleName(t, m float64, hasTrend, hasMomentum bool) string {
	switch {
	case !hasTrend && !hasMomentum:
		return "no trend or momentum reading yet (too little history)"
	case t >= trendClear && m >= momentumClear:
		return "pullback in an uptrend"
	case t >= trendClear && m <= -momentumClear:
		return "extended uptrend (overbought)"
	case t >= trendClear:
		return "uptrend"
	case t <= -trendClear && m >= momentumClear:
		return "oversold in a downtrend (falling knife)"
	case t <= -trendClear && m <= -momentumClear:
		return "rally in a downtrend (overbought)"
	case t <= -trendClear:
		return "downtrend"
	case m >= momentumClear:
		return "oversold without a clear trend"
	case m <= -momentumClear:
		return "overbought without a clear trend"
	default:
		return "no clear trend or momentum"
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// Rules is the deterministic rules analyst: it scores every position with
// RuleScore, writes each one's key risk from its volatility, long trend,
// 52-week range and weight, the portfolio's overall risk, concentration
// flags and top three actions from the figures, and a plain summary; then
// Finalize applies the data-quality rules. Same input, same output.
func Rules(in Input) Result {
	fig := ComputeFigures(in)
	res := Result{Tickers: make([]TickerScore, 0, len(in.Positions)), ConcentrationFlags: []string{}}
	for i, p := range in.Positions {
		r := RuleScore(p)
		sig := SignalFor(r.Score)
		res.Tickers = append(res.Tickers, TickerScore{Ticker: p.Symbol, Score: r.Score, Signal: sig, Rationale: rationale(p, fig.Positions[i], r),
			Confidence: r.Confidence, KeyRisk: keyRisk(p, fig.Positions[i]), Action: ActionsFor(sig)[0], Source: SourceRules})
	}
	res.OverallRisk = overallRisk(in, fig)
	res.ConcentrationFlags = concentrationFlags(fig, len(in.Positions))
	res = Finalize(in, res)
	res.TopActions = topActions(res.Tickers)
	res.Summary = rulesSummary(in, fig, res)
	var lines []string
	for _, t := range res.Tickers {
		lines = append(lines, fmt.Sprintf("%s: score %d (%s), %s, confidence %s. %s Key risk: %s.", t.Ticker, t.Score, t.Signal, t.Action, t.Confidence, t.Rationale, t.KeyRisk))
	}
	res.Analysis = res.Summary + "\n\n" + strings.Join(lines, "\n") +
		"\n\nScore = 50 + 25·trend (price vs MA50, ±10 % full) + (10 + 5·trend)·momentum (RSI, 30 → +1, 70 → −1) + 8·long trend (price vs MA200, ±20 % full), clamped to 0–100; " +
		"stale data pulled toward 50, missing data 50. No language model was used."
	if n := len([]rune(res.Analysis)); n > MaxAnalysisLen {
		res.Analysis = string([]rune(res.Analysis)[:MaxAnalysisLen-1]) + "…"
	}
	return res
}

func rationale(p Position, f PositionFigures, r Reading) string {
	if p.Status == DataMissing || p.Price == nil {
		return "No market data available; neutral score."
	}
	var parts []string
	if f.VsMA50Pct != nil {
		parts = append(parts, fmt.Sprintf("price %.2f is %.1f%% %s MA50 %.2f (trend %+.1f)", *p.Price, math.Abs(*f.VsMA50Pct), aboveBelow(*f.VsMA50Pct), *p.MA50, r.Trend))
	} else {
		parts = append(parts, "MA50 unavailable (too little history), trend neutral")
	}
	if p.RSI != nil {
		parts = append(parts, fmt.Sprintf("RSI %.1f (momentum %+.1f)", *p.RSI, r.Momentum))
	} else {
		parts = append(parts, "RSI unavailable, momentum neutral")
	}
	if f.VsMA200Pct != nil {
		parts = append(parts, fmt.Sprintf("%.1f%% %s MA200 (long trend %+.1f)", math.Abs(*f.VsMA200Pct), aboveBelow(*f.VsMA200Pct), r.LongTrend))
	}
	return fmt.Sprintf("Rule: %s; %s; score %d.", r.Rule, strings.Join(parts, ", "), r.Score)
}

func aboveBelow(pct float64) string {
	if pct < 0 {
		return "below"
	}
	return "above"
}

// keyRisk names the most pressing risk the indicators show, in this order:
// no data, a weight of 25 % or more, a 20-day volatility of 40 % or more, a
// price below its MA200, a price within 3 % of its 52-week high.
func keyRisk(p Position, f PositionFigures) string {
	switch {
	case p.Status == DataMissing || p.Price == nil:
		return "no market data: the position cannot be assessed"
	case f.WeightPct != nil && *f.WeightPct >= 25:
		return fmt.Sprintf("concentration: %.1f%% of the weighted value", *f.WeightPct)
	case p.Volatility20DPct != nil && *p.Volatility20DPct >= 40:
		s := fmt.Sprintf("high volatility: %.1f%% annualized over 20 days", *p.Volatility20DPct)
		if f.ATRPct != nil {
			s += fmt.Sprintf(", ATR %.1f%% of the price", *f.ATRPct)
		}
		return s
	case f.VsMA200Pct != nil && *f.VsMA200Pct < 0:
		return fmt.Sprintf("long-term downtrend: %.1f%% below the MA200", -*f.VsMA200Pct)
	case f.Below52WHighPct != nil && *f.Below52WHighPct < 3:
		return fmt.Sprintf("near its 52-week high (%.1f%% below): little margin if momentum fades", *f.Below52WHighPct)
	case p.Volatility20DPct != nil:
		return fmt.Sprintf("market risk: %.1f%% annualized volatility over 20 days", *p.Volatility20DPct)
	default:
		return "market risk; the indicators flag nothing specific"
	}
}

// overallRisk is high when one position is 35 % or more of the weighted
// value, the weighted volatility is 45 % or more, or a third or more of the
// positions lack current data; medium at 20 %, 30 % or any position without
// current data; low otherwise.
func overallRisk(in Input, fig Figures) string {
	missing, stale := in.Flagged()
	flagged := len(missing) + len(stale)
	largest, vol := value(fig.LargestPct), value(fig.AvgVolatilityPct)
	switch {
	case largest >= 35 || vol >= 45 || 3*flagged >= len(in.Positions):
		return LevelHigh
	case largest >= 20 || vol >= 30 || flagged > 0:
		return LevelMedium
	default:
		return LevelLow
	}
}

func concentrationFlags(fig Figures, n int) []string {
	flags := []string{}
	if fig.LargestPct != nil && *fig.LargestPct >= 20 {
		flags = append(flags, fmt.Sprintf("%s is %.1f%% of the weighted value", fig.Largest, *fig.LargestPct))
	}
	if fig.Top3Pct != nil && fig.Weighted > 3 && *fig.Top3Pct >= 60 {
		flags = append(flags, fmt.Sprintf("the three largest positions are %.1f%% of the weighted value", *fig.Top3Pct))
	}
	if len(fig.Unweighted) > 0 {
		names := fig.Unweighted
		more := ""
		if len(names) > 5 {
			names, more = names[:5], fmt.Sprintf(" and %d more", len(fig.Unweighted)-5)
		}
		flags = append(flags, fmt.Sprintf("weights cover %d of %d positions: no quantity or price for %s%s", fig.Weighted, n, strings.Join(names, ", "), more))
	}
	return flags
}

// topActions are the min(3, n) tickers whose score is furthest from 50
// (ties: the stronger confidence, then the symbol), with their action.
func topActions(ts []TickerScore) []TopAction {
	order := slices.Clone(ts)
	slices.SortStableFunc(order, func(a, b TickerScore) int {
		if d := abs(b.Score-50) - abs(a.Score-50); d != 0 {
			return d
		}
		if d := slices.Index(Levels, b.Confidence) - slices.Index(Levels, a.Confidence); d != 0 {
			return d
		}
		return strings.Compare(a.Ticker, b.Ticker)
	})
	out := make([]TopAction, 0, TopActions)
	for _, t := range order[:min(TopActions, len(order))] {
		out = append(out, TopAction{Ticker: t.Ticker, Action: t.Action, Reason: fmt.Sprintf("score %d (%s), confidence %s", t.Score, t.Signal, t.Confidence)})
	}
	return out
}

func rulesSummary(in Input, fig Figures, res Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rules-based analysis (%s) of %d positions from trend (MA50, MA200) and momentum (RSI(14)).", RulesName, len(in.Positions))
	if n := len(res.Tickers); n > 0 {
		sum := 0
		best, worst := res.Tickers[0], res.Tickers[0]
		for _, t := range res.Tickers {
			sum += t.Score
			if t.Score > best.Score {
				best = t
			}
			if t.Score < worst.Score {
				worst = t
			}
		}
		fmt.Fprintf(&b, " Average score %.1f; highest %s (%d), lowest %s (%d).", float64(sum)/float64(n), best.Ticker, best.Score, worst.Ticker, worst.Score)
	}
	if fig.MarketValue != nil {
		fmt.Fprintf(&b, " Market value %.2f over the %d of %d positions with a quantity and a price", *fig.MarketValue, fig.Weighted, len(in.Positions))
		if fig.UnrealizedPnL != nil {
			fmt.Fprintf(&b, "; unrealized P&L %+.2f (%+.1f%%) on a cost of %.2f over %d of them", *fig.UnrealizedPnL, *fig.UnrealizedPnLPct, *fig.CostBasis, fig.WithCost)
		}
		b.WriteString(".")
	}
	fmt.Fprintf(&b, " Overall risk %s.", res.OverallRisk)
	missing, stale := in.Flagged()
	if len(missing) > 0 {
		fmt.Fprintf(&b, " No market data for %s.", strings.Join(missing, ", "))
	}
	if len(stale) > 0 {
		fmt.Fprintf(&b, " Stale market data for %s.", strings.Join(stale, ", "))
	}
	s := b.String()
	if n := len([]rune(s)); n > MaxSummaryLen {
		s = string([]rune(s)[:MaxSummaryLen-1]) + "…"
	}
	return s
}

func value(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
