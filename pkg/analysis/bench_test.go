package analysis_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zsmseven/backend/pkg/analysis"
)

// bigInput is a portfolio of n positions with full data.
func bigInput(n int) analysis.Input {
	in := analysis.Input{Portfolio: "Bench", LastTradingDay: "2026-11-27"}
	for i := range n {
		in.Positions = append(in.Positions, analysis.Position{Symbol: fmt.Sprintf("S%04d", i), Quantity: f(float64(i + 1)),
			Price: f(100 + float64(i)), RSI: f(float64(i % 100)), MA50: f(100), AsOf: "2026-11-27", Status: analysis.DataOK})
	}
	return in
}

func BenchmarkBuildPrompt200(b *testing.B) {
	in := bigInput(analysis.MaxPositions)
	for b.Loop() {
		if _, err := analysis.BuildPrompt(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse200(b *testing.B) {
	in := bigInput(analysis.MaxPositions)
	var sb strings.Builder
	sb.WriteString(`{"summary":"s","analysis":"a","tickers":[`)
	for i, s := range in.Symbols() {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"ticker":%q,"score":%d,"signal":"hold","rationale":"RSI and MA50 are neutral for this holding."}`, s, i%101)
	}
	sb.WriteString("]}")
	answer := []byte(sb.String())
	symbols := in.Symbols()
	b.SetBytes(int64(len(answer)))
	for b.Loop() {
		if _, err := analysis.Parse(answer, symbols); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRules200(b *testing.B) {
	in := bigInput(analysis.MaxPositions)
	for b.Loop() {
		analysis.Rules(in)
	}
}
