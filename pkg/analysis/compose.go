package analysis

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Compose is the stored result of a portfolio: the verdicts (one per
// position, finalized) as the ticker level gave them, and the manager's
// overview, its top actions made to fit (FitTopActions). The analysis text
// is written here, not by a model: the summary, the omitted positions if
// any, then one line per ticker with its verdict, rationale and key risk,
// within MaxAnalysisLen.
func Compose(in Input, verdicts []TickerScore, ov Overview) Result {
	res := Result{Tickers: slices.Clone(verdicts), Summary: ov.Summary, OverallRisk: ov.OverallRisk,
		ConcentrationFlags: slices.Clone(ov.ConcentrationFlags), TopActions: FitTopActions(ov.TopActions, verdicts)}
	if res.ConcentrationFlags == nil {
		res.ConcentrationFlags = []string{}
	}
	var b strings.Builder
	b.WriteString(res.Summary)
	if in.Omitted > 0 {
		fmt.Fprintf(&b, "\n\n%d smaller position%s not analyzed (at most %d positions are, the largest by market value)", in.Omitted, plural(in.Omitted), MaxPositions)
		if in.OmittedValue != nil {
			fmt.Fprintf(&b, ", worth %.2f in all", *in.OmittedValue)
		}
		b.WriteString(".")
	}
	b.WriteString("\n")
	for i, t := range res.Tickers {
		line := fmt.Sprintf("\n%s: score %d (%s), %s, confidence %s. %s Key risk: %s.", t.Ticker, t.Score, t.Signal, t.Action, t.Confidence, t.Rationale, t.KeyRisk)
		if utf8.RuneCountInString(b.String())+utf8.RuneCountInString(line) > MaxAnalysisLen-80 {
			fmt.Fprintf(&b, "\n… and %d more ticker%s: see their verdicts.", len(res.Tickers)-i, plural(len(res.Tickers)-i))
			break
		}
		b.WriteString(line)
	}
	res.Analysis = capRunes(b.String(), MaxAnalysisLen)
	return res
}

// FitTopActions keeps the top actions on distinct tickers of the verdicts
// and makes each action fit its ticker's final score band (ActionsFor): an
// action that does not is replaced by the ticker's own, and its reason —
// written for the action replaced — by one derived from the verdict.
// Nothing stored then contradicts the scores beside it.
func FitTopActions(tops []TopAction, verdicts []TickerScore) []TopAction {
	by := map[string]TickerScore{}
	for _, v := range verdicts {
		by[v.Ticker] = v
	}
	out := []TopAction{}
	seen := map[string]bool{}
	for _, t := range tops {
		v, ok := by[t.Ticker]
		if !ok || seen[t.Ticker] {
			continue
		}
		seen[t.Ticker] = true
		if !slices.Contains(ActionsFor(SignalFor(v.Score)), t.Action) {
			t.Action, t.Reason = v.Action, verdictReason(v)
		}
		out = append(out, t)
	}
	return out
}
