package analysis

import (
	"fmt"
	"math"
	"strings"
)

// RulesName is the model name recorded for analyses of the rules analyst.
const RulesName = "rules-v1"

// RuleScore is the rules analyst's opportunity score for one position:
//
//	score = clamp(round(50 + rsiTerm + maTerm), 0, 100)
//
//	rsiTerm (RSI(14), mean reversion: oversold is an opportunity)
//	  RSI < 30 (oversold):    +10 + (30 − RSI), at most +30
//	  30 ≤ RSI ≤ 70:          (50 − RSI) × 0.5   (between +10 and −10)
//	  RSI > 70 (overbought):  −10 − (RSI − 70), at least −30
//	  RSI unknown:            0 (neutral)
//
//	maTerm (trend: price versus its 50-day mean, pct = (price − MA50) / MA50 × 100)
//	  2 × pct, bounded to [−20, +20]
//	  MA50 or price unknown:  0 (neutral)
//
// Both terms are continuous, so a small change in the data never jumps the
// score. A position without market data scores 50. round is half away from
// zero. The signal comes from the score's band (SignalFor).
func RuleScore(p Position) (score int, rsiTerm, maTerm float64) {
	if p.RSI != nil {
		r := *p.RSI
		switch {
		case r < 30:
			rsiTerm = math.Min(10+(30-r), 30)
		case r > 70:
			rsiTerm = math.Max(-10-(r-70), -30)
		default:
			rsiTerm = (50 - r) * 0.5
		}
	}
	if pct, ok := PriceVsMA50Pct(p); ok {
		maTerm = math.Max(-20, math.Min(20, 2*pct))
	}
	s := math.Round(50 + rsiTerm + maTerm)
	return int(math.Max(0, math.Min(100, s))), rsiTerm, maTerm
}

// SignalFor maps a score to its band: 75–100 strong_buy, 60–74 buy,
// 41–59 hold, 26–40 sell, 0–25 strong_sell. The system prompt states the
// same bands.
func SignalFor(score int) Signal {
	switch {
	case score >= 75:
		return StrongBuy
	case score >= 60:
		return Buy
	case score >= 41:
		return Hold
	case score >= 26:
		return Sell
	default:
		return StrongSell
	}
}

// Rules is the deterministic rules analyst: it scores every position with
// RuleScore and writes a plain summary. Same input, same output.
func Rules(in Input) Result {
	res := Result{Tickers: make([]TickerScore, 0, len(in.Positions))}
	var lines []string
	sum := 0
	for _, p := range in.Positions {
		score, rsiTerm, maTerm := RuleScore(p)
		ts := TickerScore{Ticker: p.Symbol, Score: score, Signal: SignalFor(score), Rationale: rationale(p, rsiTerm, maTerm)}
		res.Tickers = append(res.Tickers, ts)
		lines = append(lines, fmt.Sprintf("%s: score %d (%s). %s", ts.Ticker, ts.Score, ts.Signal, ts.Rationale))
		sum += score
	}
	missing, stale := in.Flagged()
	var b strings.Builder
	fmt.Fprintf(&b, "Rules-based analysis (%s) of %d positions from RSI(14) and price versus the 50-day average.", RulesName, len(in.Positions))
	if n := len(in.Positions); n > 0 {
		best, worst := res.Tickers[0], res.Tickers[0]
		for _, t := range res.Tickers[1:] {
			if t.Score > best.Score {
				best = t
			}
			if t.Score < worst.Score {
				worst = t
			}
		}
		fmt.Fprintf(&b, " Average score %.1f; highest %s (%d), lowest %s (%d).", float64(sum)/float64(n), best.Ticker, best.Score, worst.Ticker, worst.Score)
	}
	if len(missing) > 0 {
		fmt.Fprintf(&b, " No market data for %s.", strings.Join(missing, ", "))
	}
	if len(stale) > 0 {
		fmt.Fprintf(&b, " Stale market data for %s.", strings.Join(stale, ", "))
	}
	res.Summary = b.String()
	res.Analysis = res.Summary + "\n\n" + strings.Join(lines, "\n") +
		"\n\nScore = 50 + RSI term (oversold adds, overbought subtracts) + trend term (2 × % above/below MA50, within ±20), clamped to 0–100. No language model was used."
	return res
}

func rationale(p Position, rsiTerm, maTerm float64) string {
	if p.Status == DataMissing || p.Price == nil {
		return "No market data available; neutral score."
	}
	var parts []string
	if p.RSI == nil {
		parts = append(parts, "RSI unavailable (too little history), RSI term neutral")
	} else {
		zone := "neutral"
		switch {
		case *p.RSI < 30:
			zone = "oversold"
		case *p.RSI > 70:
			zone = "overbought"
		}
		parts = append(parts, fmt.Sprintf("RSI %.1f (%s) %+.1f", *p.RSI, zone, rsiTerm))
	}
	if pct, ok := PriceVsMA50Pct(p); ok {
		dir := "above"
		if pct < 0 {
			dir = "below"
		}
		parts = append(parts, fmt.Sprintf("price %.2f is %.1f%% %s MA50 %.2f, %+.1f", *p.Price, math.Abs(pct), dir, *p.MA50, maTerm))
	} else {
		parts = append(parts, "MA50 unavailable (too little history), trend term neutral")
	}
	s := strings.Join(parts, "; ") + "."
	if p.Status == DataStale {
		s += fmt.Sprintf(" Data is stale (as of %s).", p.AsOf)
	}
	return s
}
