package main

import (
	"fmt"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
)

// promptSize is the size of the analysis requests for a portfolio of n
// positions, as the prompt builder renders them: one call up to
// analysis.BatchSize positions, else one per batch plus the portfolio call.
type promptSize struct {
	Positions int
	// Calls is the number of model calls.
	Calls int
	// MessageBytes is the system and user messages' content; SchemaBytes
	// the response schemas sent in response_format (all calls).
	MessageBytes, SchemaBytes int
	// CapTokens is the sum of the calls' completion caps.
	CapTokens int
}

// Tokens estimates the input tokens as bytes ÷ 4 (English text and JSON
// average about four bytes per token; the API reports the exact count in
// usage.prompt_tokens, which the analysis stores).
func (p promptSize) Tokens() int { return (p.MessageBytes + p.SchemaBytes + 3) / 4 }

// measurePrompts renders the prompt for portfolios of the given sizes with
// every figure present (the largest prompt for that size).
func measurePrompts(sizes ...int) ([]promptSize, error) {
	var out []promptSize
	for _, n := range sizes {
		in := analysis.Input{Portfolio: "ZSM Seven", LastTradingDay: "2026-11-27"}
		for i := range n {
			price, rsi, ma, ma200, hi, lo, qty, cost := 123.45+float64(i), 54.321, 120.5+float64(i), 110.25+float64(i), 150.75, 90.5, 10.0, 1000.0
			r1, r3, r12, vol, atr := 2.345, -4.567, 18.9, 27.65, 3.2109
			in.Positions = append(in.Positions, analysis.Position{Symbol: ticker(i), Quantity: &qty, CostBasis: &cost,
				Price: &price, RSI: &rsi, MA50: &ma, MA200: &ma200, High52W: &hi, Low52W: &lo, Return1MPct: &r1, Return3MPct: &r3, Return12MPct: &r12,
				Volatility20DPct: &vol, ATR: &atr, AsOf: "2026-11-27", Status: analysis.DataOK})
		}
		p, err := analysis.BuildPrompt(in)
		if err != nil {
			return nil, fmt.Errorf("prompt for %d positions: %w", n, err)
		}
		calls := p.Calls
		if p.Batched() {
			pc, err := p.PortfolioCall(analysis.Rules(in).Tickers)
			if err != nil {
				return nil, err
			}
			calls = append(calls, pc)
		}
		s := promptSize{Positions: n, Calls: len(calls)}
		for _, c := range calls {
			for _, m := range c.Messages {
				s.MessageBytes += len(m.Content)
			}
			s.SchemaBytes += len(c.Schema)
			s.CapTokens += min(c.MaxCompletionTokens, deploy.DefaultXAIMaxCompletionTokens)
		}
		out = append(out, s)
	}
	return out, nil
}

// ticker is the i-th synthetic symbol, in sorted order: TKAAA, TKAAB, …
// (17,576 of them).
func ticker(i int) string {
	return "TK" + string([]rune{rune('A' + i/676%26), rune('A' + i/26%26), rune('A' + i%26)})
}
