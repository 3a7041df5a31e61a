package main

import (
	"fmt"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
)

// promptSize is the size of the analysis requests for a portfolio of n
// positions whose tickers are all unscored, as the prompt builders render
// them: the ticker analyst's calls (batches of analysis.TickerBatchSize)
// and the portfolio manager's call.
type promptSize struct {
	Positions int
	// TickerCalls and their bytes (messages and schemas) and completion
	// caps; Manager* the manager's call.
	TickerCalls                                 int
	TickerBytes, TickerCap                      int
	ManagerBytes, ManagerCap, ManagerSystemSize int
	// TickerSystemSize is the ticker analyst's system message, sent first in
	// every call (what the provider's prompt cache can serve).
	TickerSystemSize int
}

// tokens estimates input tokens as bytes ÷ 4 (English text and JSON average
// about four bytes per token; the API reports the exact count in
// usage.prompt_tokens, which the ledger and the analyses keep).
func tokens(bytes int) int { return (bytes + 3) / 4 }

// fullSnapshot is a snapshot with every figure present (the largest data).
func fullSnapshot(i int) indicators.Snapshot {
	f := func(v float64) *float64 { return &v }
	return indicators.Snapshot{AsOf: "2026-11-27", Price: 123.45 + float64(i), RSI: f(54.321), MA50: f(120.5 + float64(i)), MA200: f(110.25 + float64(i)),
		High52W: f(150.75), Low52W: f(90.5), Return1MPct: f(2.345), Return3MPct: f(-4.567), Return12MPct: f(18.9), Volatility20DPct: f(27.65), ATR: f(3.2109), Bars: 300}
}

// measurePrompts renders the requests for portfolios of the given sizes
// with every figure present (the largest requests for that size).
func measurePrompts(sizes ...int) ([]promptSize, error) {
	var out []promptSize
	for _, n := range sizes {
		in := analysis.Input{Portfolio: "ZSM Seven", LastTradingDay: "2026-11-27"}
		var entries []analysis.TickerEntry
		var verdicts []analysis.TickerScore
		for i := range n {
			qty, cost := 10.0, 1000.0
			snap := fullSnapshot(i)
			p := analysis.Position{Symbol: ticker(i), Quantity: &qty, CostBasis: &cost, Market: &snap, Status: analysis.DataOK}
			in.Positions = append(in.Positions, p)
			data, err := analysis.EncodeTicker(p.Symbol, snap)
			if err != nil {
				return nil, err
			}
			entries = append(entries, analysis.TickerEntry{Symbol: p.Symbol, Data: data})
			verdicts = append(verdicts, analysis.RulesTicker(p))
		}
		s := promptSize{Positions: n, TickerSystemSize: len(analysis.TickerSystemPrompt())}
		for start := 0; start < n; start += analysis.TickerBatchSize {
			c := analysis.NewTickerCall(entries[start:min(start+analysis.TickerBatchSize, n)], nil, 1)
			s.TickerCalls++
			s.TickerBytes += len(c.Request.Schema)
			for _, m := range c.Request.Messages {
				s.TickerBytes += len(m.Content)
			}
			s.TickerCap += min(c.Request.MaxCompletionTokens, deploy.DefaultXAIMaxCompletionTokens)
		}
		mi, err := analysis.NewManagerInput(in, analysis.Finalize(in, verdicts))
		if err != nil {
			return nil, fmt.Errorf("manager input for %d positions: %w", n, err)
		}
		r := mi.Request(analysis.OverviewParts, nil, 1)
		s.ManagerBytes = len(r.Schema)
		for _, m := range r.Messages {
			s.ManagerBytes += len(m.Content)
		}
		s.ManagerSystemSize = len(r.Messages[0].Content)
		s.ManagerCap = min(r.MaxCompletionTokens, deploy.DefaultXAIMaxCompletionTokens)
		out = append(out, s)
	}
	return out, nil
}

// ticker is the i-th synthetic symbol, in sorted order: TKAAA, TKAAB, …
// (17,576 of them).
func ticker(i int) string {
	return "TK" + string([]rune{rune('A' + i/676%26), rune('A' + i/26%26), rune('A' + i%26)})
}
