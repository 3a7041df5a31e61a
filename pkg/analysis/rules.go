package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// RulesName is the model name recorded for analyses of the rules analyst.
// It names the rule: a changed rule gets a new name.
const RulesName = "rules-v3"

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
	m := p.Market
	if p.Status == DataMissing || m == nil {
		return Reading{Score: 50, Rule: "no market data", Confidence: LevelLow}
	}
	price := p.Price()
	var t, mo, l float64
	known := 0
	if pct := pctFrom(price, m.MA50); pct != nil {
		t = clamp(*pct/10, -1, 1)
		known++
	}
	if m.RSI != nil {
		mo = clamp((50-*m.RSI)/20, -1, 1)
		known++
	}
	if pct := pctFrom(price, m.MA200); pct != nil {
		l = clamp(*pct/20, -1, 1)
		known++
	}
	r := Reading{Trend: 25 * t, Momentum: (10 + 5*t) * mo, LongTrend: 8 * l}
	r.Score = int(clamp(math.Round(50+r.Trend+r.Momentum+r.LongTrend), 0, 100))
	r.Rule = ruleName(t, mo, m.MA50 != nil, m.RSI != nil)
	switch {
	case known == 3:
		r.Confidence = LevelHigh
	case known == 2 && m.RSI != nil && m.MA50 != nil:
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

// RulesTicker is the rules analyst's verdict on one position, from its own
// data alone (as the ticker analyst's): RuleScore, the band's signal and
// default action, a rationale naming the rule that fired, and the key risk
// its indicators show. Same data, same verdict.
func RulesTicker(p Position) TickerScore {
	r := RuleScore(p)
	sig := SignalFor(r.Score)
	return TickerScore{Ticker: p.Symbol, Score: r.Score, Signal: sig, Rationale: rationale(p, r), Confidence: r.Confidence,
		KeyRisk: keyRisk(p), Action: ActionsFor(sig)[0], Source: SourceRules}
}

// RulesOverview is the rules manager: the portfolio's overall risk,
// concentration flags and top actions computed from its figures and the
// verdicts (one per position, finalized), and a plain summary. Same input,
// same output; no model is asked.
func RulesOverview(in Input, verdicts []TickerScore) Overview {
	fig := ComputeFigures(in)
	ov := Overview{OverallRisk: overallRisk(in, fig), ConcentrationFlags: concentrationFlags(fig, len(in.Positions))}
	ov.TopActions = topActions(verdicts, fig)
	ov.Summary = rulesSummary(in, fig, verdicts, ov.OverallRisk)
	return ov
}

func rationale(p Position, r Reading) string {
	m := p.Market
	if p.Status == DataMissing || m == nil {
		return "No market data available; neutral score."
	}
	price := p.Price()
	var parts []string
	if pct := pctFrom(price, m.MA50); pct != nil {
		parts = append(parts, fmt.Sprintf("price %.2f is %.1f%% %s MA50 %.2f (trend %+.1f)", *price, math.Abs(*pct), aboveBelow(*pct), *m.MA50, r.Trend))
	} else {
		parts = append(parts, "MA50 unavailable (too little history), trend neutral")
	}
	if m.RSI != nil {
		parts = append(parts, fmt.Sprintf("RSI %.1f (momentum %+.1f)", *m.RSI, r.Momentum))
	} else {
		parts = append(parts, "RSI unavailable, momentum neutral")
	}
	if pct := pctFrom(price, m.MA200); pct != nil {
		parts = append(parts, fmt.Sprintf("%.1f%% %s MA200 (long trend %+.1f)", math.Abs(*pct), aboveBelow(*pct), r.LongTrend))
	}
	return capRunes(fmt.Sprintf("Rule: %s; %s; score %d.", r.Rule, strings.Join(parts, ", "), r.Score), MaxRationaleLen)
}

func aboveBelow(pct float64) string {
	if pct < 0 {
		return "below"
	}
	return "above"
}

// keyRisk names the most pressing risk the stock's own indicators show, in
// this order: no data, a 20-day volatility of 40 % or more, a price below
// its MA200, a price within 3 % of its 52-week high, else the volatility.
// (A position's weight is the manager's concern: the concentration flags.)
func keyRisk(p Position) string {
	m := p.Market
	if p.Status == DataMissing || m == nil {
		return "no market data: the position cannot be assessed"
	}
	price := p.Price()
	switch {
	case m.Volatility20DPct != nil && *m.Volatility20DPct >= 40:
		s := fmt.Sprintf("high volatility: %.1f%% annualized over 20 days", *m.Volatility20DPct)
		if m.ATR != nil {
			s += fmt.Sprintf(", ATR %.1f%% of the price", *m.ATR / *price * 100)
		}
		return s
	case pctFrom(price, m.MA200) != nil && *pctFrom(price, m.MA200) < 0:
		return fmt.Sprintf("long-term downtrend: %.1f%% below the MA200", -*pctFrom(price, m.MA200))
	case pctFrom(price, m.High52W) != nil && -*pctFrom(price, m.High52W) < 3:
		return fmt.Sprintf("near its 52-week high (%.1f%% below): little margin if momentum fades", -*pctFrom(price, m.High52W))
	case m.Volatility20DPct != nil:
		return fmt.Sprintf("market risk: %.1f%% annualized volatility over 20 days", *m.Volatility20DPct)
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
// (ties: the stronger confidence, then the symbol). The action is the
// ticker's own, weighed by the position within its score band: a position
// of 25 % or more of the weighted value rated buy is held rather than
// added to, and one rated hold that is 20 % or more of it, or up 25 % or
// more on its cost, is trimmed.
func topActions(ts []TickerScore, fig Figures) []TopAction {
	pf := map[string]PositionFigures{}
	for _, f := range fig.Positions {
		pf[f.Symbol] = f
	}
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
		reason := verdictReason(t)
		action := t.Action
		f := pf[t.Ticker]
		w, pnl := value(f.WeightPct), value(f.UnrealizedPnLPct)
		switch {
		case t.Signal == Buy && w >= 25:
			action = ActionHold
			reason += fmt.Sprintf("; already %.1f%% of the weighted value: hold rather than add", w)
		case t.Signal == Hold && (w >= 20 || pnl >= 25):
			action = ActionTrim
			reason += fmt.Sprintf("; %.1f%% of the weighted value, %+.1f%% on its cost: trim", w, pnl)
		}
		out = append(out, TopAction{Ticker: t.Ticker, Action: action, Reason: capRunes(reason, MaxReasonLen)})
	}
	return out
}

// verdictReason is a top action's reason from its ticker's verdict alone.
func verdictReason(v TickerScore) string {
	return fmt.Sprintf("score %d (%s), confidence %s", v.Score, v.Signal, v.Confidence)
}

func rulesSummary(in Input, fig Figures, verdicts []TickerScore, risk string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rules-based analysis (%s) of %d positions from trend (MA50, MA200) and momentum (RSI(14)).", RulesName, len(in.Positions))
	if n := len(verdicts); n > 0 {
		sum := 0
		best, worst := verdicts[0], verdicts[0]
		for _, t := range verdicts {
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
	fmt.Fprintf(&b, " Overall risk %s.", risk)
	missing, stale := in.Flagged()
	if len(missing) > 0 {
		fmt.Fprintf(&b, " No market data for %s.", strings.Join(missing, ", "))
	}
	if len(stale) > 0 {
		fmt.Fprintf(&b, " Stale market data for %s.", strings.Join(stale, ", "))
	}
	return capRunes(b.String(), MaxSummaryLen)
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
