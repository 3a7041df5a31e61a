package main

import (
	"encoding/json"
	"fmt"

	"github.com/zsmseven/backend/pkg/analysis"
)

// promptSize is the size of one analysis request for a portfolio of n
// positions, as the prompt builder renders it.
type promptSize struct {
	Positions int
	// MessageBytes is the system and user messages' content; SchemaBytes
	// the response schema sent in response_format.
	MessageBytes, SchemaBytes int
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
			price, rsi, ma, qty, cost := 123.45+float64(i), 54.321, 120.5+float64(i), 10.0, 1000.0
			in.Positions = append(in.Positions, analysis.Position{Symbol: ticker(i), Quantity: &qty, CostBasis: &cost,
				Price: &price, RSI: &rsi, MA50: &ma, AsOf: "2026-11-27", Status: analysis.DataOK})
		}
		p, err := analysis.BuildPrompt(in)
		if err != nil {
			return nil, fmt.Errorf("prompt for %d positions: %w", n, err)
		}
		s := promptSize{Positions: n}
		for _, m := range p.Messages {
			s.MessageBytes += len(m.Content)
		}
		schema, err := json.Marshal(p.Schema)
		if err != nil {
			return nil, err
		}
		s.SchemaBytes = len(schema)
		out = append(out, s)
	}
	return out, nil
}

// ticker is the i-th synthetic symbol, in sorted order: TKAAA, TKAAB, …
// (17,576 of them).
func ticker(i int) string {
	return "TK" + string([]rune{rune('A' + i/676%26), rune('A' + i/26%26), rune('A' + i%26)})
}
